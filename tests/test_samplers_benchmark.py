"""benchmarks/samplers.py on a tiny checkpoint: every row's draws sampled and scored, kept, and scored again from what was kept."""
import subprocess, sys
import torch
from conftest import ROOT


def test_samplers_benchmark_samples_keeps_and_rescores(tiny_ckpt, tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "samplers.py"), "--ckpt", str(tiny_ckpt), "--n", "40", "--out", str(tmp_path / "draws"),
           "--rows", "ddim-50", "restart-50", "ddim-50-one-generator", "--no-append"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("sampled in") == 9 and "| Restart, 50 evaluations" in first.stdout
    kept = torch.load(tmp_path / "draws" / "restart-50-1000.pt")
    assert kept["images"].shape == (40, 1, 16, 16) and kept["settings"]["sampler"] == "restart" and kept["settings"]["seed"] == 1000
    # DDIM and Restart start from the same x_T in a draw, and differ only where Restart walks back: close, not equal
    ddim = torch.load(tmp_path / "draws" / "ddim-50-1000.pt")["images"]
    assert 0 < (ddim - kept["images"]).abs().mean() < 0.5
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert again.returncode == 0 and again.stdout.count("kept images") == 9, again.stderr[-2000:]
    table = lambda out: [l for l in out.splitlines() if l.startswith("| DDIM, 50 steps, η = 0 (")]
    assert table(first.stdout) == table(again.stdout)   # the same images, the same scores

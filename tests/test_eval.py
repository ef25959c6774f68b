"""`hw5-eval` and `hw5-tables` end to end, as real processes: files written, numbers recorded, cache reused, the Inception
path offline with random weights, and one clear error line for bad input."""
import json, math
import numpy as np
from PIL import Image
from conftest import run
from test_cli import _fails
from hw5_diffusion.data import image_grid, load_digits_tensors
from hw5_diffusion.evaluation import save_random_inception_weights
from hw5_diffusion.cli import metrics_row, ROW_HEADER


def test_eval_digits_writes_metrics_and_reuses_reference_cache(tiny_ckpt, tmp_path):
    args = ["hw5-eval", "--ckpt", tiny_ckpt, "--n", "30", "--steps", "10", "--batch-size", "16", "--cache", tmp_path / "cache"]
    p = run(args + ["--out", tmp_path / "a"])
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert (m["n"], m["steps"], m["sampler"], m["features"], m["reference"], m["reference_images"]) == (30, 10, "ddpm", "digits", "digits", 360)
    assert m["checkpoint_step"] == 30 and m["class_accuracy"] is None and m["commit"] and m["machine"]
    assert all(math.isfinite(m[k]) for k in ("fid", "is_mean", "is_std", "kid_mean", "kid_std"))
    assert 1 <= m["is_mean"] <= 10 and m["fid"] > 0 and m["sampling_seconds"] > 0
    row = (tmp_path / "a" / "row.md").read_text().splitlines()
    assert row[:2] == ROW_HEADER.splitlines() and row[2] == metrics_row(m) and row[2] in p.stdout
    pngs = sorted((tmp_path / "a" / "samples").glob("0*.png"))
    assert len(pngs) == 30 and sorted((tmp_path / "a" / "samples").iterdir()) == pngs   # the samples and nothing else: no grid
    assert (tmp_path / "a" / "samples.png").is_file()                                     # the grid beside them
    cached = sorted((tmp_path / "cache").glob("digits-test-16px-digits-*"))
    assert [c.suffix for c in cached] == [".safetensors"], cached   # our own file: no pickle for torch.load to run
    stamps = [c.stat().st_mtime_ns for c in cached]
    # the same command again: same images, same numbers, the cached reference statistics read, not rewritten
    run(args + ["--out", tmp_path / "b"])
    m2 = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert all(m2[k] == m[k] for k in ("fid", "is_mean", "kid_mean"))
    assert [c.stat().st_mtime_ns for c in cached] == stamps


def test_eval_inception_path_offline_with_random_weights(tiny_ckpt, tmp_path):
    "The whole Inception path (weights check, 299² resize, 2048-d features, logits, statistics), with random weights."
    w = save_random_inception_weights(tmp_path / "inception-random.pth")
    ref = tmp_path / "ref"; ref.mkdir()
    x = load_digits_tensors(16, "test")[0][:6]
    for i, im in enumerate(x): image_grid(im[None], pad=0).save(ref / f"{i}.png")
    run(["hw5-eval", "--ckpt", tiny_ckpt, "--n", "6", "--steps", "5", "--ref", ref, "--inception-weights", w,
         "--cache", tmp_path / "cache", "--out", tmp_path / "o"])
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["features"] == "inception" and m["reference_images"] == 6 and m["n"] == 6
    assert all(math.isfinite(m[k]) for k in ("fid", "is_mean", "kid_mean")) and m["fid"] > 0
    assert len(list((tmp_path / "cache").glob("ref-*-16px-inception-*.safetensors"))) == 1
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_eval_refuses_guidance_with_one_line(tiny_ckpt, tmp_path):
    "The notebook checks every refusal in-process; this one runs the real console script (tests/test_cfg.py: guided runs)."
    _fails(["hw5-eval", "--ckpt", tiny_ckpt, "--out", tmp_path / "o", "--guidance", "1.5", "2.0"],
           "--guidance: guidance 1.5 needs a class-conditional checkpoint")
    assert not (tmp_path / "o").exists()


def test_tables_from_a_checkpoint(tiny_ckpt, tmp_path):
    out = tmp_path / "results"
    # few steps keep it short: the notebook and `make tables` run the seed's 1000 / 50, 100, 200
    run(["hw5-tables", "--ckpt", tiny_ckpt, "--n", "8", "--ddpm-steps", "20", "--ddim-steps", "5", "10", "--out", out,
         "--work", tmp_path / "work", "--cache", tmp_path / "cache", "--skip-tables", "3", "4", "5"])
    md = (out / "digits.md").read_text()
    rec = json.loads((out / "digits.json").read_text())
    r = rec["rows"]["ddpm"]
    assert r["steps"] == 20 and r["n"] == 8 and r["fid_std"] > 0 and f"| DDPM (20 steps) | {r['fid']:.2f} ± {r['fid_std']:.2f} |" in md
    assert "| generated images per row | 8 |" in md and str(tiny_ckpt) in md and f"| commit | {r['commit']} |" in md
    real = rec["rows"]["real"]
    assert f"| Real training digits (the floor for this N) | {real['fid']:.2f} ± {real['fid_std']:.2f} |" in md
    assert "Convergence of this model (DDIM (5 steps, η = 0)" in md
    for k in (3, 4, 5): assert f"## Table {k}:" in md
    assert md.count("Not run by this command (--skip-tables)") == 3 and Image.open(out / "digits_samples.png").size[0] > 300
    ddim = rec["rows"]["ddim"]
    assert [d["steps"] for d in ddim] == [5, 10] and all(d["sampler"] == "ddim" and d["eta"] == 0 for d in ddim)
    assert all(f"| DDIM ({d['steps']} steps, η = 0) | {d['fid']:.2f} ± {d['fid_std']:.2f} |" in md for d in ddim)
    assert Image.open(out / "digits_fid_vs_steps.png").size[0] > 100

"""The fault battery of issue 15, "Nothing lost, nothing run": each case is a real console-script process (or, where a
network, a payload or a full disk has to be staged, the console script's `main` in this process) and each one checks the
exit code, that stderr ends in ONE line `prog: error: ...` naming the problem and the file or option (no traceback),
that nothing written before is lost and that nothing in a file is ever run.

| item | case | exit | the one line says (excerpt) | kept |
|---|---|---|---|---|
| 2 | a second `hw5-train` into a run folder in use (plain, `--overwrite`, `--resume latest`) | 2 | `... is in use by another hw5-train run: pid P on HOST since T (lock file OUT/.lock)` | the first run, untouched |
| 2 | `hw5-train --resume latest` after the holder was killed with SIGKILL | 0 | (the kernel dropped the lock) | every checkpoint |
| 3 | `--lr inf`, `--lr nan`, `--set lr=inf`, `--set ema_decay=nan`, `--set grad_clip=inf`, `--eta inf`, `--guidance nan` | 2 | `--lr: must be a finite number, got inf` / `lr must be a finite number, got inf` | - |
| 3 | weights turn non-finite (lr = inf past the checks) | 1 | `the weights of step 1 are not finite (...): checkpoint not written; training stopped (last complete checkpoint: none)` | the previous checkpoint and the top-level files |
| 3 | `hw5-sample` / `load_checkpoint` on a checkpoint with NaN weights | 2 | `weights in OUT/model.safetensors are not finite: KEY holds NaN or inf` | - |
| 4 | SIGINT mid-run then `--resume latest` with `unet.dropout=0.1`, `hflip=true` | 130, 0 | - | bit-identical weights to an uninterrupted run (test_resume_exact.py) |
| 7 | `hw5-train` into a folder with `model.safetensors`, `config.json`, `metrics.jsonl` but no `checkpoints/` | 2 | `OUT already holds files of an earlier run (config.json, metrics.jsonl, model.safetensors): start again with --overwrite` | every file |
| 8 | `hw5-sample` / `hw5-eval` with an unwritable `--out` | 2 | `--out OUT is not writable: Permission denied` (before sampling) | - |
| 8 | `hw5-sample` / `hw5-eval` whose disk fills while writing PNGs | 1 | `cannot write OUT/000000.png: File too large` | no 0-byte or partial PNG |
| 8 | `hw5-eval --ref` a folder with 1 image | 2 | `FID needs at least 2 reference images, REF has 1` (before sampling) | - |
| 8 | the disk fills between two checkpoints (metrics.jsonl) | 1 | `cannot write OUT/metrics.jsonl: No space left on device; training stopped at step 7 (last complete checkpoint: .../step_000005)` | step_000005, resumable |
| 8 | a torn last line in `metrics.jsonl`, then `--resume` | 0 | - | every complete metrics line |
| 8 | a latent-cache `.npy` holding Python objects | 2 | `corrupt latent cache PATH/labels.npy: it holds Python objects, not numbers (delete PATH to encode again)` | nothing is unpickled |
| 9 | `hw5-sample` on a checkpoint whose `vae.path` is a hub name | 2 | `... names the VAE 'org/repo', a hub name: loading it would download it; pass --allow-download` | no network call |
| 10 | top-level `model.safetensors` from another save than `config.json` | 2 | `OUT/model.safetensors and OUT/config.json come from different saves (...)` | the checkpoints |
| 10 | files and folders that checkpoints write | - | mode 0666 & ~umask, 0777 & ~umask | - |
| 10 | `metrics.loss` after a resume | - | the mean of the same 50 steps as an uninterrupted run (test_resume_exact.py) | - |
| 10 | SIGTERM / SIGINT | 143 / 130 | `hw5-train: stopped by SIGTERM at step N, checkpoint saved; resume with: ...` | the checkpoint of step N |
| - | the course VAE from a Lightning-style `model.ckpt` (callbacks, a payload object beside the state dict) | - | loads the state dict | the payload never runs |
"""
import errno, json, os, pickle, resource, shutil, signal, stat, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from conftest import run, BIN
from hw5_diffusion.checkpoints import CheckpointError, atomic_dir, atomic_write, load_checkpoint, load_state, load_tensors, read_config
from hw5_diffusion.training import (RunLog, TrainConfig, TrainingError, checkpoints, latest_checkpoint, load_training_state,
                                    write_checkpoint)

TINY = ["--preset", "digits", "--set", "unet.ch=8", "--batch-size", "16", "--max-steps", "10", "--set", "checkpoint_every=5",
        "--set", "log_every=1", "--set", "eval_n=32", "--set", "preview_every=0", "--sample-n", "0", "--set", "tensorboard=false"]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": ""}
UNWRITABLE = Path("/sys/kernel/hw5-faults-out")  # not writable even for root


def one_line(p, code, *needles, prog="hw5-"):
    "`p` exited `code` with no traceback, and stderr ends in a single `prog...: error:` line holding every needle."
    err = p.stderr if hasattr(p, "stderr") else p
    assert "Traceback" not in err, err[-3000:]
    rc = p.returncode if hasattr(p, "returncode") else code
    assert rc == code, f"exit {rc}, expected {code}: {err[-2000:]}"
    lines = [l for l in err.strip().splitlines() if ": error: " in l]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0] and lines[0].startswith(prog), err[-2000:]
    for n in needles: assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def in_process(main, argv, capsys):
    "Run console-script `main` in this process; its exit code and stderr."
    with pytest.raises(SystemExit) as e: main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


def tree(d):
    "Every file under `d` with its bytes (but the run lock, which holds the last run's pid)."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    "A finished 10-step run with checkpoints at steps 5 and 10."
    out = tmp_path_factory.mktemp("faults") / "run"
    run(["hw5-train", "--out", out, *TINY], env=ENV)
    return out


# ---- 3: non-finite numbers ----

@pytest.mark.parametrize("argv,needle", [(["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr"), (["--set", "lr=inf"], "lr"),
                                         (["--set", "ema_decay=nan"], "ema_decay"), (["--set", "grad_clip=inf"], "grad_clip"),
                                         (["--set", "weight_decay=inf"], "weight_decay")])
def test_nonfinite_training_options_are_refused(argv, needle, tmp_path, capsys):
    from hw5_diffusion.cli import train_main
    code, err = in_process(train_main, ["--out", tmp_path / "o", *TINY, *argv], capsys)
    line = one_line(err, 2, needle, "finite")
    assert code == 2, line
    assert not (tmp_path / "o" / "checkpoints").exists()


@pytest.mark.parametrize("argv,needle", [(["--sampler", "ddim", "--eta", "inf"], "--eta"), (["--guidance", "nan"], "--guidance")])
def test_nonfinite_sampling_options_are_refused(argv, needle, run_dir, tmp_path, capsys):
    from hw5_diffusion.cli import sample_main
    code, err = in_process(sample_main, ["--ckpt", run_dir, "--out", tmp_path / "s", "--n", "1", *argv], capsys)
    assert code == 2
    one_line(err, 2, needle)


def _nan_model(run_dir, dst):
    "A copy of checkpoint folder `run_dir` (top level) whose weights hold a NaN."
    dst.mkdir(); shutil.copy(run_dir / "config.json", dst)
    st = load_tensors(run_dir / "model.safetensors")
    k = next(iter(st)); st[k] = st[k].clone(); st[k].view(-1)[0] = float("nan")
    save_file(st, str(dst / "model.safetensors"))
    return dst, k


def test_loaders_refuse_nonfinite_weights(run_dir, tmp_path):
    d, k = _nan_model(run_dir, tmp_path / "nan")
    with pytest.raises(CheckpointError, match=f"weights in .*model.safetensors are not finite: {k} holds NaN or inf"):
        load_checkpoint(d)
    p = run(["hw5-sample", "--ckpt", d, "--out", tmp_path / "s", "--n", "1", "--steps", "2"], check=False, env=ENV)
    one_line(p, 2, "not finite", "model.safetensors")
    assert not (tmp_path / "s").exists()


def test_nonfinite_weights_are_never_written(run_dir, tmp_path):
    "A checkpoint with non-finite weights is refused before anything is written; the previous one and the top level stay."
    out = tmp_path / "run"; shutil.copytree(run_dir, out)
    before = tree(out)
    model, scheduler, cfg = load_checkpoint(out)
    with torch.no_grad(): next(model.parameters()).view(-1)[0] = float("inf")
    st = load_training_state(latest_checkpoint(out))
    with pytest.raises(TrainingError, match="the weights of step 11 are not finite .*checkpoint not written; training stopped"):
        write_checkpoint(out, 11, model, scheduler, {k: v for k, v in cfg.items() if k not in ("unet", "scheduler", "step", "save_id")},
                         {**st, "step": 11})
    assert tree(out) == before
    # the real command with --lr inf past the checks: the first update makes every weight NaN
    script = ("import sys\nimport hw5_diffusion.training as tr, hw5_diffusion.cli as cli\n"
              "cli.check_config = tr.check_config = lambda c: c\ncli.positive_float = float\ncli.train_main(sys.argv[1:])\n")
    o2 = tmp_path / "inf"
    p = run([BIN / "python", "-c", script, "--out", o2, *TINY, "--lr", "inf", "--set", "warmup_steps=0", "--set", "checkpoint_every=1"],
            check=False, env=ENV)
    one_line(p, 1, "the weights of step 1 are not finite", "checkpoint not written")
    assert checkpoints(o2) == [] and not (o2 / "model.safetensors").exists()


# ---- 7: the overwrite guard ----

def test_overwrite_guard_protects_every_run_file(run_dir, tmp_path):
    out = tmp_path / "run"; out.mkdir()
    for f in ("model.safetensors", "config.json", "metrics.jsonl"): shutil.copy(run_dir / f, out)
    before = tree(out)
    p = run(["hw5-train", "--out", out, *TINY], check=False, env=ENV)
    one_line(p, 2, str(out), "earlier run", "model.safetensors", "--overwrite")
    assert tree(out) == before


# ---- 8: writable outputs, full disks, torn files ----

def test_sample_and_eval_check_out_before_sampling(run_dir, tmp_path):
    for cmd in (["hw5-sample", "--n", "2", "--steps", "2"], ["hw5-eval", "--n", "2", "--steps", "2"]):
        t0 = time.time()
        p = run([cmd[0], "--ckpt", run_dir, "--out", UNWRITABLE / "x", *cmd[1:]], check=False, env=ENV)
        one_line(p, 2, "--out", str(UNWRITABLE), "not writable")
        assert "hw5-sample: ddpm" not in p.stderr  # refused before sampling


def _tiny_file_limit():
    "Any file this process writes may hold 60 bytes: a 16×16 PNG does not fit."
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (60, 60))


def test_full_disk_while_writing_pngs_is_one_line_and_leaves_no_partial_png(run_dir, tmp_path):
    for cmd in (["hw5-sample"], ["hw5-eval"]):
        out = tmp_path / cmd[0]
        # GIT_OPTIONAL_LOCKS=0: hw5-eval's `git status` (the commit in metrics.json) must not leave a torn index.lock
        p = run([*cmd, "--ckpt", run_dir, "--out", out, "--n", "2", "--steps", "2", "--sampler", "ddim"], check=False,
                env={**ENV, "GIT_OPTIONAL_LOCKS": "0"}, preexec_fn=_tiny_file_limit)
        one_line(p, 1, "cannot write", ".png", "File too large")
        pngs = list(out.rglob("*.png")) + [f for f in out.rglob(".*") if f.is_file()]
        assert not pngs, f"partial files left: {pngs}"


def test_eval_checks_the_reference_before_sampling(run_dir, tmp_path, capsys, monkeypatch):
    import hw5_diffusion.cli as cli
    from PIL import Image
    ref = tmp_path / "ref"; ref.mkdir(); Image.new("L", (16, 16)).save(ref / "a.png")
    sampled = []
    monkeypatch.setattr(cli, "sample_images", lambda *a, **k: sampled.append(1) or (_ for _ in ()).throw(AssertionError("sampled")))
    code, err = in_process(cli.eval_main, ["--ckpt", run_dir, "--out", tmp_path / "e", "--ref", ref, "--features", "digits",
                                           "--n", "4", "--steps", "2"], capsys)
    assert code == 2 and not sampled
    one_line(err, 2, "at least 2 reference images", str(ref))


def test_disk_full_between_checkpoints_stops_with_one_line_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    script = ("import errno, sys\nimport hw5_diffusion.training as tr\nfrom hw5_diffusion.cli import train_main\n"
              "real = tr.RunLog.log\n"
              "def log(self, step, **kw):\n"
              "    if step == 7: raise OSError(errno.ENOSPC, 'No space left on device', str(self.path))\n"
              "    real(self, step, **kw)\n"
              "tr.RunLog.log = log\ntrain_main(sys.argv[1:])\n")
    p = run([BIN / "python", "-c", script, "--out", out, *TINY], check=False, env=ENV)
    one_line(p, 1, "No space left on device", "metrics.jsonl", "step_000005")
    assert [c.name for c in checkpoints(out)] == ["step_000005"] and read_config(out)["step"] == 5
    run(["hw5-train", "--out", out, *TINY, "--resume", "latest"], env=ENV)
    assert read_config(out)["step"] == 10


def test_torn_metrics_line_is_dropped_on_resume(run_dir, tmp_path):
    out = tmp_path / "run"; shutil.copytree(run_dir, out)
    with open(out / "metrics.jsonl", "a") as f: f.write('{"step": 11, "lo')  # a kill in the middle of a write
    run(["hw5-train", "--out", out, *TINY, "--resume", out / "checkpoints" / "step_000005"], env=ENV)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in rows if "loss" in r}) == list(range(1, 11))


class Payload:
    "Writes a marker file when unpickled."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_latent_cache_with_python_objects_is_corrupt(tmp_path):
    from hw5_diffusion.latent import LatentCache
    d, marker = tmp_path / "cache", tmp_path / "pwned"; d.mkdir()
    (d / "meta.json").write_text(json.dumps(dict(classes=[], n=2)))
    for f in ("mean.npy", "logvar.npy"): np.save(d / f, np.zeros((2, 1, 2, 2), np.float32))
    np.save(d / "labels.npy", np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"corrupt latent cache .*labels.npy: it holds Python objects"):
        LatentCache(d)
    assert not marker.exists()
    np.save(d / "labels.npy", np.zeros(2, np.int64)); np.save(d / "mean.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"corrupt latent cache .*mean.npy"):
        LatentCache(d)
    assert not marker.exists()


# ---- 9: no network unless asked ----

def test_hub_vae_name_in_a_checkpoint_is_not_downloaded(run_dir, tmp_path, capsys, monkeypatch):
    import hw5_diffusion.latent as latent
    from hw5_diffusion.cli import sample_main, eval_main
    ck = tmp_path / "ck"; ck.mkdir(); shutil.copy(run_dir / "model.safetensors", ck)
    cfg = read_config(run_dir); cfg["vae"] = dict(source="org/repo", path="org/repo", hash="0" * 16, scale=0.2, image_shape=[1, 16, 16])
    (ck / "config.json").write_text(json.dumps(cfg))
    calls = []
    monkeypatch.setattr(latent, "load_diffusers_vae", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(CheckpointError("network")))
    for main in (sample_main, eval_main):
        code, err = in_process(main, ["--ckpt", ck, "--out", tmp_path / "s", "--n", "2", "--steps", "2"], capsys)
        assert code == 2
        one_line(err, 2, "'org/repo'", "hub name", "--allow-download")
        assert not calls
    code, err = in_process(sample_main, ["--ckpt", ck, "--out", tmp_path / "s", "--n", "2", "--steps", "2", "--allow-download"], capsys)
    assert code == 2 and calls == [("org/repo", None)]  # asked for: it is tried


# ---- 10: smaller ----

def test_top_level_weights_from_another_save_are_refused(run_dir, tmp_path):
    out = tmp_path / "run"; shutil.copytree(run_dir, out)
    shutil.copy(out / "checkpoints" / "step_000005" / "model.safetensors", out / "model.safetensors")  # killed between the copies
    with pytest.raises(CheckpointError, match="come from different saves"):
        load_checkpoint(out)
    p = run(["hw5-sample", "--ckpt", out, "--out", tmp_path / "s", "--n", "1", "--steps", "2"], check=False, env=ENV)
    one_line(p, 2, "different saves", str(out / "model.safetensors"))
    load_checkpoint(out / "checkpoints" / "step_000010")  # the checkpoints themselves load


def test_written_files_respect_the_umask(run_dir, tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "f", lambda p: Path(p).write_text("x"))
        with atomic_dir(tmp_path / "d") as t: (t / "g").write_text("y")
    finally: os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    ck = latest_checkpoint(run_dir)  # hw5-train under the test's umask
    assert mode(ck) == 0o777 & ~old and mode(ck / "model.safetensors") == mode(run_dir / "config.json") == 0o666 & ~old


def _start(out, *extra):
    return subprocess.Popen([BIN / "hw5-train", "--out", out, *TINY, "--max-steps", "40", *extra], stdout=subprocess.DEVNULL,
                            stderr=open(f"{out}.stderr", "w"), env={**os.environ, **ENV})


def _wait_for_step(p, out, step, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None: raise AssertionError(open(f"{out}.stderr").read()[-2000:])
        f = out / "metrics.jsonl"
        if f.exists() and any(l.startswith('{"step": ') and int(l.split(",")[0].split(": ")[1]) >= step for l in f.read_text().splitlines()[:-1]): return
        time.sleep(0.01)
    raise AssertionError(f"no step {step}")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_saves_and_exits_128_plus_signal(sig, code, tmp_path):
    out = tmp_path / "run"
    p = _start(out)
    _wait_for_step(p, out, 8)
    p.send_signal(sig); p.wait(timeout=120)
    err = open(f"{out}.stderr").read()
    assert p.returncode == code and "Traceback" not in err, err[-2000:]
    stopped = int(latest_checkpoint(out).name.split("_")[1])
    assert f"stopped by {signal.Signals(sig).name} at step {stopped}, checkpoint saved" in err
    assert read_config(out)["step"] == stopped


# ---- the course VAE from a Lightning-style checkpoint ----

def test_lightning_style_course_vae_loads_and_its_payload_never_runs(tmp_path):
    from hw5_diffusion.latent import KLAutoencoder, load_course_vae, state_hash
    small = dict(in_channels=3, ch=16, ch_mult=[1, 2], num_res_blocks=1, z_channels=3, embed_dim=3)
    torch.manual_seed(0); vae = KLAutoencoder(**small)
    marker = tmp_path / "pwned"
    sd = {**vae.state_dict(), "loss.logvar": torch.zeros(())}
    ckpt = {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.4.2", "state_dict": sd,
            "callbacks": {"ModelCheckpoint": Payload(marker)}, "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
            "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": {"monitor": Payload(marker), "cfg": {1, 2}}}
    torch.save(ckpt, tmp_path / "model.ckpt")
    with pytest.raises(pickle.UnpicklingError): torch.load(tmp_path / "model.ckpt", weights_only=True)  # what used to refuse it
    loaded = load_course_vae(tmp_path / "model.ckpt", small)
    assert not marker.exists(), "the payload ran"
    assert state_hash(loaded) == state_hash(vae)
    # a file holding nothing but such objects is still refused, and runs nothing
    torch.save({"w": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pt: it holds Python objects"):
        load_tensors(tmp_path / "evil.pt")
    assert not marker.exists()

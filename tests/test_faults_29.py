"""Issue 29, "Nothing deleted, nothing fetched, nothing stuck": the reliability holes left after issue 15's battery
(tests/test_faults.py). Each test here failed on the code before the fix it covers.

| item | case | exit | kept / never happens |
|---|---|---|---|
| 1 | `hw5-export --ckpt RUN --to diffusers OUT --overwrite` with OUT the run, a folder inside it, or a folder holding it | 2 | the run, byte for byte |
| 2 | kill -9 inside the deletion of an old checkpoint (rotation); an old checkpoint without config.json | 0 | resume goes on, with one warning |
| 3 | a checkpoint's config names a hub VAE or `data: cifar10, download: true`; `hw5-train --resume` | 2 | no socket is opened |
| 4 | SIGINT while `hw5-train --vae train` trains the VAE | 130 | no `vae/config.json` marking a half-trained VAE |
| 5 | a checkpoint whose recorded loss is NaN; finite weights whose samples are not finite; a NaN eval loss at a save | 2 / 2 / 1 | no black samples; no absurd checkpoint written |
| 6 | the issue's list of bad options and configs | 2 | one line |
| 7 | SIGINT in `hw5-sample`, while samples.png is drawn, twice in training | 130 | the current step's checkpoint |
| 8 | refused `--resume`s into a new, a nested new or an empty folder; a killed export's `.OUT.*.tmp` | 2 / 0 | no new folder or lock file; the litter is cleaned |
| 9 | disk full in `hw5-export`; in `hw5-eval`'s optional reference cache | 1 / 0 | one line; eval goes on without the cache |
| 10 | a latent-cache entry holding Python objects | 0 | a warning, the entry encoded again |
| 11 | an EXIF-rotated JPEG; an EPS file named `.png` | - / 2 | upright pixels; Ghostscript never starts |
| 12 | course `model.ckpt` with an `AttributeDict` / `defaultdict` beside the state dict | - | the weights load |
"""
import collections, json, os, re, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from conftest import run, BIN
from test_faults import TINY, ENV, one_line, in_process, tree, _tiny_file_limit
from hw5_diffusion.checkpoints import CheckpointError, load_tensors, read_config
from hw5_diffusion.training import checkpoints, latest_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    "A finished 10-step run with checkpoints at steps 5 and 10."
    out = tmp_path_factory.mktemp("faults29") / "run"
    run(["hw5-train", "--out", out, *TINY], env=ENV)
    return out


def _copy_ckpt(run_dir, dst, **cfg_changes):
    "A copy of the run's top-level checkpoint with `config.json` changed."
    dst.mkdir(parents=True, exist_ok=True); shutil.copy(run_dir / "model.safetensors", dst)
    cfg = {**read_config(run_dir), **cfg_changes}
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


# ---- 6: bad input is one line and exit 2 ----

def _vae_folder(path, channels):
    "A small trained-format VAE folder (our KLAutoencoder) for `channels`-channel images."
    from hw5_diffusion.latent import KLAutoencoder, LatentVAE, save_vae
    torch.manual_seed(0)
    return save_vae(LatentVAE(KLAutoencoder(in_channels=channels, ch=8, ch_mult=[1, 2], num_res_blocks=1, z_channels=1), 1.0), path)


def _rgb_folder(root, n=4, side=16):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True, exist_ok=True)
        for k in range(n): Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(root / "train" / c / f"{k}.png")
    return root


SMALL = ["--max-steps", "2", "--batch-size", "8", "--sample-n", "0", "--set", "tensorboard=false", "--set", "eval_n=0"]

TRAIN_BAD = [(["--device", "bogus"], "--device"), (["--seed", "-1"], "--seed"), (["--seed", "99999999999999999999"], "--seed"),
             (["--set", "resolution=-5"], "resolution"), (["--set", "unet.ch=0"], "unet"), (["--resolution", "100000"], "resolution"),
             (["--lr", "1e38"], "lr"), (["--set", 'scheduler={"beta_end": 5}'], "beta"), (["--set", "beta_end=1.5"], "beta")]


@pytest.mark.parametrize("argv,needle", TRAIN_BAD, ids=[" ".join(a) for a, _ in TRAIN_BAD])
def test_bad_training_options_are_one_line(argv, needle, tmp_path, capsys):
    from hw5_diffusion.cli import train_main
    code, err = in_process(train_main, ["--out", tmp_path / "r", *SMALL, *argv], capsys)
    one_line(err, code, needle, prog="hw5-train")
    assert code == 2 and not (tmp_path / "r").exists()


def test_mismatched_vae_channels_are_one_line(tmp_path, capsys, monkeypatch):
    "A 3-channel VAE on 1-channel digits (a VAE folder, and a course model.ckpt), a 1-channel VAE on RGB images."
    import hw5_diffusion.latent as latent
    from hw5_diffusion.cli import train_main
    rgb, grey = _vae_folder(tmp_path / "vae3", 3), _vae_folder(tmp_path / "vae1", 1)
    small = dict(in_channels=3, out_channels=3, ch=8, ch_mult=[1, 2], num_res_blocks=1, z_channels=3, embed_dim=3)
    monkeypatch.setattr(latent, "COURSE_VAE", small)  # the course's architecture, 30 times smaller
    torch.manual_seed(0); torch.save({"state_dict": latent.KLAutoencoder(**small).state_dict()}, tmp_path / "model.ckpt")
    cases = [(["--data", "digits", "--vae", rgb], "3"), (["--data", "digits", "--vae", tmp_path / "model.ckpt"], "3"),
             (["--data", _rgb_folder(tmp_path / "imgs"), "--resolution", "16", "--vae", grey], "1")]
    for i, (argv, ch) in enumerate(cases):
        code, err = in_process(train_main, ["--out", tmp_path / f"r{i}", *SMALL, *argv], capsys)
        line = one_line(err, code, "channel", prog="hw5-train")
        assert code == 2, line


CONFIG_BAD = [("scheduler", []), ("vae", "x"), ("unet", "deep"), ("unet", {"ch": 10_000_000}), ("metrics", [1])]


@pytest.mark.parametrize("key,value", CONFIG_BAD, ids=[f"{k}={str(v)[:12]}" for k, v in CONFIG_BAD])
def test_malformed_checkpoint_config_is_one_line(key, value, run_dir, tmp_path):
    cfg = read_config(run_dir)
    if value == "deep": text = json.dumps({**cfg, "unet": "X"}).replace('"X"', "[" * 100_000 + "]" * 100_000)
    elif isinstance(value, dict): text = json.dumps({**cfg, key: {**cfg[key], **value}})
    else: text = json.dumps({**cfg, key: value})
    ck = tmp_path / "ck"; ck.mkdir(); shutil.copy(run_dir / "model.safetensors", ck); (ck / "config.json").write_text(text)
    p = run(["hw5-sample", "--ckpt", ck, "--out", tmp_path / "s", "--n", "2", "--steps", "2"], check=False, env=ENV)
    one_line(p, 2, str(ck), prog="hw5-sample")
    assert not (tmp_path / "s").exists()


SAMPLE_BAD = [(["--device", "bogus"], "--device"), (["--seed", str(2 ** 70)], "--seed"), (["--seed", "-1"], "--seed")]


@pytest.mark.parametrize("argv,needle", SAMPLE_BAD, ids=[" ".join(a) for a, _ in SAMPLE_BAD])
def test_bad_sampling_options_are_one_line(argv, needle, run_dir, tmp_path, capsys):
    from hw5_diffusion.cli import sample_main, eval_main
    for main, prog in ((sample_main, "hw5-sample"), (eval_main, "hw5-eval")):
        code, err = in_process(main, ["--ckpt", run_dir, "--out", tmp_path / "s", "--n", "2", "--steps", "2", *argv], capsys)
        one_line(err, code, needle, prog=prog)
        assert code == 2


# ---- 1: hw5-export never replaces its own checkpoint ----

def test_export_never_replaces_the_checkpoint_or_its_run(run_dir, tmp_path, capsys):
    from hw5_diffusion.interop import export_main
    a = tmp_path / "a"; shutil.copytree(run_dir, a)
    ck, before = latest_checkpoint(a), tree(a)
    for ckpt, out, how in [(a, a, "is"), (ck, a, "holds"), (ck, ck, "is"), (a, a / "export", "is inside"), (ck, a / "checkpoints", "holds")]:
        code, err = in_process(export_main, ["--ckpt", ckpt, "--to", "diffusers", out, "--overwrite"], capsys)
        one_line(err, code, f"{how} the --ckpt", prog="hw5-export")
        assert code == 2
    assert tree(a) == before


# ---- 2: a kill during checkpoint rotation ----

DYING_RMTREE = """
import os, shutil, signal, sys
from pathlib import Path
real = shutil.rmtree
def rmtree(p, *a, **k):  # ext4's order: config.json goes first, then the kill
    if (Path(p) / "training_state.json").is_file():
        (Path(p) / "config.json").unlink(); os.kill(os.getpid(), signal.SIGKILL)
    return real(p, *a, **k)
shutil.rmtree = rmtree
from hw5_diffusion.cli import train_main
train_main(sys.argv[1:])
"""
ROTATE = [*TINY, "--set", "keep_last=1", "--set", "eval_n=0"]


def test_kill_during_rotation_never_blocks_resume(tmp_path):
    out = tmp_path / "run"
    p = run([BIN / "python", "-c", DYING_RMTREE, "--out", out, *ROTATE], check=False, env=ENV, cwd=tmp_path)  # the installed package
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]  # killed inside the deletion of step_000005
    assert [c.name for c in checkpoints(out)] == ["step_000010"]  # nothing half-deleted is listed
    p = run(["hw5-train", "--out", out, *ROTATE, "--max-steps", "15", "--resume", "latest"], check=False, env=ENV)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert sorted(c.name for c in (out / "checkpoints").iterdir()) == ["step_000015"]  # keep_last holds, no litter


def test_incomplete_old_checkpoint_is_skipped_with_one_warning(run_dir, tmp_path):
    out = tmp_path / "run"; shutil.copytree(run_dir, out)
    (out / "checkpoints" / "step_000005" / "config.json").unlink()  # what the old rotation left after a kill
    p = run(["hw5-train", "--out", out, *TINY, "--max-steps", "15", "--resume", "latest"], check=False, env=ENV)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    warn = [l for l in p.stderr.splitlines() if "incomplete checkpoint" in l]
    assert len(warn) == 1 and "step_000005" in warn[0], p.stderr[-2000:]
    assert sorted(c.name for c in (out / "checkpoints").iterdir()) == ["step_000010", "step_000015"]


# ---- 3: a config never reaches the network ----

@pytest.fixture
def no_network(monkeypatch):
    "Every attempt to resolve a host or open a connection is recorded and fails, so a request is caught, not just refused."
    tried = []
    def refuse(*a, **k):
        tried.append(a[:2]); raise OSError("the test forbids network access")
    for obj, name in [(socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "create_connection"), (socket, "getaddrinfo")]:
        monkeypatch.setattr(obj, name, refuse)
    return tried


def _resume_with_train_config(run_dir, tmp_path, **changes):
    out = tmp_path / "run"; shutil.copytree(run_dir, out)
    f = latest_checkpoint(out) / "config.json"; cfg = json.loads(f.read_text())
    cfg["train"].update(changes); f.write_text(json.dumps(cfg))
    return ["--out", out, "--resume", "latest", "--max-steps", "15"]


def test_hub_vae_in_a_resumed_config_is_not_fetched(run_dir, tmp_path, capsys, no_network):
    from hw5_diffusion.cli import train_main
    argv = _resume_with_train_config(run_dir, tmp_path, vae="org/repo")
    code, err = in_process(train_main, argv, capsys)
    one_line(err, code, "'org/repo'", "--allow-download", prog="hw5-train")
    assert code == 2 and no_network == []
    code, err = in_process(train_main, [*argv, "--allow-download"], capsys)  # asked for: tried (and refused by the test)
    assert code == 2 and no_network


def test_torchvision_download_in_a_resumed_config_is_not_started(run_dir, tmp_path, capsys, no_network, monkeypatch):
    import hw5_diffusion.data as data
    from hw5_diffusion.cli import train_main
    monkeypatch.setattr(data, "DATA_HOME", tmp_path / "data")
    argv = _resume_with_train_config(run_dir, tmp_path, data="cifar10", download=True)
    code, err = in_process(train_main, argv, capsys)
    one_line(err, code, "cifar10", "--allow-download", prog="hw5-train")
    assert code == 2 and no_network == []
    code, err = in_process(train_main, [*argv, "--allow-download"], capsys)
    assert code == 2 and no_network


# ---- 4, 7: Ctrl-C ----

def _popen(cmd, log):
    return subprocess.Popen([str(BIN / cmd[0]), *map(str, cmd[1:])], stdout=subprocess.DEVNULL, stderr=open(log, "w"), env={**os.environ, **ENV})


def _wait_for(p, log, pattern, timeout=600):
    "Poll `log` (a progress bar's stderr) until `pattern` appears; the process must still run."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None: raise AssertionError(f"exited {p.returncode} early: {Path(log).read_text()[-2000:]}")
        if re.search(pattern, Path(log).read_text(errors="replace")): return
        time.sleep(0.02)
    raise AssertionError(f"no {pattern!r} in {Path(log).read_text()[-2000:]}")


def _stopped(p, log, *needles, code=130):
    p.wait(timeout=300)
    err = Path(log).read_text(errors="replace")
    assert p.returncode == code and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "stopped by SIGINT" in last and all(n in last for n in needles), last
    return err


def test_ctrl_c_while_the_vae_trains_is_130_and_marks_nothing_finished(tmp_path):
    out, log = tmp_path / "run", tmp_path / "err"
    p = _popen(["hw5-train", "--out", out, "--latent", "--vae", "train", "--vae-steps", "3000", "--max-steps", "5", "--batch-size", "16",
                "--sample-n", "0", "--set", "tensorboard=false", "--set", "eval_n=0"], log)
    _wait_for(p, log, r"\| *[1-9]\d*/3000")
    p.send_signal(signal.SIGINT)
    _stopped(p, log, "nothing was saved")
    assert not (out / "vae" / "config.json").exists() and not (out / "checkpoints").exists()


def test_ctrl_c_in_hw5_sample_is_one_line_and_130(run_dir, tmp_path):
    out, log = tmp_path / "s", tmp_path / "err"
    p = _popen(["hw5-sample", "--ckpt", run_dir, "--out", out, "--n", "4", "--steps", "1000"], log)
    _wait_for(p, log, r"sampling: .*\| *[1-9]\d*/1000")
    p.send_signal(signal.SIGINT)
    _stopped(p, log, "hw5-sample")
    assert not out.exists() or not [f for f in out.rglob("*") if f.is_file()]


def test_ctrl_c_while_samples_png_is_drawn_keeps_the_checkpoint(tmp_path):
    out, log = tmp_path / "run", tmp_path / "err"
    p = _popen(["hw5-train", "--out", out, *TINY, "--sample-n", "4", "--sample-steps", "1000", "--sample-sampler", "ddpm"], log)
    _wait_for(p, log, r"sampling: .*\| *[1-9]\d*/1000")
    p.send_signal(signal.SIGINT)
    _stopped(p, log, "step_000010 is saved", "--resume latest")
    assert read_config(out)["step"] == 10 and not (out / "samples.png").exists()


def test_second_ctrl_c_changes_nothing_inside_the_training_loop():
    from hw5_diffusion.training import stop_signals
    with stop_signals() as flag:
        os.kill(os.getpid(), signal.SIGINT)  # os.kill runs this process's handler before it returns
        assert flag.name == "SIGINT"
        os.kill(os.getpid(), signal.SIGINT)  # used to raise KeyboardInterrupt wherever the loop was, the save included
    assert flag.name == "SIGINT"


def _delivered(pid, signum):
    "Whether no `signum` is pending for process `pid` any more (Linux /proc)."
    status = Path(f"/proc/{pid}/status").read_text()
    return not any(int(m, 16) & (1 << (signum - 1)) for m in re.findall(r"^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)", status, re.M))


def test_double_ctrl_c_in_training_saves_the_current_step(tmp_path):
    from test_faults import _start, _wait_for_step
    out = tmp_path / "run"
    p = _start(out)
    _wait_for_step(p, out, 8)
    for _ in range(3):
        p.send_signal(signal.SIGINT)
        while p.poll() is None and not _delivered(p.pid, signal.SIGINT): time.sleep(0.001)
    p.wait(timeout=300)
    err = open(f"{out}.stderr").read()
    assert p.returncode == 130 and "Traceback" not in err, err[-2000:]
    stopped = int(latest_checkpoint(out).name.split("_")[1])
    assert f"stopped by SIGINT at step {stopped}, checkpoint saved" in err and read_config(out)["step"] == stopped


# ---- 5: a diverged checkpoint ----

def test_checkpoint_with_a_nan_recorded_loss_is_refused(run_dir, tmp_path):
    ck = _copy_ckpt(run_dir, tmp_path / "ck", metrics={**read_config(run_dir)["metrics"], "eval_loss": float("nan")})
    p = run(["hw5-sample", "--ckpt", ck, "--out", tmp_path / "s", "--n", "2", "--steps", "2"], check=False, env=ENV)
    one_line(p, 2, str(ck / "config.json"), "eval_loss = nan", prog="hw5-sample")
    assert not (tmp_path / "s").exists()


def test_absurd_finite_weights_fail_the_sampling_run(run_dir, tmp_path):
    ck = _copy_ckpt(run_dir, tmp_path / "ck")
    w = load_file(ck / "model.safetensors")
    save_file({k: v * 1e20 if v.is_floating_point() else v for k, v in w.items()}, ck / "model.safetensors",
              metadata={"save_id": read_config(ck)["save_id"]})
    assert all(v.isfinite().all() for v in load_file(ck / "model.safetensors").values())  # finite, as after --lr 1e20
    p = run(["hw5-sample", "--ckpt", ck, "--out", tmp_path / "s", "--n", "2", "--steps", "2"], check=False, env=ENV)
    one_line(p, 2, str(ck), "not finite", prog="hw5-sample")
    assert not list((tmp_path / "s").glob("*.png")) if (tmp_path / "s").exists() else True


def test_a_nan_eval_loss_is_never_written_as_a_checkpoint(tmp_path):
    from hw5_diffusion.ddpm import DDPMScheduler
    from hw5_diffusion.training import TrainingError, write_checkpoint
    from hw5_diffusion.unet import UNet
    model = UNet(in_channels=1, ch=8, ch_mult=(1, 2), attn_levels=(1,), sample_size=16)
    with pytest.raises(TrainingError, match="eval_loss"):
        write_checkpoint(tmp_path, 1, model, DDPMScheduler(), dict(metrics=dict(loss=0.1, eval_loss=float("nan"))), dict(model={}))
    assert checkpoints(tmp_path) == [] and not (tmp_path / "config.json").exists()


# ---- 8: a refused run creates nothing; a killed export's litter is cleaned ----

def test_refused_runs_leave_no_folder(run_dir, tmp_path, capsys):
    from hw5_diffusion.cli import train_main
    new = tmp_path / "new"
    cases = [["--resume", "latest"], ["--preset", "digits", "--resume", "latest"], ["--resume", tmp_path / "missing"],
             ["--resume", run_dir, "--set", "unet.ch=16"], ["--resume", run_dir, "--set", "lr=0.5"]]
    empty = tmp_path / "empty"; empty.mkdir()
    for argv in cases:
        for out in (new, new / "deeper" / "run", empty):
            code, err = in_process(train_main, ["--out", out, *argv], capsys)
            one_line(err, code, prog="hw5-train")
            assert code == 2 and not new.exists() and list(empty.iterdir()) == [], (argv, out, sorted(map(str, tmp_path.rglob("*"))))


def test_a_killed_exports_hidden_folder_is_removed_by_the_next_export(run_dir, tmp_path, capsys):
    from hw5_diffusion.interop import export_main
    out = tmp_path / "exp"
    stale, other = tmp_path / ".exp.x1y2z3.tmp", tmp_path / ".other.x1y2z3.tmp"
    for d in (stale, other): d.mkdir(); (d / "model_index.json").write_text("{}")
    code, err = in_process(export_main, ["--ckpt", run_dir, "--to", "diffusers", out], capsys)
    assert code == 0, err
    assert (out / "model_index.json").is_file() and not stale.exists() and other.exists()


# ---- 9: a full disk in export and eval ----

def _small_file_limit():
    "Any file this process writes may hold 8 KiB: the JSON files fit, weights and feature caches do not."
    import resource
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


def test_full_disk_in_export_is_one_line_and_leaves_nothing(run_dir, tmp_path):
    out = tmp_path / "exp"
    p = run(["hw5-export", "--ckpt", run_dir, "--to", "diffusers", out], check=False, env=ENV, preexec_fn=_small_file_limit)
    one_line(p, 1, str(out), "File too large", prog="hw5-export")
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_full_disk_in_evals_optional_cache_warns_and_goes_on(run_dir, tmp_path):
    out, cache = tmp_path / "ev", tmp_path / "cache"
    p = run(["hw5-eval", "--ckpt", run_dir, "--out", out, "--n", "4", "--steps", "2", "--sampler", "ddim", "--cache", cache],
            check=False, env={**ENV, "GIT_OPTIONAL_LOCKS": "0"}, preexec_fn=_small_file_limit)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert len([l for l in p.stderr.splitlines() if l.startswith("warning: cannot write the reference cache")]) == 1
    assert json.loads((out / "metrics.json").read_text())["n"] == 4 and not [f for f in cache.rglob("*") if f.is_file()]


# ---- 10: a corrupt cache entry is encoded again ----

class Payload:
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, "w"))


def test_corrupt_latent_cache_entry_is_encoded_again(tmp_path, capsys):
    from hw5_diffusion.data import TensorImageDataset
    from hw5_diffusion.latent import KLAutoencoder, LatentVAE, encode_dataset
    torch.manual_seed(0)
    ds = TensorImageDataset(torch.rand(8, 1, 16, 16) * 2 - 1, torch.arange(8) % 2, ["a", "b"])
    vae = LatentVAE(KLAutoencoder(in_channels=1, ch=8, ch_mult=[1, 2], num_res_blocks=1, z_channels=1), 1.0, "test")
    first = encode_dataset(vae, ds, tmp_path, progress=False)
    mean = np.array(first.mean)
    marker = tmp_path / "pwned"
    np.save(first.path / "labels.npy", np.array([Payload(marker)] * 8, dtype=object), allow_pickle=True)
    capsys.readouterr()
    again = encode_dataset(vae, ds, tmp_path, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: corrupt latent cache") and "labels.npy" in err[0], err
    assert again.encoded == 8 and again.path == first.path and not marker.exists()
    assert np.array_equal(np.array(again.mean), mean) and again.labels.tolist() == [0, 1] * 4
    assert encode_dataset(vae, ds, tmp_path, progress=False).encoded == 0  # reused from now on


def test_tests_never_use_the_users_cache():
    from hw5_diffusion import data, evaluation, latent
    home = Path("~/.cache/hw5_diffusion").expanduser()
    for p in (evaluation.CACHE_ROOT, latent.latent_cache_root(), data.DATA_HOME):
        assert home not in [p, *p.parents], p


# ---- 11: images ----

def test_exif_rotated_jpeg_loads_upright(tmp_path):
    from hw5_diffusion.data import _open_rgb
    a = np.zeros((20, 40, 3), np.uint8); a[:, :20] = 255  # stored 40 wide, 20 high: the left half white
    im = Image.fromarray(a); exif = im.getexif(); exif[0x0112] = 6  # orientation 6: turn 90° clockwise to show
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    up = np.asarray(_open_rgb(tmp_path / "r.jpg")).astype(float)
    assert up.shape[:2] == (40, 20)  # shown 20 wide, 40 high
    assert up[:16].mean() > 200 and up[-16:].mean() < 50  # the left half, turned clockwise, is on top


def test_eps_named_png_never_starts_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin
    from hw5_diffusion.data import DataError, ImageFolderDataset, _open_rgb
    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or Image.new("RGB", (8, 8)))
    d = tmp_path / "train" / "a"; d.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(d / "ok.png")
    Image.new("RGB", (8, 8), "red").save(d / "x.eps"); (d / "x.eps").rename(d / "x.png")
    with Image.open(d / "x.png") as im: assert im.format == "EPS"  # what Pillow would make of it, unrestricted
    with pytest.raises(DataError, match="x.png"): _open_rgb(d / "x.png")
    ds = ImageFolderDataset(tmp_path, resolution=8, on_corrupt="skip")
    assert [p.name for p, _ in ds.skipped] == ["x.png"] and not calls


# ---- 12: a course checkpoint with dict subclasses beside the weights ----

class AttributeDict(dict):
    "Lightning's hyper-parameter dict: attribute access over a dict."
    def __getattr__(self, k): return self[k]


def test_course_ckpt_with_attributedict_and_defaultdict_loads(tmp_path):
    import pickle
    from hw5_diffusion.latent import KLAutoencoder, load_course_vae, state_hash
    small = dict(in_channels=3, ch=16, ch_mult=[1, 2], num_res_blocks=1, z_channels=3, embed_dim=3)
    torch.manual_seed(0); vae = KLAutoencoder(**small)
    ckpt = {"state_dict": vae.state_dict(), "hyper_parameters": AttributeDict(ddconfig=AttributeDict(ch=16), lr=4.5e-6),
            "callbacks": {"EarlyStopping": collections.defaultdict(list, {"wait": [1, 2]})}, "loops": collections.OrderedDict(a=1)}
    torch.save(ckpt, tmp_path / "model.ckpt")
    with pytest.raises(pickle.UnpicklingError): torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert state_hash(load_course_vae(tmp_path / "model.ckpt", small)) == state_hash(vae)

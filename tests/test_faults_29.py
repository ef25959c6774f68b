"""Issue 29, "Nothing deleted, nothing fetched, nothing stuck": the reliability holes left after issue 15's battery
(tests/test_faults.py). Each test here failed on the code before the fix it covers.

| item | case | exit | kept / never happens |
|---|---|---|---|
| 1 | `hw5-export --ckpt RUN --to diffusers OUT --overwrite` with OUT the run, a folder inside it, or a folder holding it | 2 | the run, byte for byte |
| 2 | kill -9 inside the deletion of an old checkpoint (rotation); an old checkpoint without config.json | 0 | resume goes on, with one warning |
| 3 | a checkpoint's config names a hub VAE or `data: cifar10, download: true`; `hw5-train --resume` | 2 | no socket is opened |
| 4 | SIGINT while `hw5-train --vae train` trains the VAE | 130 | no `vae/config.json` marking a half-trained VAE |
| 5 | a checkpoint whose recorded loss is NaN; finite weights whose samples are not finite | 2 | no black samples |
| 6 | the issue's list of bad options and configs | 2 | one line |
| 7 | SIGINT in `hw5-sample`, while samples.png is drawn, twice in training | 130 | the current step's checkpoint |
| 8 | a refused `--resume` into a new folder; a killed export's `.OUT.*.tmp` | 2 / 0 | no new folder; the litter is cleaned |
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

"""Issue 15, items 4 and 10: a run with dropout and random flips (as the ImageNet-100 presets), stopped with SIGINT and
resumed, ends bit-identical to the run that was never stopped, and its `metrics.loss` is the mean of the same steps."""
import os, signal, subprocess, time
import torch
from conftest import run, BIN
from hw5_diffusion.checkpoints import load_tensors, read_config
from hw5_diffusion.training import latest_checkpoint, load_training_state

TINY = ["--preset", "digits", "--set", "unet.ch=8", "--batch-size", "16", "--max-steps", "30", "--set", "checkpoint_every=5",
        "--set", "log_every=1", "--set", "eval_n=32", "--set", "preview_every=0", "--sample-n", "0", "--set", "tensorboard=false",
        "--set", "unet.dropout=0.1", "--set", "hflip=true"]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": ""}


def _weights(out):
    ck = latest_checkpoint(out)
    return load_training_state(ck)["model"], load_tensors(ck / "model.safetensors")


def test_stop_and_resume_with_dropout_and_flips_is_bit_identical(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "run"
    run(["hw5-train", "--out", ref, *TINY], env=ENV)
    p = subprocess.Popen([BIN / "hw5-train", "--out", out, *TINY], stdout=subprocess.DEVNULL, stderr=open(f"{out}.stderr", "w"),
                         env={**os.environ, **ENV})
    t0 = time.time()
    while not ((out / "metrics.jsonl").exists() and '"step": 8,' in (out / "metrics.jsonl").read_text()):
        assert p.poll() is None and time.time() - t0 < 300, open(f"{out}.stderr").read()[-2000:]
        time.sleep(0.005)
    p.send_signal(signal.SIGINT); p.wait(timeout=120)
    stopped = read_config(out)["step"]
    assert 8 <= stopped < 30, stopped
    run(["hw5-train", "--out", out, *TINY, "--resume", "latest"], env=ENV)
    assert read_config(out)["step"] == 30
    for a, b in zip(_weights(out), _weights(ref)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"stopped at {stopped}: the resumed run differs"
    # metrics.loss: the last 50 steps' mean, the steps before the stop included
    assert read_config(out)["metrics"]["loss"] == read_config(ref)["metrics"]["loss"]

"""The training engine as real processes: two processes end where one does, a run killed with SIGKILL resumes
bit-identically, a kill during a save loses nothing, Ctrl-C saves and exits 130, a diverging run stops at the first
non-finite loss, a pickle with a payload is refused without running it, and a full disk stops training."""
import json, os, resource, shutil, signal, socket, subprocess, time
import pytest
import torch
from conftest import run, BIN
from hw5_diffusion.checkpoints import CheckpointError, load_checkpoint, load_tensors, read_config
from hw5_diffusion.cli import train, train_parser
from hw5_diffusion.training import (apply_overrides, build_unet, checkpoints, latest_checkpoint, load_training_state,
                                    preset, relative_difference)

# A 0.2 M-parameter U-Net, 30 steps of 16 digits, a checkpoint every 5 steps, a metrics line every step.
TINY = ["--preset", "digits", "--set", "unet.ch=8", "--batch-size", "16", "--max-steps", "30", "--set", "checkpoint_every=5",
        "--set", "log_every=1", "--set", "eval_n=32", "--set", "preview_every=0", "--sample-n", "0", "--set", "tensorboard=false"]
# On the CPU, with one BLAS thread in every run, the kernels take the same path and bit-identity is a fair demand; a GPU
# is hidden because cuDNN's backward kernels add in no fixed order (there a resume is the same only up to rounding).
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": ""}


def _weights(out):
    "The raw and the EMA weights of the newest checkpoint of run folder `out`."
    ck = latest_checkpoint(out)
    return load_training_state(ck)["model"], load_tensors(ck / "model.safetensors")


def _assert_identical(out, ref):
    for a, b in zip(_weights(out), _weights(ref)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{out} does not end bit-identical to {ref}"


def _start(out, *extra):
    "Start `hw5-train` in the background; its stderr goes to `out`.stderr."
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([BIN / "hw5-train", "--out", out, *TINY, *extra], stdout=subprocess.DEVNULL,
                            stderr=open(f"{out}.stderr", "w"), env={**os.environ, **ENV})


def _logged_steps(out):
    f = out / "metrics.jsonl"
    steps = []
    for l in (f.read_text().splitlines() if f.exists() else []):
        try: steps.append(json.loads(l)["step"])
        except json.JSONDecodeError: pass  # a line being written
    return steps


def _wait_for_step(p, out, step, timeout=300):
    "Poll `out/metrics.jsonl` until the run has logged `step` (the process keeps running)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None: raise AssertionError(f"the run ended before step {step}: {open(f'{out}.stderr').read()[-2000:]}")
        if any(s >= step for s in _logged_steps(out)): return
        time.sleep(0.005)
    raise AssertionError(f"no step {step} after {timeout} s")


def _step(ck): return int(ck.name.split("_")[1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    "The run that is never interrupted."
    out = tmp_path_factory.mktemp("ref") / "run"
    run(["hw5-train", "--out", out, *TINY], env=ENV)
    return out


def test_sigkill_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    p = _start(out)
    _wait_for_step(p, out, 8)
    p.kill(); p.wait()
    assert p.returncode == -signal.SIGKILL
    killed_at = _step(latest_checkpoint(out))
    assert 5 <= killed_at < 30, killed_at  # the kill landed mid-run, after a checkpoint
    run(["hw5-train", "--out", out, *TINY, "--resume", "latest"], env=ENV)
    assert _step(latest_checkpoint(out)) == 30
    _assert_identical(out, reference)


def test_kill_during_save_keeps_the_previous_checkpoint(reference, tmp_path):
    out = tmp_path / "run"
    # the 2nd checkpoint's training state is half written when the process SIGKILLs itself
    script = ("import os, signal, sys\n"
              "import hw5_diffusion.training as tr\n"
              "from hw5_diffusion.cli import train_main\n"
              "real, calls = tr.save_file, []\n"
              "def dying(tensors, path, *a, **k):\n"
              "    calls.append(path)\n"
              "    real(tensors, path, *a, **k)\n"
              "    if len(calls) == 2:\n"
              "        data = open(path, 'rb').read(); open(path, 'wb').write(data[:len(data) // 2])\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "tr.save_file = dying\n"
              "train_main(sys.argv[1:])\n")
    p = run([BIN / "python", "-c", script, "--out", out, *TINY], check=False, env=ENV)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert [c.name for c in checkpoints(out)] == ["step_000005"]
    assert [d.name for d in (out / "checkpoints").iterdir() if d.name.startswith(".step_000010")], "the save was not interrupted"
    model, _, cfg = load_checkpoint(out)  # the top of the run folder is still the step-5 checkpoint
    assert cfg["step"] == 5 and load_training_state(out / "checkpoints" / "step_000005")["step"] == 5
    run(["hw5-train", "--out", out, *TINY, "--resume", "latest"], env=ENV)
    assert not [d for d in (out / "checkpoints").iterdir() if d.name.startswith(".")], "the half-written folder was not cleaned up"
    _assert_identical(out, reference)


def test_sigint_saves_and_exits_130(tmp_path):
    out = tmp_path / "run"
    p = _start(out)
    _wait_for_step(p, out, 8)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)
    err = open(f"{out}.stderr").read()
    assert p.returncode == 130, err[-2000:]  # 128 + SIGINT, after the save
    assert f"resume with: hw5-train --out {out} --resume latest" in err
    stopped = _step(latest_checkpoint(out))
    assert 8 <= stopped < 30 and f"at step {stopped}" in err
    # the checkpoint of the step it stopped at is complete (resuming from any checkpoint is exact: see above)
    assert load_training_state(latest_checkpoint(out))["step"] == stopped == load_checkpoint(out)[2]["step"]


def test_resume_with_another_model_is_one_clear_error(reference, tmp_path):
    out = tmp_path / "run"; shutil.copytree(reference, out)
    args = train_parser().parse_args(["--out", str(out), *TINY, "--set", "unet.ch=16", "--resume", "latest"])
    with pytest.raises(CheckpointError, match=r"does not match the requested run: unet.ch 8 != 16 \(checkpoint != requested\)$"):
        train(args)


class Payload:
    "A pickle that writes a file when it is unpickled."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_pickle_payload_is_refused_and_never_runs(reference, tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"w": Payload(marker)}, evil)
    torch.load(evil, weights_only=False)  # control: an ordinary unpickling does run the payload
    assert marker.exists(); marker.unlink()
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pt: it holds Python objects that could run code"):
        load_tensors(evil)
    # a checkpoint whose training state is that pickle: resuming from it is refused and runs nothing
    ck = tmp_path / "ck"; shutil.copytree(latest_checkpoint(reference), ck)
    shutil.copy(evil, ck / "training_state.safetensors")
    args = train_parser().parse_args(["--out", str(tmp_path / "o"), *TINY, "--resume", str(ck)])
    with pytest.raises(CheckpointError, match="training_state.safetensors: a pickle/torch.save file, not safetensors; refusing to unpickle it"):
        train(args)
    assert not marker.exists()


def test_diverging_run_stops_at_the_first_nonfinite_loss(tmp_path):
    out = tmp_path / "run"
    # lr 1e30, past the checks (they refuse lr > 1): the first update makes the weights huge, the second step's loss overflows
    script = ("import sys\nimport hw5_diffusion.training as tr, hw5_diffusion.cli as cli\n"
              "cli.check_config = tr.check_config = lambda c: c\ncli.train_main(sys.argv[1:])\n")
    p = run([BIN / "python", "-c", script, "--out", out, *TINY, "--lr", "1e30", "--set", "checkpoint_every=1", "--set", "warmup_steps=0"],
            check=False, env=ENV, cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    line = p.stderr.strip().splitlines()[-1]
    # step 1's weights are finite but absurd: its loss on the evaluation batch is not, and it is never written (issue 29, item 5)
    assert "the eval_loss of step 1 is" in line and "checkpoint not written; training stopped (last complete checkpoint: none)" in line, line
    assert checkpoints(out) == [] and not (out / "model.safetensors").exists()


def _small_disk():
    "A 200 kB limit on the size of any file this process writes: the first checkpoint does not fit."
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_at_save_stops_training(tmp_path):
    out = tmp_path / "run"
    p = run(["hw5-train", "--out", out, *TINY, "--set", "tensorboard=false"], check=False, env=ENV, preexec_fn=_small_disk)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    line = p.stderr.strip().splitlines()[-1]
    assert f"cannot write checkpoint {out}/checkpoints/step_000005" in line and "File too large" in line and "training stopped at step 5" in line
    assert checkpoints(out) == [] and not [d for d in (out / "checkpoints").iterdir()], "a partial checkpoint was left"
    assert _logged_steps(out)[-1] == 5  # training did not go on


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def test_two_processes_match_one_with_the_same_global_batch(reference, tmp_path):
    "`reference` is one process with batch 16; here two processes take 8 each."
    run([BIN / "accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--main_process_port", _free_port(), BIN / "hw5-train", "--out", tmp_path / "two",
         *TINY, "--batch-size", "8"], env=ENV)
    two, one = read_config(tmp_path / "two"), read_config(reference)
    assert (two["num_processes"], two["global_batch"], one["num_processes"], one["global_batch"]) == (2, 16, 1, 16)
    torch.manual_seed(0); start = build_unet(apply_overrides(preset("digits"), ["unet.ch=8"]), 1, 16).state_dict()
    (raw2, ema2), (raw1, ema1) = _weights(tmp_path / "two"), _weights(reference)
    # Same batches, t and noise; the gradients differ only by the order of float sums (~1e-7 relative), which AdamW
    # can turn into ~lr-sized steps for the few weights whose gradient is ~0: judged relative to how far the weights
    # moved, the runs agree to < 1e-2 (a run on other batches differs by order 1: see the training chapter).
    d_raw, d_ema = relative_difference(raw1, raw2, start), relative_difference(ema1, ema2, start)
    print(f"two processes vs one: relative difference {d_raw:.1e} (raw), {d_ema:.1e} (EMA)")
    assert d_raw < 1e-2 and d_ema < 1e-2

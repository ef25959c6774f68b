"""Issue 15, item 2: one run folder, one run. A second `hw5-train` into a folder a run is using exits 2 naming the holder
(plain, `--overwrite` or `--resume latest`) and changes nothing; after the holder is killed with SIGKILL the kernel has
dropped its lock and `--resume latest` goes on."""
import os, signal, socket, subprocess, time
from conftest import run, BIN
from hw5_diffusion.training import checkpoints, latest_checkpoint

TINY = ["--preset", "digits", "--set", "unet.ch=8", "--batch-size", "16", "--set", "checkpoint_every=5", "--set", "log_every=1",
        "--set", "eval_n=32", "--set", "preview_every=0", "--sample-n", "0", "--set", "tensorboard=false"]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": ""}


def test_second_run_into_a_busy_folder_is_refused_and_a_killed_holder_is_no_obstacle(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([BIN / "hw5-train", "--out", out, *TINY, "--max-steps", "100000", "--set", "checkpoint_every=3"],
                              stdout=subprocess.DEVNULL, stderr=open(f"{out}.stderr", "w"), env={**os.environ, **ENV})
    try:
        t0 = time.time()
        while not checkpoints(out):  # the holder has written a checkpoint
            assert holder.poll() is None, open(f"{out}.stderr").read()[-2000:]
            assert time.time() - t0 < 300; time.sleep(0.05)
        for extra in ([], ["--overwrite"], ["--resume", "latest"]):
            p = run(["hw5-train", "--out", out, *TINY, "--max-steps", "100000", *extra], check=False, env=ENV)
            assert "Traceback" not in p.stderr and p.returncode == 2, (extra, p.returncode, p.stderr[-2000:])
            line = p.stderr.strip().splitlines()[-1]
            assert line.startswith("hw5-train: error: ") and "in use by another hw5-train run" in line, line
            assert f"pid {holder.pid} on {socket.gethostname()} since " in line and str(out / ".lock") in line, line
            assert holder.poll() is None and checkpoints(out), "the first run was disturbed"
    finally:
        holder.kill(); holder.wait()
    assert holder.returncode == -signal.SIGKILL
    kept = latest_checkpoint(out)
    step = int(kept.name.split("_")[1])
    run(["hw5-train", "--out", out, *TINY, "--max-steps", str(step + 2), "--resume", "latest"], env=ENV)
    assert latest_checkpoint(out).name == f"step_{step + 2:06d}"

"The console scripts end to end, as real processes: outputs, shapes, and one clear error for bad input."
import json, re
import numpy as np
import pytest
from PIL import Image
from conftest import run


def test_train_writes_checkpoint_and_pictures(tiny_ckpt):
    names = sorted(p.name for p in tiny_ckpt.iterdir() if p.name != ".lock")  # .lock: the run lock, left for the next run
    assert names == ["checkpoints", "config.json", "loss.png", "metrics.jsonl", "model.safetensors", "samples.png", "tb"]
    cfg = json.loads((tiny_ckpt / "config.json").read_text())
    assert cfg["step"] == 30 and cfg["data"] == "digits" and cfg["unet"]["sample_size"] == 16
    assert cfg["scheduler"]["_class_name"] == "DDPMScheduler" and cfg["scheduler"]["num_train_timesteps"] == 1000
    assert Image.open(tiny_ckpt / "samples.png").size[0] > 64


def test_sample_writes_pngs_and_grid(tiny_ckpt, tmp_path):
    p = run(["hw5-sample", "--ckpt", tiny_ckpt, "--n", "4", "--out", tmp_path / "s", "--steps", "20", "--seed", "1"])
    assert "wrote 4 images" in p.stdout
    pngs = sorted((tmp_path / "s").glob("0*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(4)]
    assert all(np.asarray(Image.open(p)).shape == (16, 16) for p in pngs)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [p.name for p in pngs]   # the samples and nothing else
    assert Image.open(tmp_path / "s.png").size[0] > 16 and f"their grid to {tmp_path / 's.png'}" in p.stdout  # the grid beside them
    # same seed, same images
    run(["hw5-sample", "--ckpt", tiny_ckpt, "--n", "4", "--out", tmp_path / "t", "--steps", "20", "--seed", "1"])
    assert all((np.asarray(Image.open(a)) == np.asarray(Image.open(tmp_path / "t" / a.name))).all() for a in pngs)


def _fails(cmd, msg, only_line=True):
    "The command exits 2 with one error line naming `msg` (and, when it fails before any work, nothing else)."
    p = run(cmd, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().replace("\r", "\n").splitlines()
    errors = [l for l in lines if ": error: " in l]
    assert len(errors) == 1 and errors[0] == lines[-1] and msg in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    if only_line: assert len(lines) == 1, p.stderr
    return errors[0]


@pytest.mark.parametrize("args,msg", [
    (["--steps", "-3"], "--steps must be between 1 and T=1000"),
    (["--steps", "0"], "--steps must be between 1 and T=1000"),
    (["--steps", "1001"], "--steps must be between 1 and T=1000"),
    (["--n", "0"], "--n: must be >= 1"),
    (["--n", "many"], "expected a positive integer"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_sample_bad_flags(tiny_ckpt, tmp_path, args, msg):
    _fails(["hw5-sample", "--ckpt", tiny_ckpt, "--out", tmp_path / "o", *args], msg)
    assert not (tmp_path / "o").exists()


def test_sample_missing_and_broken_checkpoints(tiny_ckpt, tmp_path):
    _fails(["hw5-sample", "--ckpt", tmp_path / "nope", "--out", tmp_path / "o"], f"checkpoint folder not found: {tmp_path / 'nope'}")
    bad = tmp_path / "bad"; bad.mkdir()
    _fails(["hw5-sample", "--ckpt", bad, "--out", tmp_path / "o"], "has no config.json")
    (bad / "config.json").write_text("{ not json")
    _fails(["hw5-sample", "--ckpt", bad, "--out", tmp_path / "o"], "corrupt checkpoint config")
    # a config for a bigger model than the weights: the mismatch is named
    cfg = json.loads((tiny_ckpt / "config.json").read_text()); cfg["unet"]["ch"] = 64
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "model.safetensors").write_bytes((tiny_ckpt / "model.safetensors").read_bytes())
    _fails(["hw5-sample", "--ckpt", bad, "--out", tmp_path / "o"], "do not match the model")
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)
    _fails(["hw5-sample", "--ckpt", bad, "--out", tmp_path / "o"], "corrupt checkpoint weights")


@pytest.mark.parametrize("args,msg", [
    (["--data", "/no/such/dir"], "unknown data set '/no/such/dir'"),
    (["--max-steps", "-1"], "--max-steps: must be >= 1"),
    (["--lr", "0"], "--lr: must be > 0"),
    (["--batch-size", "5000"], "larger than the data set (1437 images)"),
    (["--resolution", "10"], "sample_size 10 must be divisible"),
    (["--data", "cifar10"], "pass download=True, or --allow-download"),
])
def test_train_bad_input(tmp_path, args, msg):
    _fails(["hw5-train", "--out", tmp_path / "o", *args], msg)
    assert not (tmp_path / "o").exists()


def test_train_on_image_folder_and_corrupt_image(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / "train" / c).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "data" / "train" / c / f"{k}.png")
    run(["hw5-train", "--data", tmp_path / "data", "--resolution", "16", "--out", tmp_path / "o", "--max-steps", "2",
         "--batch-size", "4", "--sample-n", "2", "--sample-steps", "2"])
    assert json.loads((tmp_path / "o" / "config.json").read_text())["classes"] == ["a", "b"]
    (tmp_path / "data" / "train" / "b" / "broken.png").write_bytes(b"\x89PNG garbage")
    line = _fails(["hw5-train", "--data", tmp_path / "data", "--resolution", "16", "--out", tmp_path / "o2",
                   "--max-steps", "4", "--batch-size", "9", "--sample-n", "0"], "broken.png", only_line=False)
    assert "cannot read image" in line


def test_train_reports_the_samples_digits_fid_beside_the_real_floor(tmp_path):
    "Blobs from a 3-step run get their real (bad) figure, not a flattering one, next to real digits' figure for the same N."
    p = run(["hw5-train", "--data", "digits", "--out", tmp_path / "run", "--max-steps", "3", "--batch-size", "16",
             "--sample-n", "16", "--sample-steps", "5"])
    line = next(l for l in p.stderr.splitlines() if "digits-FID of the 16 images in samples.png" in l)
    fid, floor = (float(v) for v in re.findall(r": (\d+\.\d)", line))
    assert fid > 3 * floor, line


@pytest.mark.parametrize("main", ["hw5_diffusion.cli:train_main", "hw5_diffusion.cli:sample_main", "hw5_diffusion.cli:eval_main",
                                  "hw5_diffusion.results:tables_main", "hw5_diffusion.interop:export_main",
                                  "hw5_diffusion.grader:grade_main", "hw5_diffusion.release:release_main",
                                  "hw5_diffusion.check:check_main"])
def test_help_ends_with_worked_examples_and_version_is_there(main, capsys):
    import importlib, hw5_diffusion
    mod, fn = main.split(":")
    f = getattr(importlib.import_module(mod), fn)
    for flag in ("--help", "--version"):
        with pytest.raises(SystemExit) as e: f([flag])
        assert e.value.code == 0
    out = capsys.readouterr().out
    examples = out.split("examples:\n")[1].split(hw5_diffusion.__version__)[0]
    cmds = [l.strip() for l in examples.splitlines() if l.startswith("  hw5-")]
    assert 2 <= len(cmds) <= 4 and all(c.split()[0] == out.split("usage: ")[1].split()[0] for c in cmds)
    assert out.rstrip().endswith(hw5_diffusion.__version__)


def test_end_of_run_samples_are_in_proportion_on_a_cpu(tmp_path):
    "Without a preset: 16 images (not 64) by DDIM (not 1,000 ancestral steps) on a CPU, in samples.png and TensorBoard, and where the logs are."
    for c in ("a", "b"):
        (tmp_path / "data" / "train" / c).mkdir(parents=True)
        for i in range(4): Image.fromarray((np.random.default_rng(i).random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "data" / "train" / c / f"{i}.png")
    p = run(["hw5-train", "--data", tmp_path / "data", "--resolution", "32", "--max-steps", "3", "--batch-size", "4", "--sample-steps", "5",
             "--device", "cpu", "--out", tmp_path / "run"])
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (cfg["sample_n"], cfg["sample_sampler"]) == (None, "ddim")
    assert Image.open(tmp_path / "run" / "samples.png").size == (2 * (4 * 33 + 1),) * 2   # 16 images of 32² in a 4 × 4 grid, enlarged 2×
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path / "run" / "tb")); ev.Reload()
    assert [e.step for e in ev.Images("samples")] == [3]
    assert f"tensorboard --logdir {tmp_path / 'run' / 'tb'}" in p.stderr


def test_train_once_reuses_a_run_only_of_the_same_config_and_code(tmp_path, monkeypatch):
    "make tables' reuse rule: a finished run is reused when its configuration and the package's code are the ones asked for."
    from hw5_diffusion import cli
    argv = ["--out", tmp_path / "r", "--overwrite", "--max-steps", "2", "--batch-size", "8", "--set", "unet.ch=8", "--sample-n", "0", "--device", "cpu"]
    assert cli.train_once(argv) > 0
    assert json.loads((tmp_path / "r" / "trained_by.json").read_text()) == {"code": cli.code_version()}
    assert cli.train_once(argv) is None                                    # the same run: reused
    assert cli.train_once([*argv[:-2], "--lr", "1e-3", "--device", "cpu"]) > 0  # another configuration: trained
    monkeypatch.setattr(cli, "code_version", lambda: "0" * 16)
    assert cli.train_once([*argv[:-2], "--lr", "1e-3", "--device", "cpu"]) > 0  # other code: trained again
    assert cli.train_once([*argv[:-2], "--lr", "1e-3", "--device", "cpu"]) is None

def test_jobs_start_a_training_process_only_for_an_unfinished_run(tmp_path, monkeypatch):
    "A table's training asked for off the main thread: a finished run is reused there, only an unfinished one gets a process."
    from hw5_diffusion import results
    argv = ["--out", tmp_path / "r", "--overwrite", "--max-steps", "2", "--batch-size", "8", "--set", "unet.ch=8", "--sample-n", "0", "--device", "cpu"]
    jobs = results.Jobs(1, threads=1)
    assert jobs.train(argv) > 0                                            # the main thread trains in this process
    started = []
    monkeypatch.setattr(results, "train_apart", lambda a, threads: started.append(a) or 1.0)
    assert jobs.each([lambda: jobs.train(argv)]) == [None]                 # finished: no process
    assert started == []
    other = [*argv[:-2], "--lr", "1e-3", "--device", "cpu"]
    assert jobs.each([lambda: jobs.train(other)]) == [1.0]                 # another configuration: a process of its own
    assert started == [other]

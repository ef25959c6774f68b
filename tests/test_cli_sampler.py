"`hw5-sample --sampler ddpm|ddim --steps S --eta E`: defaults, the checkpoint's β schedule, and one clear error line; every sampler heads for a clipped x̂_0."
import inspect, json, shutil
import numpy as np
import torch
import pytest
from PIL import Image
from conftest import run
from hw5_diffusion.cli import SAMPLERS, PREDICTIONS_REFUSED, image_seeds, load_for_sampling, make_scheduler, sample, sample_main, sample_parser, sample_images
from hw5_diffusion.data import image_grid
from hw5_diffusion.ddim import DDIMScheduler
from hw5_diffusion.ddpm import DDPMScheduler, PREDICTION_TYPES, generate, generate_clips
from hw5_diffusion.checkpoints import load_checkpoint


def pngs(folder): return [np.asarray(Image.open(p)) for p in sorted(folder.glob("0*.png"))]


def with_scheduler(ckpt, dst, **changes):
    "A copy of checkpoint `ckpt` with its saved scheduler configuration changed."
    shutil.copytree(ckpt, dst)
    cfg = json.loads((dst / "config.json").read_text()); cfg["scheduler"].update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_ddim_uses_the_checkpoint_beta_schedule(tiny_ckpt, tmp_path):
    "The console script's DDIM images are the library's, with the β schedule saved in the checkpoint."
    ckpt = with_scheduler(tiny_ckpt, tmp_path / "ckpt", beta_end=0.03)
    p = run(["hw5-sample", "--ckpt", ckpt, "--n", "3", "--sampler", "ddim", "--steps", "20", "--eta", "0.3", "--seed", "4",
             "--out", tmp_path / "s"])
    assert "ddim with 20 steps, eta 0.3" in p.stderr and "wrote 3 images" in p.stdout
    model = load_checkpoint(ckpt)[0]
    expected = [np.asarray(image_grid(x[None], pad=0)) for x in generate(model, DDIMScheduler(beta_end=0.03), 3, steps=20, eta=0.3, seed=image_seeds(4, 0, 3))]
    default = [np.asarray(image_grid(x[None], pad=0)) for x in generate(model, DDIMScheduler(), 3, steps=20, eta=0.3, seed=image_seeds(4, 0, 3))]
    got = pngs(tmp_path / "s")
    assert all((a == b).all() for a, b in zip(got, expected)) and len(got) == 3
    assert not all((a == b).all() for a, b in zip(got, default))


def sample_quietly(capsys, argv):
    x = sample(sample_parser().parse_args(argv))
    return x, capsys.readouterr().err


def test_step_defaults_and_eta(tiny_ckpt, tmp_path, capsys):
    "ddpm visits all T steps of the checkpoint's schedule, ddim 50 (at most T); η = 0 is deterministic."
    base = ["--ckpt", str(tiny_ckpt), "--n", "2", "--seed", "1"]
    x0, err = sample_quietly(capsys, [*base, "--sampler", "ddim", "--out", str(tmp_path / "a")])
    assert "ddim with 50 steps, eta 0.0" in err
    again, _ = sample_quietly(capsys, [*base, "--sampler", "ddim", "--eta", "0", "--out", str(tmp_path / "b")])
    noisy, _ = sample_quietly(capsys, [*base, "--sampler", "ddim", "--eta", "1", "--out", str(tmp_path / "c")])
    assert (x0 == again).all() and (x0 - noisy).abs().mean() > 0.05
    short = with_scheduler(tiny_ckpt, tmp_path / "short", num_train_timesteps=40)  # 1000 steps would take a while
    for sampler in ("ddpm", "ddim"):
        _, err = sample_quietly(capsys, ["--ckpt", str(short), "--n", "1", "--sampler", sampler, "--out", str(tmp_path / sampler)])
        assert f"{sampler} with 40 steps" in err


@pytest.mark.parametrize("args,msg", [
    (["--sampler", "ddim", "--steps", "0"], "--steps must be between 1 and T=1000, got 0"),
    (["--sampler", "ddim", "--steps", "1001"], "--steps must be between 1 and T=1000, got 1001"),
    (["--sampler", "ddpm", "--steps", "-2"], "--steps must be between 1 and T=1000, got -2"),
    (["--sampler", "ddim", "--eta", "-0.5"], "--eta must be >= 0, got -0.5"),
    (["--sampler", "ddim", "--eta", "nan"], "argument --eta: must be a finite number, got nan"),
    (["--eta", "0.5"], "--eta applies only to --sampler ddim, not ddpm"),
    (["--sampler", "ddim", "--eta", "lots"], "argument --eta: expected a number, got 'lots'"),
    (["--sampler", "plms"], "argument --sampler: invalid choice: 'plms'"),
])
def test_invalid_combinations(tiny_ckpt, tmp_path, capsys, args, msg):
    with pytest.raises(SystemExit) as e: sample_main(["--ckpt", str(tiny_ckpt), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("hw5-sample: error: ") and msg in err, err
    assert not (tmp_path / "o").exists()


def test_invalid_combination_from_the_console(tiny_ckpt, tmp_path):
    p = run(["hw5-sample", "--ckpt", tiny_ckpt, "--out", tmp_path / "o", "--sampler", "ddim", "--steps", "5000"], check=False)
    assert p.returncode == 2 and p.stderr == "hw5-sample: error: --steps must be between 1 and T=1000, got 5000\n", p.stderr


class OneAtATime(torch.nn.Module):
    "The model called on one image at a time: its output for an image then cannot depend on the batch's size (CPU kernels may:"
    "a batch of 1 and of 7 give outputs 1e-6 apart), so that what a sampler does per image shows bit for bit."
    def __init__(self, model):
        super().__init__(); self.model, self.config = model, model.config
    def forward(self, x, t, y=None):
        return torch.cat([self.model(x[i:i + 1], t if t.ndim == 0 else t[i:i + 1], None if y is None else y[i:i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("sampler,eta", [("ddpm", None), ("ddim", 1.0)])
def test_batch_size_never_changes_the_images(tiny_ckpt, sampler, eta):
    "Image i of a seed depends on (seed, i) alone: bit for bit the same 260 images at batch sizes 1, 7, 100 and 256."
    model, scheduler, _ = load_for_sampling(tiny_ckpt, "cpu", sampler)
    model = OneAtATime(model)
    runs = {bs: sample_images(model, scheduler, 260, steps=3, eta=eta, seed=5, batch_size=bs, progress=False)[0] for bs in (1, 7, 100, 256)}
    for bs in (7, 100, 256): assert torch.equal(runs[bs], runs[1]), bs
    first = sample_images(model, scheduler, 100, steps=3, eta=eta, seed=5, batch_size=64, progress=False)[0]
    assert torch.equal(first, runs[1][:100]) and not torch.equal(runs[1][:100], runs[1][100:200])  # more images only append


def test_hw5_sample_batch_size_changes_images_by_rounding_only(tiny_ckpt, tmp_path, capsys):
    """hw5-sample with the batched model: the batch size leaves only float32 rounding of the batched kernels (measured ≤ 4e-6
    after 3 steps, 5e-7 after 1000, no PNG pixel changed), 1e-3 is far above it and far below other noise's O(1)."""
    runs = {bs: sample(sample_parser().parse_args(["--ckpt", str(tiny_ckpt), "--n", "30", "--steps", "3", "--sampler", "ddim", "--eta", "1",
                                                   "--seed", "5", "--batch-size", str(bs), "--out", str(tmp_path / str(bs))])) for bs in (1, 7, 256)}
    for bs in (7, 256): assert (runs[bs] - runs[1]).abs().max() < 1e-3, bs
    capsys.readouterr()


def test_eval_batch_size_never_changes_the_images(tiny_ckpt, tmp_path):
    "hw5-eval samples through the same images: at --batch-size 3 and 8 its PNGs differ by a rounding flip at most, its FID by rounding."
    from hw5_diffusion.cli import evaluate_checkpoint
    rs = [evaluate_checkpoint(tiny_ckpt, n=8, steps=3, batch_size=bs, out=tmp_path / str(bs), cache_root=tmp_path / "cache", progress=False)
          for bs in (3, 8)]
    assert abs(rs[0]["fid"] - rs[1]["fid"]) < 1e-3 * rs[0]["fid"]
    a, b = pngs(tmp_path / "3" / "samples"), pngs(tmp_path / "8" / "samples")
    assert len(a) == len(b) == 8 and all(np.abs(x.astype(int) - y).max() <= 1 for x, y in zip(a, b))



@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_steps_towards_a_clipped_x0(tiny_ckpt, tmp_path, capsys, monkeypatch, sampler):
    """hw5-sample with every sampler on a short-trained checkpoint (clip_sample): each step heads for an x̂_0 in [-1, 1].
    Euler, Euler-ancestral, LMS and PNDM cannot clip: generate hands them the ε̂ re-derived from the clipped x̂_0, so the x̂_0 of
    what they get, x_σ − σ·ε̂ (σ-space) or (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t (PNDM), is in range, and on the bound where the clip acted.
    The others clip in their step: ours, DDPM's and Heun's returned x̂_0, DPM-Solver++'s and UniPC's converted output.
    In range up to float32 rounding of that difference: 2⁻²² of its terms' size."""
    cls, seen = SAMPLERS[sampler], []
    clipped_by_generate = generate_clips(make_scheduler(sampler, DDPMScheduler().config)) is not None
    assert clipped_by_generate == (sampler in ("euler", "euler-ancestral", "lms", "pndm"))
    hook = "convert_model_output" if hasattr(cls, "convert_model_output") else "step"
    original = getattr(cls, hook)
    def record(self, model_output, *args, **kw):
        result = original(self, model_output, *args, **kw)
        if hook == "convert_model_output": x0, size = result, 1.0
        elif not clipped_by_generate: x0, size = result.pred_original_sample, 1.0
        else:
            t, x = args[0], args[1]
            if self.init_noise_sigma != 1.0: a = 1 / (1 + float(self.sigmas[self.step_index - 1]) ** 2)  # step_index has moved on
            else: a = float(self.alphas_cumprod[int(t)])
            x_t = x * a ** 0.5 if self.init_noise_sigma != 1.0 else x
            x0 = (x_t - (1 - a) ** 0.5 * model_output) / a ** 0.5
            size = ((x_t.abs() + (1 - a) ** 0.5 * model_output.abs()) / a ** 0.5).max().item()
        seen.append((x0.abs().max().item(), size))
        return result
    monkeypatch.setattr(cls, hook, record)
    x, err = sample_quietly(capsys, ["--ckpt", str(tiny_ckpt), "--n", "3", "--sampler", sampler, "--steps", "6", "--out", str(tmp_path / "s")])
    assert f"{sampler} with 6 steps" in err and x.shape == (3, 1, 16, 16) and len(pngs(tmp_path / "s")) == 3
    assert len(seen) >= 6, seen
    assert all(m <= 1 + 2 ** -22 * size for m, size in seen), seen
    if clipped_by_generate: assert sum(m >= 1 - 2 ** -22 * size for m, size in seen) >= 3, seen  # the clip acted


@pytest.mark.parametrize("sampler", ["euler-ancestral", "pndm"])
def test_a_sampler_that_cannot_take_the_model_output_is_refused(tiny_ckpt, tmp_path, capsys, sampler):
    "An x_0-predicting model and a sampler whose step takes only ε or v: one error line naming --sampler, no images."
    ckpt = with_scheduler(tiny_ckpt, tmp_path / "x0", prediction_type="sample")
    with pytest.raises(SystemExit) as e: sample_main(["--ckpt", str(ckpt), "--sampler", sampler, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert f"--sampler {sampler} cannot sample a model trained with prediction_type=sample" in err and "use --sampler ddpm" in err
    assert not (tmp_path / "o").exists()


def test_the_refused_pairs_are_those_diffusers_refuses():
    "PREDICTIONS_REFUSED is what each diffusers sampler's step does: one step of every (sampler, prediction type) pair runs or raises."
    for sampler, cls in SAMPLERS.items():
        if not hasattr(cls, "compatibles"): continue  # ours take every type
        for pt in PREDICTION_TYPES:
            s = cls.from_config(DDPMScheduler(prediction_type=pt).config); s.set_timesteps(4)
            x, t = torch.zeros(1, 1, 2, 2), s.timesteps[0]
            try: s.step(x, t, s.scale_model_input(x, t), generator=torch.Generator()) if "generator" in inspect.signature(s.step).parameters else s.step(x, t, s.scale_model_input(x, t)); ok = True
            except (ValueError, NotImplementedError): ok = False
            assert ok == (pt not in PREDICTIONS_REFUSED.get(sampler, ())), (sampler, pt)


def test_restart_makes_as_many_model_evaluations_as_steps(tiny_ckpt, tmp_path, capsys, monkeypatch):
    "--sampler restart --steps N calls the model N times, the walks back included; too few steps for its walks: one line naming --steps."
    from hw5_diffusion.unet import UNet
    calls = []
    original = UNet.forward
    monkeypatch.setattr(UNet, "forward", lambda self, *a, **kw: calls.append(int(a[1].flatten()[0])) or original(self, *a, **kw))
    sample_quietly(capsys, ["--ckpt", str(tiny_ckpt), "--n", "2", "--sampler", "restart", "--steps", "20", "--out", str(tmp_path / "s")])
    t_min, t_max = load_for_sampling(tiny_ckpt, "cpu", "restart")[1].restart_interval()
    assert len(calls) == 20 and calls.count(t_max) == 2 and calls[-1] == t_min, calls  # twice from t_max down again, then from t_min to x_0
    with pytest.raises(SystemExit) as e: sample_main(["--ckpt", str(tiny_ckpt), "--sampler", "restart", "--steps", "3", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--steps 3" in err and "too few" in err, err
    assert not (tmp_path / "o").exists()

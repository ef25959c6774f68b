"""`prediction_type` (issue 13, item 5): the training loss must target what the scheduler config says, ε for `epsilon`,
x_0 for `sample`, v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 for `v_prediction`, so that the checkpoint's own sampler turns the weights
into digits. Before the fix every type was trained on ε: a run labelled v_prediction sampled at digits-FID ≈ 390."""
import time
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler as DiffusersDDPM
from conftest import run
from hw5_diffusion.forward import NoiseSchedule
from hw5_diffusion.ddpm import ddpm_loss, prediction_target, generate, DDPMScheduler, PREDICTION_TYPES
from hw5_diffusion.checkpoints import load_checkpoint
from hw5_diffusion.advanced import hybrid_loss
from hw5_diffusion.evaluation import fidelity_metrics, reference_dataset

TYPES = ["epsilon", "sample", "v_prediction"]


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1
    return x0, torch.randint(0, 1000, (n,), generator=g), torch.randn(x0.shape, generator=g)


def test_types_are_the_schedulers():
    assert PREDICTION_TYPES == tuple(TYPES)
    for pt in TYPES: DDPMScheduler(prediction_type=pt)


@pytest.mark.parametrize("pt", TYPES)
def test_ddpm_loss_is_the_mse_against_the_type_target(pt):
    "The loss of a toy model equals the MSE against ε, x_0 or diffusers' `get_velocity`, all computed in float64."
    s, x0, t, noise = NoiseSchedule(), *_batch()
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].view(-1, 1, 1, 1)
    x0d, nd = x0.double(), noise.double()
    xt = ab.sqrt() * x0d + (1 - ab).sqrt() * nd
    ref = DiffusersDDPM(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    target = {"epsilon": nd, "sample": x0d, "v_prediction": ref.get_velocity(x0d, nd, t)}[pt]
    if pt == "v_prediction": torch.testing.assert_close(target, ab.sqrt() * nd - (1 - ab).sqrt() * x0d, rtol=1e-6, atol=1e-6)
    toy = lambda x, t, y: 0.5 * x + 0.1 * torch.cos(x) - 0.05                     # anything not equal to a target
    expected = ((0.5 * xt + 0.1 * torch.cos(xt) - 0.05) - target).square().mean().item()
    got = ddpm_loss(toy, s, x0, t=t, noise=noise, prediction_type=pt).item()
    assert got == pytest.approx(expected, rel=1e-5), (pt, got, expected)
    torch.testing.assert_close(prediction_target(s, x0, t, noise, pt).double(), target, rtol=1e-5, atol=1e-6)
    others = [ddpm_loss(toy, s, x0, t=t, noise=noise, prediction_type=q).item() for q in TYPES if q != pt]
    assert all(abs(o - got) > 1e-3 for o in others), (pt, got, others)  # the type really changes the target


def test_ddpm_loss_default_is_epsilon_and_unknown_types_are_refused():
    s, x0, t, noise = NoiseSchedule(), *_batch()
    toy = lambda x, t, y: 0.3 * x
    assert ddpm_loss(toy, s, x0, t=t, noise=noise).item() == ddpm_loss(toy, s, x0, t=t, noise=noise, prediction_type="epsilon").item()
    with pytest.raises(ValueError, match="prediction_type must be epsilon, sample or v_prediction, not 'v'"):
        ddpm_loss(toy, s, x0, t=t, noise=noise, prediction_type="v")
    with pytest.raises(ValueError, match="prediction_type must be"):
        hybrid_loss(lambda x, t, y: torch.cat([x, x], 1), s, x0, t=t, noise=noise, prediction_type="v")


@pytest.mark.parametrize("pt", TYPES)
def test_hybrid_loss_supports_every_type(pt):
    """L_simple of the hybrid loss is `ddpm_loss` of the mean channels; L_vlb reads the mean the way the sampler does:
    an oracle that outputs the exact target and Σ = β̃ (v = −1) has KL 0 at every t > 0, for every type."""
    s, x0, t, noise = NoiseSchedule(), *_batch(seed=1)
    t[:4] = torch.tensor([0, 1, 500, 999])
    g = torch.Generator().manual_seed(2)
    toy_v = torch.rand(x0.shape, generator=g) * 2 - 1
    toy = lambda x, t, y: torch.cat([0.5 * x + 0.1, toy_v], 1)
    simple = hybrid_loss(toy, s, x0, t=t, noise=noise, vlb_weight=0.0, prediction_type=pt)
    torch.testing.assert_close(simple, ddpm_loss(lambda x, t, y: 0.5 * x + 0.1, s, x0, t=t, noise=noise, prediction_type=pt))
    target = prediction_target(s, x0, t, noise, pt)
    oracle = lambda x, t, y: torch.cat([target, torch.full_like(x, -1.0)], 1)
    vlb = (hybrid_loss(oracle, s, x0, t=t, noise=noise, vlb_weight=1.0, reduce=False, prediction_type=pt)
           - hybrid_loss(oracle, s, x0, t=t, noise=noise, vlb_weight=0.0, reduce=False, prediction_type=pt)) / 1000
    assert vlb[t > 0].abs().max() < 1e-3, (pt, vlb[t > 0].abs().max())
    eps_oracle = lambda x, t, y: torch.cat([noise, torch.full_like(x, -1.0)], 1)
    vlb_eps = (hybrid_loss(eps_oracle, s, x0, t=t, noise=noise, vlb_weight=1.0, reduce=False)
               - hybrid_loss(eps_oracle, s, x0, t=t, noise=noise, vlb_weight=0.0, reduce=False)) / 1000
    torch.testing.assert_close(vlb[t == 0], vlb_eps[t == 0], rtol=1e-3, atol=1e-3)  # the decoder NLL at t = 0


# End to end: `hw5-train --set prediction_type=X` on the digits, then the checkpoint's own (ancestral DDPM) sampler.
# Budget: 200 steps × batch 64 (≈ 35 s CPU each), 200 samples with 50 respaced steps (≈ 12 s each); ≈ 140 s CPU in all.
# Measured digits-FIDs (200 samples vs the 360 test digits, sample seeds 0 / 1): epsilon 89.2 / 78.6, sample 71.8 / 71.2,
# v_prediction 101.0 / 86.2; ε-trained weights sampled as v_prediction (what every v run was before the fix) 373.7 / 389.5;
# pure noise ≈ 660–690.
# (v-trained weights sampled as epsilon give 73.7: ancestral sampling with clipped x̂_0 forgives that mislabel, since
# v ≈ ε at small t where the details are made, so it is not used as the contrast.)
BUDGET = ["--max-steps", "200", "--batch-size", "64", "--sample-n", "0", "--set", "checkpoint_every=0", "--set", "eval_n=0",
          "--set", "preview_every=0", "--set", "tensorboard=false"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root, out = tmp_path_factory.mktemp("prediction_types"), {}
    for pt in TYPES:
        t0 = time.time()
        run(["hw5-train", "--data", "digits", "--out", root / pt, *BUDGET, "--set", f"prediction_type={pt}"], timeout=900)
        print(f"trained {pt} in {time.time() - t0:.0f} s")
        out[pt] = root / pt
    return out


def _fid(model, scheduler, ref):
    x = generate(model, scheduler, 200, steps=50, seed=0, progress=False)
    return fidelity_metrics(x, ref, features="digits")["fid"]


def test_each_prediction_type_trains_to_digits(runs):
    ref = reference_dataset("digits", 16)[0]
    fids = {}
    for pt, d in runs.items():
        model, scheduler, cfg = load_checkpoint(d)
        assert cfg["scheduler"]["prediction_type"] == scheduler.config["prediction_type"] == pt
        fids[pt] = _fid(model, scheduler, ref)
    model, scheduler, _ = load_checkpoint(runs["epsilon"])
    mislabelled = _fid(model, DDPMScheduler.from_config({**scheduler.config, "prediction_type": "v_prediction"}), ref)
    noise = fidelity_metrics(torch.randn(200, 1, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1), ref,
                             features="digits")["fid"]
    print("digits-FID:", {k: round(v, 1) for k, v in fids.items()}, "ε weights as v:", round(mislabelled, 1), "noise:", round(noise, 1))
    assert mislabelled > 250 and noise > 400, (mislabelled, noise)
    for pt, f in fids.items():
        assert f < 200, (pt, fids)                                # measured 71–101; ≈ 380 before the fix for v_prediction
        assert f < 0.6 * mislabelled and f < 0.35 * noise, (pt, f, mislabelled, noise)
    assert max(fids.values()) < 2.5 * min(fids.values()), fids  # measured ratio 1.2–1.4

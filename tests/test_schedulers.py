"""Our schedulers against diffusers': the same model output and noise give the same step for every option,
diffusers' own published full-loop figures reproduce, and each side's schedulers drive the other side's models."""
import itertools
import pytest
import torch
import diffusers
from hw5_diffusion.ddpm import DDPMScheduler, generate
from hw5_diffusion.unet import digits_unet
from hw5_diffusion.ddim import DDIMScheduler

PREDICTIONS, SPACINGS = ["epsilon", "sample", "v_prediction"], ["leading", "trailing", "linspace"]


def rel_err(a, b) -> float: return ((a - b).abs().max() / b.abs().max()).item()


def exact_alphas(s):
    "diffusers scheduler `s` with its ᾱ table computed in float64 (it keeps a float32 cumprod)."
    c = s.config
    s.alphas_cumprod = torch.cumprod(1 - torch.linspace(c.beta_start, c.beta_end, c.num_train_timesteps, dtype=torch.float64), 0)
    if hasattr(s, "final_alpha_cumprod"):
        s.final_alpha_cumprod = s.alphas_cumprod.new_tensor(1.0) if c.set_alpha_to_one else s.alphas_cumprod[0]
    return s


def match_ddim_stride(theirs, ours):
    """diffusers' DDIM steps from t to t - T//num_inference_steps whatever the spacing (diffusers issue #12633);
    ours steps to the next visited time step. Set its num_inference_steps so the two coincide."""
    T, ts = ours.num_train_timesteps, ours.timesteps.tolist()
    gaps = {t - ours.previous_timestep(t) for t in ts[:-1]} or {T}
    assert len(gaps) == 1, f"no diffusers DDIM stride visits {ts}"
    theirs.num_inference_steps = T // gaps.pop()
    assert all(ours.previous_timestep(t) == t - T // theirs.num_inference_steps for t in ts[:-1])


def step_errors(ours, theirs, n, **step_kw) -> dict:
    "{t: (relative error of prev_sample, of pred_original_sample)} at every step visited with `n` steps."
    ours.set_timesteps(n); theirs.set_timesteps(n)
    assert ours.timesteps.tolist() == theirs.timesteps.tolist()
    if isinstance(theirs, diffusers.DDIMScheduler): match_ddim_stride(theirs, ours)
    g = torch.Generator().manual_seed(n)
    x, out = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    errs = {}
    for t in ours.timesteps.tolist():
        # the same seed gives both schedulers the same noise
        a = ours.step(out, t, x, generator=torch.Generator().manual_seed(t), **step_kw)
        b = theirs.step(out, t, x, generator=torch.Generator().manual_seed(t), **step_kw)
        errs[t] = rel_err(a.prev_sample, b.prev_sample), rel_err(a.pred_original_sample, b.pred_original_sample)
    return errs


def check_exact_parity(ours, theirs, n, **step_kw):
    """Every step's prev_sample agrees to 1e-5 with diffusers given the same (float64) ᾱ table.
    pred_original_sample agrees to 1e-5 too, except that a clipped x̂_0 (|x̂_0| ≤ 1) comes from terms of size
    |x_t|/√ᾱ_t (~500 at t = 999) whose float32 cancellation leaves ~2e-5 of the range in either implementation."""
    errs = step_errors(ours, exact_alphas(theirs), n, **step_kw)
    assert max(e for e, _ in errs.values()) <= 1e-5, max(errs.items(), key=lambda kv: kv[1][0])
    assert max(e for _, e in errs.values()) <= (1e-4 if ours.config["clip_sample"] else 1e-5), max(errs.items(), key=lambda kv: kv[1][1])


def check_parity(make_ours, make_theirs, n, **step_kw):
    """Parity with the exact ᾱ table; with diffusers' stock float32 table, every step between time steps with
    1 - ᾱ >= 0.01 (t >= 27) or ᾱ = 1 (x_0) agrees to 1e-5 too. Closer to t = 0, 1 - ᾱ is so small that float32
    rounding of ᾱ (6e-8) costs diffusers up to 2e-4 (test_near_t0_parity)."""
    check_exact_parity(make_ours(), make_theirs(), n, **step_kw)
    ours, stock = make_ours(), step_errors(make_ours(), make_theirs(), n, **step_kw)
    ours.set_timesteps(n)
    alpha_bar = lambda t: ours.alphas_cumprod[t].item() if t >= 0 else ours.final_alpha_bar
    well_conditioned = lambda t: alpha_bar(t) == 1 or 1 - alpha_bar(t) >= 0.01
    away_from_0 = [e for t, (e, _) in stock.items() if well_conditioned(t) and well_conditioned(ours.previous_timestep(t))]
    assert max(away_from_0) <= 1e-5


@pytest.mark.parametrize("prediction_type,variance_type,spacing,clip",
                         list(itertools.product(PREDICTIONS, ["fixed_small", "fixed_large"], SPACINGS, [True, False])))
def test_ddpm_step_parity(prediction_type, variance_type, spacing, clip):
    cfg = dict(prediction_type=prediction_type, variance_type=variance_type, timestep_spacing=spacing, clip_sample=clip)
    # 13 steps: uneven gaps for trailing and linspace
    check_parity(lambda: DDPMScheduler(**cfg), lambda: diffusers.DDPMScheduler(**cfg), 13)


@pytest.mark.parametrize("prediction_type,spacing,clip,eta,set_alpha_to_one",
                         list(itertools.product(PREDICTIONS, SPACINGS, [True, False], [0.0, 0.5, 1.0], [True, False])))
@pytest.mark.parametrize("clipped_eps", [True, False])
def test_ddim_step_parity(prediction_type, spacing, clip, eta, set_alpha_to_one, clipped_eps):
    cfg = dict(prediction_type=prediction_type, timestep_spacing=spacing, clip_sample=clip, set_alpha_to_one=set_alpha_to_one)
    # step counts at which diffusers' DDIM stride can visit what the spacing lists (see match_ddim_stride)
    n = {"leading": 13, "trailing": 10, "linspace": 10}[spacing]
    check_parity(lambda: DDIMScheduler(**cfg), lambda: diffusers.DDIMScheduler(**cfg), n, eta=eta, use_clipped_model_output=clipped_eps)


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("ours,theirs,kw", [(DDPMScheduler, diffusers.DDPMScheduler, {}),
                                            (DDIMScheduler, diffusers.DDIMScheduler, {"eta": 1.0, "use_clipped_model_output": True})])
def test_near_t0_parity(ours, theirs, kw, prediction_type):
    "All 1000 steps, t = 0 included, with the exact ᾱ table."
    check_exact_parity(ours(prediction_type=prediction_type), theirs(prediction_type=prediction_type), 1000, **kw)


@pytest.mark.parametrize("ours,theirs", [(DDPMScheduler, diffusers.DDPMScheduler), (DDIMScheduler, diffusers.DDIMScheduler)])
def test_add_noise_parity(ours, theirs):
    g = torch.Generator().manual_seed(0)
    x0, noise, t = torch.rand(8, 3, 8, 8, generator=g) * 2 - 1, torch.randn(8, 3, 8, 8, generator=g), torch.tensor([0, 1, 10, 100, 500, 900, 998, 999])
    assert rel_err(ours().add_noise(x0, noise, t), theirs().add_noise(x0, noise, t)) <= 1e-5


def test_ddim_previous_step_is_the_next_visited_one():
    for spacing, n in itertools.product(SPACINGS, [10, 13, 50]):
        s = DDIMScheduler(timestep_spacing=spacing); s.set_timesteps(n)
        ts = s.timesteps.tolist()
        assert [s.previous_timestep(t) for t in ts] == ts[1:] + [-1]


# diffusers' scheduler tests (tests/schedulers/test_schedulers.py): a 4×3×8×8 ramp and the model x·t/(t+1)
def dummy_sample():
    n = 4 * 3 * 8 * 8
    return (torch.arange(n).reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2)


def dummy_model(x, t):
    if isinstance(t, torch.Tensor): t = t.reshape(-1, 1, 1, 1).to(x.dtype)
    return x * t / (t + 1)


BETAS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")


@pytest.mark.parametrize("prediction_type,total,mean", [("epsilon", 258.9606, 0.3372), ("v_prediction", 202.0296, 0.2631)])
def test_ddpm_full_loop_reproduces_diffusers(prediction_type, total, mean):
    "test_scheduler_ddpm.py: 1000 steps, no set_timesteps, noise from torch.manual_seed(0)."
    s = DDPMScheduler(**BETAS, variance_type="fixed_small", clip_sample=True, prediction_type=prediction_type)
    x, g = dummy_sample(), torch.manual_seed(0)
    for t in reversed(range(1000)): x = s.step(dummy_model(x, t), t, x, generator=g).prev_sample
    assert abs(x.abs().sum().item() - total) < 1e-2 and abs(x.abs().mean().item() - mean) < 1e-3, x.abs().sum().item()


@pytest.mark.parametrize("cfg,total,mean", [({}, 172.0067, 0.223967), ({"prediction_type": "v_prediction"}, 52.5302, 0.0684),
                                            ({"set_alpha_to_one": True, "beta_start": 0.01}, 149.8295, 0.1951),
                                            ({"set_alpha_to_one": False, "beta_start": 0.01}, 149.0784, 0.1941)])
def test_ddim_full_loop_reproduces_diffusers(cfg, total, mean):
    "test_scheduler_ddim.py: 10 steps, η = 0, diffusers' default ε̂ (the model's, not re-derived from the clipped x̂_0)."
    s = DDIMScheduler(**{**BETAS, "clip_sample": True, **cfg})
    s.set_timesteps(10)
    x = dummy_sample()
    for t in s.timesteps: x = s.step(dummy_model(x, t), t, x, 0.0, use_clipped_model_output=False).prev_sample
    assert abs(x.abs().sum().item() - total) < 1e-2 and abs(x.abs().mean().item() - mean) < 1e-3, x.abs().sum().item()


def tiny_diffusers_unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                                 norm_num_groups=4, attention_head_dim=None).eval()


@pytest.mark.parametrize("ours,pipeline,kw", [(DDPMScheduler, diffusers.DDPMPipeline, {}),
                                              (DDIMScheduler, diffusers.DDIMPipeline, {"eta": 0.5, "use_clipped_model_output": True})])
def test_our_schedulers_drive_a_diffusers_unet(ours, pipeline, kw):
    """Our generate + our scheduler on a diffusers UNet2DModel = diffusers' own pipeline with its scheduler.
    Compared in float64 (U-Net, noise, both schedules' ᾱ): in float32 the two loops differ by ~1e-6..1e-5 of the range,
    rounding that 25 U-Net evaluations amplify by an amount that depends on the CPU and thread count (1.02e-5 on an
    AVX-512 Xeon with 2 threads), so no float32 bound follows from the arithmetic. In float64 they agree to ~1e-14
    on every machine; 1e-10 leaves 10⁴ of headroom and still fails any float32-sized or formula difference."""
    unet = tiny_diffusers_unet().double()
    pipe = pipeline(unet=unet, scheduler=getattr(diffusers, ours.__name__)()); pipe.set_progress_bar_config(disable=True)
    exact_alphas(pipe.scheduler)  # the pipeline's own copy: DDIMPipeline rebuilds its scheduler from the config
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # our generate draws its noise in the default dtype, the pipeline in the U-Net's
    try:
        ref = pipe(batch_size=3, generator=torch.Generator().manual_seed(7), num_inference_steps=25, output_type="pt", **kw).images
        x = generate(unet, ours(), 3, steps=25, seed=7, progress=False, **kw)
    finally: torch.set_default_dtype(dtype)
    assert x.shape == (3, 1, 8, 8) and ref.shape == (3, 1, 8, 8) and x.dtype == ref.dtype == torch.float64
    assert rel_err((x / 2 + 0.5).clamp(0, 1), ref) <= 1e-10


@pytest.mark.parametrize("name,kw", [("DDPMScheduler", {}), ("DDIMScheduler", {"eta": 0.0, "use_clipped_model_output": True}),
                                     ("DDIMScheduler", {"eta": 1.0, "use_clipped_model_output": True})])
def test_diffusers_schedulers_drive_our_unet(name, kw):
    "diffusers' schedulers in our generate loop, on our U-Net, give our schedulers' images."
    torch.manual_seed(0)
    model = digits_unet(sample_size=8, ch=8, ch_mult=(1, 2), attn_levels=(1,))
    for p in model.parameters(): p.data.normal_(0, 0.05)  # the U-Net zero-initialises its output layers
    theirs = generate(model, getattr(diffusers, name)(), 3, steps=25, seed=3, progress=False, **kw)
    ours = generate(model, {"DDPMScheduler": DDPMScheduler, "DDIMScheduler": DDIMScheduler}[name](), 3, steps=25, seed=3, progress=False, **kw)
    assert theirs.std() > 0.1 and rel_err(ours, theirs) <= 1e-5


# Issue 30 item 3: the samplers that coincide with DDIM (η = 0, ε̂ re-derived from the clipped x̂_0) do so with generate's clipping.
CLIP_TOL = 1e-4
CLIP_TOL_WHY = """diffusers' Euler and DPM-Solver++ keep their σ table in float32 and step in float32 (`sample.to(torch.float32)` in
their `step`), so even with a float64 U-Net they cannot agree with our float64 DDIM to float64 precision: each step rounds x_σ,
|x_σ| ≤ 5·√(1 + σ²), to 2⁻²⁴ ≈ 6e-8 relative, which is ≤ 3e-7 in the x_t units that reach the U-Net, 3e-6 over 10 steps
(measured 1.1e-6 to 2.1e-6); 1e-4 leaves room for the U-Net to amplify that 30-fold, and is 2·10⁴ below the 2.0 by which
either differs from DDIM without the clip (or with DDIM's default ε̂)."""


def clipping_model():
    "The tiny diffusers U-Net in float64, recording the fraction of x̂_0 pixels outside [-1, 1] at each integer-t call."
    unet, ab, seen = tiny_diffusers_unet().double(), exact_alphas(diffusers.DDPMScheduler()).alphas_cumprod, []
    def record(module, args, output):
        x, t = args[0], int(args[1])
        if t == args[1]: seen.append((((x - (1 - ab[t]).sqrt() * output.sample) / ab[t].sqrt()).abs() > 1).double().mean().item())
    unet.register_forward_hook(record)
    return unet, seen


def float64_generate(model, scheduler, **kw):
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # generate draws its noise in the default dtype
    try: return generate(model, scheduler, 4, steps=10, seed=1, progress=False, **kw)
    finally: torch.set_default_dtype(dtype)


@pytest.mark.parametrize("sampler,spacing,options", [("euler", "leading", {}), ("euler", "leading", {"steps_offset": 1}),
                                                     ("dpm-solver++", "trailing", {})])
def test_clipped_samplers_are_ddim_with_the_clipped_eps(sampler, spacing, options):
    """Euler on the probability-flow ODE, x_σ' = x_σ + (σ' − σ)·ε̂', is DDIM η = 0 in x_σ = x_t/√ᾱ_t units, and so is first-order
    DPM-Solver++: with ε̂' from the clipped x̂_0 (generate's, our DDIM's use_clipped_model_output) the samples agree. Their time steps
    coincide with leading spacing for Euler (its trailing and linspace start from x_T·σ_max, not x_T·√(σ_max² + 1), or visit
    fractional t) and trailing for DPM-Solver++ (its leading spacing strides T // (n + 1)); both end on σ = 0, DDIM on ᾱ = 1."""
    from hw5_diffusion.cli import make_scheduler
    config = {**DDPMScheduler(timestep_spacing=spacing, **options).config}
    theirs = make_scheduler(sampler, config)
    if sampler == "dpm-solver++": theirs = type(theirs).from_config(theirs.config, solver_order=1)
    model, seen = clipping_model()
    x = float64_generate(model, exact_alphas(theirs))
    ddim = float64_generate(model, DDIMScheduler.from_config(config), eta=0.0, use_clipped_model_output=True)
    assert len(seen) == 20 and 0.2 < sum(seen) / len(seen) < 0.99, seen  # the clip acts on most pixels, not all (measured 96%)
    ours = DDIMScheduler.from_config(config); ours.set_timesteps(10)
    assert theirs.timesteps.tolist() == ours.timesteps.tolist()
    assert x.dtype == torch.float64 and (x - ddim).abs().max() <= CLIP_TOL, ((x - ddim).abs().max(), CLIP_TOL_WHY)
    unclipped = float64_generate(model, exact_alphas(make_scheduler(sampler, {**config, "clip_sample": False})))
    default_eps = float64_generate(model, DDIMScheduler.from_config(config), eta=0.0, use_clipped_model_output=False)
    assert (unclipped - ddim).abs().max() > 1e3 * CLIP_TOL and (default_eps - ddim).abs().max() > 1e3 * CLIP_TOL


def test_a_learned_variance_reaches_euler_as_its_mean_channels():
    """A learned-variance model (2×C outputs) sampled by Euler, which keeps the checkpoint's variance_type in its config but has no
    variance: generate hands it the ε̂ channels, clipped as a C-channel model's, bit for bit (it used to hand it all 2×C)."""
    from hw5_diffusion.cli import make_scheduler
    unet = tiny_diffusers_unet()
    class WithVariance(torch.nn.Module):
        def __init__(self): super().__init__(); self.unet, self.config = unet, unet.config
        def forward(self, x, t, y=None): return torch.cat([self.unet(x, t).sample, torch.full_like(x, 0.3)], 1)
    learned = make_scheduler("euler", DDPMScheduler(variance_type="learned_range").config)
    assert learned.config["variance_type"] == "learned_range"
    x = generate(WithVariance(), learned, 2, steps=5, seed=0, progress=False)
    assert torch.equal(x, generate(unet, make_scheduler("euler", DDPMScheduler().config), 2, steps=5, seed=0, progress=False))

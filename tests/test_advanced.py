"""The advanced-techniques chapter: the cosine schedule and the learned variance against diffusers, the
variational-bound terms against direct computations, gradient isolation of the hybrid loss, learned-variance
training and sampling through the command line, the attention configuration, and the Table 5 pipeline."""
import json, math
import pytest
import torch
import diffusers
from hw5_diffusion.cli import CLIError, train_main, sample_main
from hw5_diffusion.forward import make_betas, NoiseSchedule
from hw5_diffusion.ddpm import DDPMScheduler
from hw5_diffusion.unet import UNet
from hw5_diffusion.advanced import discretized_gaussian_log_likelihood, normal_kl, hybrid_loss, vlb_terms
from hw5_diffusion.results import Jobs, advanced_rows, table5_markdown


def test_cosine_schedule_matches_diffusers():
    ours = make_betas("squaredcos_cap_v2", 1000)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").betas.double()
    assert (ours - theirs).abs().max() < 1e-6
    assert abs(ours[0].item() - 4.128e-5) < 1e-8 and ours.max().item() == 0.999
    assert abs(torch.cumprod(1 - ours, 0)[-1].item() - 2.43e-9) < 1e-11
    assert torch.equal(make_betas("cosine", 50), make_betas("squaredcos_cap_v2", 50))


@pytest.mark.parametrize("schedule,steps", [("linear", 1000), ("cosine", 1000), ("cosine", 25), ("linear", 50)])
def test_learned_range_step_matches_diffusers(schedule, steps):
    "The same 2C-channel output and generator give diffusers' learned_range step, also respaced (β, β̃ of the jump)."
    ours = DDPMScheduler(beta_schedule=schedule, variance_type="learned_range")
    theirs = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2" if schedule == "cosine" else "linear",
                                     variance_type="learned_range")
    ours.set_timesteps(steps); theirs.set_timesteps(steps)
    x = torch.randn(3, 2, 8, 8)
    for t in ours.timesteps.tolist()[:: max(1, steps // 6)]:
        out = torch.cat([torch.randn(3, 2, 8, 8), torch.rand(3, 2, 8, 8) * 2 - 1], 1)
        a = ours.step(out, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        b = theirs.step(out, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        assert (a - b).abs().max() < 2e-4 * max(1.0, b.abs().max().item()), t


def test_learned_variance_interpolates_log_domain():
    "v = 0 gives σ² = sqrt(β β̃): the step's noise has that standard deviation (measured on many pixels)."
    s = DDPMScheduler(variance_type="learned_range", clip_sample=False)
    x, eps = torch.zeros(1, 1, 200, 200), torch.zeros(1, 1, 200, 200)
    t = 300
    mean = s.step(torch.cat([eps, torch.zeros_like(eps)], 1), t, x, generator=torch.Generator().manual_seed(0))
    mean_fixed = DDPMScheduler(clip_sample=False).step(eps, t, x, generator=torch.Generator().manual_seed(0))
    sch = NoiseSchedule()
    target = (sch.betas[t] * sch.beta_tilde[t]).sqrt().sqrt().item()
    assert abs(mean.prev_sample.std().item() / target - 1) < 0.02
    assert abs(mean_fixed.prev_sample.std().item() / sch.beta_tilde[t].sqrt().item() - 1) < 0.02


def test_decoder_nll_matches_normal_cdf():
    "The discretised Gaussian log-likelihood equals log(Φ(upper) − Φ(lower)) from torch.distributions, edges to ±∞."
    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 256, (500,), generator=g).double() / 127.5 - 1)
    mean = (x + 0.02 * torch.randn(500, generator=g, dtype=torch.float64)).clamp(-1, 1)
    log_scale = torch.empty(500, dtype=torch.float64).uniform_(-5, -2, generator=g)
    d = torch.distributions.Normal(mean, log_scale.exp())
    upper = torch.where(x > 0.999, torch.ones_like(x), d.cdf(x + 1 / 255))
    lower = torch.where(x < -0.999, torch.zeros_like(x), d.cdf(x - 1 / 255))
    direct = torch.log((upper - lower).clamp(min=1e-12))
    assert (discretized_gaussian_log_likelihood(x, mean, log_scale) - direct).abs().max() < 1e-6
    assert normal_kl(mean, log_scale, mean, log_scale).abs().max() < 1e-12


def test_vlb_gradient_reaches_only_the_variance_rows_of_the_output_layer():
    "L_vlb alone (hybrid minus L_simple, same t and noise): the ε row of the output convolution gets no gradient, the v row does."
    torch.manual_seed(0)
    net = UNet(1, 2, ch=8, ch_mult=(1, 2), attn_levels=(1,), head_channels=8, norm_groups=4, num_res_blocks=1, sample_size=8)
    with torch.no_grad(): net.out[-1].weight.normal_(0, 0.05)
    x0, t = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randint(0, 1000, (8,))
    s = NoiseSchedule(beta_schedule="cosine")
    noise = torch.randn_like(x0)
    vlb = hybrid_loss(net, s, x0, t=t, noise=noise) - hybrid_loss(net, s, x0, t=t, noise=noise, vlb_weight=0.0)
    vlb.backward()
    w = net.out[-1].weight.grad
    assert w[0].abs().max() == 0 and w[1].abs().max() > 0
    assert vlb.item() > 0


def cli(main, argv, capsys):
    "Run a console script's main in this process (the subprocess mechanics are test_cli.py's); returns (exit code, stderr)."
    with pytest.raises(SystemExit) as e: main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


def test_learned_variance_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = cli(train_main, ["--data", "digits", "--out", out, "--max-steps", "4", "--batch-size", "16", "--sample-n", "4",
                                 "--sample-steps", "5", "--set", "unet.ch=8", "--set", "beta_schedule=cosine",
                                 "--set", "variance_type=learned_range", "--set", "importance_sampling=true", "--set", "eval_n=16"], capsys)
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["scheduler"]["variance_type"] == "learned_range" and cfg["scheduler"]["beta_schedule"] == "cosine"
    assert cfg["unet"]["out_channels"] == 2 and math.isfinite(cfg["metrics"]["eval_loss"])
    code, err = cli(sample_main, ["--ckpt", out, "--n", "3", "--steps", "5", "--out", tmp_path / "s"], capsys)  # ancestral, learned σ
    assert code == 0 and len(list((tmp_path / "s").glob("0*.png"))) == 3, err
    code, err = cli(train_main, ["--data", "digits", "--out", tmp_path / "bad", "--max-steps", "2", "--set", "variance_type=learnt"], capsys)
    assert code == 2 and "variance_type must be" in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_attention_config_heads_and_sdpa():
    "Attention at every level, including the highest resolution, with a fixed head width, through SDPA."
    from torch.profiler import profile
    m = UNet(1, ch=16, ch_mult=(1, 2, 4), attn_levels=(0, 1, 2), head_channels=16, norm_groups=8, num_res_blocks=1, sample_size=16)
    heads = {blk.norm.num_channels: blk.heads for blk in m.modules() if type(blk).__name__ == "AttentionBlock"}
    assert heads == {16: 1, 32: 2, 64: 4}
    with torch.no_grad(), profile() as p: m(torch.randn(2, 1, 16, 16), torch.tensor([1, 500]))
    assert any("scaled_dot_product" in e.key for e in p.key_averages())


def test_table5_pipeline(tmp_path):
    "advanced_rows trains each variant with the same budget and evaluates it; a second call reuses the checkpoints, and so does `plain`."
    rows = {"plain DDPM": [], "+ learned variance": ["variance_type=learned_range"]}
    budget = ["max_steps=2", "batch_size=8", "unet.ch=8", "checkpoint_every=0", "eval_n=0", "preview_every=0", "sample_n=0",
              "tensorboard=false"]
    kw = dict(n=8, steps=4, rows=rows, budget=budget, cache_root=tmp_path / "cache", progress=False)
    recs = advanced_rows(tmp_path / "adv", **kw)
    assert [r["label"] for r in recs] == list(rows) and all(math.isfinite(r["fid"]) for r in recs)
    assert all(r["train_cpu_seconds"] > 0 and r["steps"] == 4 and r["sampler"] == "ddpm" for r in recs)
    assert json.loads((tmp_path / "adv" / "row1" / "config.json").read_text())["scheduler"]["variance_type"] == "learned_range"
    again = advanced_rows(tmp_path / "adv", **kw)
    assert [r["train_cpu_seconds"] for r in again] == [None, None] and [r["fid"] for r in again] == [r["fid"] for r in recs]
    # make tables' way: two jobs at a time, one thread each; the same images whichever thread draws them
    two = advanced_rows(tmp_path / "adv", jobs=Jobs(2, threads=1), **kw)
    one = advanced_rows(tmp_path / "adv", jobs=Jobs(1, threads=1), **kw)
    assert [r["train_cpu_seconds"] for r in two] == [None, None] and [r["fid"] for r in two] == [r["fid"] for r in one]
    md = "\n".join(table5_markdown(recs))
    assert "| + learned variance | variance_type=learned_range |" in md


def test_table5_variant_that_cannot_train(tmp_path):
    "A variant whose training fails in its worker process stops the table with one error naming the variant and the reason."
    with pytest.raises(CLIError, match=r"variant 'typo'.*no_such_field"):
        advanced_rows(tmp_path / "adv", n=8, steps=4, rows={"typo": ["no_such_field=1"]}, budget=["max_steps=2"], progress=False)


def test_min_snr_through_the_cli(tmp_path, capsys):
    "hw5-train hands the Trainer the Min-SNR objective: the same first batch, weighted by min(SNR, γ)/SNR ≤ 1, has a smaller loss."
    def first_loss(name, *sets):
        argv = ["--data", "digits", "--out", tmp_path / name, "--max-steps", "1", "--batch-size", "32", "--sample-n", "0",
                "--set", "unet.ch=8", "--set", "log_every=1", "--set", "eval_n=0", *[a for s in sets for a in ("--set", s)]]
        code, err = cli(train_main, argv, capsys)
        assert code == 0, err
        return json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    plain, weighted = first_loss("plain"), first_loss("snr", "min_snr_gamma=5")
    assert json.loads((tmp_path / "snr" / "config.json").read_text())["train"]["min_snr_gamma"] == 5.0
    assert 0 < weighted < plain, (weighted, plain)  # seed 0's 32 draws of t include steps with SNR > 5 (t below ~110)
    code, err = cli(train_main, ["--data", "digits", "--out", tmp_path / "bad", "--max-steps", "1", "--set", "min_snr_gamma=-1"], capsys)
    assert code == 2 and "min_snr_gamma must be >= 0" in err and err.count("\n") == 1, err

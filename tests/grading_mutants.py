"""Submissions for `tests/test_grading*.py`, each a small patch (old text -> new text, `old` occurring exactly once) of a
chapter notebook of the solution: seeded bugs (realistic student mistakes and the part they must cost), correct
solutions written differently (full marks), and cheats (no points)."""
import json
from collections import namedtuple
from pathlib import Path

Mutant = namedtuple("Mutant", "name notebook old new part")

# one per part: each loses points in its own part and nowhere else
MUTANTS = [
    Mutant("q_sample without the square roots", "01_forward",
           "return extract(self.sqrt_alpha_bar, t, x0.shape) * x0 + extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * noise",
           "return extract(self.alpha_bar, t, x0.shape) * x0 + extract(1 - self.alpha_bar, t, x0.shape) * noise",
           "ddpm.q_sample"),
    Mutant("posterior variance β instead of β̃", "01_forward",
           "return mean, extract(self.beta_tilde, t, xt.shape),",
           "return mean, extract(self.betas, t, xt.shape),",
           "ddpm.q_posterior"),
    Mutant("timestep embedding with sin and cos swapped", "02_unet",
           "emb = torch.cat([torch.cos(args), torch.sin(args)], -1)",
           "emb = torch.cat([torch.sin(args), torch.cos(args)], -1)",
           "ddpm.timestep_embedding"),
    Mutant("ResBlock without the residual", "02_unet",
           "return self.skip(x) + self.conv2(self.drop(F.silu(h)))",
           "return self.conv2(self.drop(F.silu(h)))",
           "ddpm.resblock"),
    Mutant("loss on x_0 instead of x_t", "03_ddpm",
           "return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, y), target)",
           "return F.mse_loss(model(x0, t, y), target)",
           "ddpm.loss"),
    Mutant("training step that never zeroes the gradients", "03_ddpm",
           "opt.zero_grad(set_to_none=True)",
           "pass",
           "ddpm.train_step"),
    Mutant("DDPM step that skips the noise at t > 0", "03_ddpm",
           "        if t > 0:\n            z = randn_images(model_output.shape",
           "        if t < 0:\n            z = randn_images(model_output.shape",
           "ddpm.step"),
    Mutant("DDIM with σ in the wrong place", "04_ddim",
           "alpha=math.sqrt(max(1 - c.alpha_bar_prev - sigma ** 2, 0.0)))",
           "alpha=math.sqrt(max(1 - c.alpha_bar_prev, 0.0)))",
           "ddim.step"),
    Mutant("reparameterisation with the variance for the std", "08_latent",
           "return self.mean + self.std * eps",
           "return self.mean + self.var * eps",
           "vae.reparameterization"),
    Mutant("latents not scaled", "08_latent",
           "return (self.scale * (q.sample(generator) if sample else q.mode())).to(x.device)",
           "return (q.sample(generator) if sample else q.mode()).to(x.device)",
           "vae.latent_scaling"),
    Mutant("labels never dropped", "06_training",
           "return torch.rand(global_batch, generator=g, device=device) < p",
           "return torch.zeros(global_batch, dtype=torch.bool, device=device)",
           "cfg.label_dropout"),
    Mutant("CFG with conditional and unconditional swapped", "09_cfg",
           "return torch.lerp(uncond, cond, scale)",
           "return torch.lerp(cond, uncond, scale)",
           "cfg.guidance"),
    Mutant("cosine schedule without the 0.999 cap", "01_forward",
           "return (1 - f[1:] / f[:-1]).clamp(max=max_beta)",
           "return 1 - f[1:] / f[:-1]",
           "advanced.cosine_schedule"),
    Mutant("learned variance interpolated in variance, not log-variance", "03_ddpm",
           "return frac * max_log + (1 - frac) * min_log",
           "return torch.log(frac * torch.exp(torch.as_tensor(max_log)) + (1 - frac) * torch.exp(torch.as_tensor(min_log)))",
           "advanced.learned_variance"),
    Mutant("FID without the covariance term", "07_evaluation",
           "return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)",
           "return float(diff.dot(diff))",
           "advanced.fid"),
]

# the bugs the old hidden tests never reached (issue 27), and more of the same kind
MUTANTS_2 = [
    Mutant("timestep embedding with the wrong frequencies", "02_unet",
           "torch.arange(half, dtype=torch.float32, device=t.device) / half)",
           "torch.arange(half, dtype=torch.float32, device=t.device))",
           "ddpm.timestep_embedding"),
    Mutant("ddpm_loss that ignores the labels", "03_ddpm",
           "return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, y), target)",
           "return F.mse_loss(model(schedule.q_sample(x0, t, noise), t), target)",
           "ddpm.loss"),
    Mutant("model_log_variance with torch.lerp on the bounds (a TypeError with step's float bounds)", "03_ddpm",
           "    frac = (v + 1) / 2                                                          # v ∈ [-1, 1] -> [0, 1]\n    return frac * max_log + (1 - frac) * min_log",
           "    return torch.lerp(min_log, max_log, (v + 1) / 2)",
           "advanced.learned_variance"),
    Mutant("DDPM step that treats variance_type='learned' as fixed", "03_ddpm",
           "if vt in LEARNED_VARIANCE:  # log",
           "if vt == 'learned_range':  # log",
           "ddpm.step"),
    Mutant("DDIM ε̂ that ignores prediction_type without clipping", "04_ddim",
           "eps = model_output if c.eps_coef_sample == 0 else sample.mul(c.eps_coef_sample).add_(model_output, alpha=c.eps_coef_output)",
           "eps = model_output",
           "ddim.step"),
]

# correct, written otherwise: full marks
CORRECT = [
    Mutant("cosine schedule computed in float32, then cast", "01_forward",
           "t = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps",
           "t = torch.arange(num_train_timesteps + 1, dtype=torch.float32) / num_train_timesteps",
           "advanced.cosine_schedule"),
    Mutant("posterior mean in ε form from the float32 buffers", "01_forward",
           "mean = extract(self.posterior_mean_coef1, t, xt.shape) * x0 + extract(self.posterior_mean_coef2, t, xt.shape) * xt",
           "eps = (xt - extract(self.sqrt_alpha_bar, t, xt.shape) * x0) / extract(self.sqrt_one_minus_alpha_bar, t, xt.shape)\n"
           "        mean = (xt - extract(self.betas, t, xt.shape) / extract(self.sqrt_one_minus_alpha_bar, t, xt.shape) * eps) / extract(self.alphas, t, xt.shape).sqrt()",
           "ddpm.q_posterior"),
    Mutant("q_sample from ᾱ with torch.sqrt and explicit indexing", "01_forward",
           "return extract(self.sqrt_alpha_bar, t, x0.shape) * x0 + extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * noise",
           "ab = self.alpha_bar[torch.as_tensor(t).long()].reshape(-1, *[1] * (x0.dim() - 1))\n"
           "        return torch.sqrt(ab) * x0 + torch.sqrt(1 - ab) * noise",
           "ddpm.q_sample"),
    Mutant("guidance written out", "09_cfg",
           "return torch.lerp(uncond, cond, scale)",
           "return uncond + scale * (cond - uncond)",
           "cfg.guidance"),
    Mutant("reparameterisation with addcmul", "08_latent",
           "return self.mean + self.std * eps",
           "return torch.addcmul(self.mean, self.std, eps)",
           "vae.reparameterization"),
]


def patch(nbs: Path, m):
    "Apply mutant `m` to the notebook `m.notebook` in the folder `nbs` (in place)."
    p = Path(nbs) / f"{m.notebook}.ipynb"
    nb = json.loads(p.read_text())
    srcs = ["".join(c["source"]) for c in nb["cells"]]
    assert sum(s.count(m.old) for s in srcs) == 1, f"{m.name!r}: {m.old!r} occurs {sum(s.count(m.old) for s in srcs)} times in {p.name}"
    for c, s in zip(nb["cells"], srcs):
        if m.old in s:
            s = s.replace(m.old, m.new)
            c["source"] = [l + "\n" for l in s.split("\n")[:-1]] + [s.split("\n")[-1]]
    p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

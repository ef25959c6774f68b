"""Seeded bugs for `tests/test_grading.py`: realistic student mistakes, each a small patch (old line -> new line) of one
module of the built package (the package `nbdev_export` writes from the solution notebooks), and the part it must cost."""
from collections import namedtuple

Mutant = namedtuple("Mutant", "name module old new part")

MUTANTS = [
    Mutant("q_sample without the square roots", "forward",
           "return extract(self.sqrt_alpha_bar, t, x0.shape) * x0 + extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * noise",
           "return extract(self.alpha_bar, t, x0.shape) * x0 + extract(1 - self.alpha_bar, t, x0.shape) * noise",
           "ddpm.q_sample"),
    Mutant("posterior variance β instead of β̃", "forward",
           "return mean, extract(self.beta_tilde, t, xt.shape),",
           "return mean, extract(self.betas, t, xt.shape),",
           "ddpm.q_posterior"),
    Mutant("timestep embedding with sin and cos swapped", "unet",
           "emb = torch.cat([torch.cos(args), torch.sin(args)], -1)",
           "emb = torch.cat([torch.sin(args), torch.cos(args)], -1)",
           "ddpm.timestep_embedding"),
    Mutant("timestep embedding with the wrong frequencies", "unet",
           "torch.arange(half, dtype=torch.float32, device=t.device) / half)",
           "torch.arange(half, dtype=torch.float32, device=t.device))",
           "ddpm.timestep_embedding"),
    Mutant("ResBlock without the residual", "unet",
           "return self.skip(x) + self.conv2(self.drop(F.silu(h)))",
           "return self.conv2(self.drop(F.silu(h)))",
           "ddpm.resblock"),
    Mutant("loss on x_0 instead of x_t", "ddpm",
           "return F.mse_loss(model(schedule.q_sample(x0, t, noise), t, y), target)",
           "return F.mse_loss(model(x0, t, y), target)",
           "ddpm.loss"),
    Mutant("training step that never zeroes the gradients", "ddpm",
           "opt.zero_grad(set_to_none=True)",
           "pass",
           "ddpm.train_step"),
    Mutant("DDPM step that skips the noise at t > 0", "ddpm",
           "if t > 0:",
           "if t < 0:",
           "ddpm.step"),
    Mutant("DDIM with σ in the wrong place", "ddim",
           "alpha=math.sqrt(max(1 - c.alpha_bar_prev - sigma ** 2, 0.0)))",
           "alpha=math.sqrt(max(1 - c.alpha_bar_prev, 0.0)))",
           "ddim.step"),
    Mutant("reparameterisation with the variance for the std", "latent",
           "return self.mean + self.std * eps",
           "return self.mean + self.var * eps",
           "vae.reparameterization"),
    Mutant("latents not scaled", "latent",
           "return (self.scale * (q.sample(generator) if sample else q.mode())).to(x.device)",
           "return (q.sample(generator) if sample else q.mode()).to(x.device)",
           "vae.latent_scaling"),
    Mutant("labels never dropped", "training",
           "return torch.rand(global_batch, generator=g, device=device) < p",
           "return torch.zeros(global_batch, dtype=torch.bool, device=device)",
           "cfg.label_dropout"),
    Mutant("CFG with conditional and unconditional swapped", "cfg",
           "return torch.lerp(uncond, cond, scale)",
           "return torch.lerp(cond, uncond, scale)",
           "cfg.guidance"),
    Mutant("cosine schedule without the 0.999 cap", "forward",
           "return (1 - f[1:] / f[:-1]).clamp(max=max_beta)",
           "return 1 - f[1:] / f[:-1]",
           "advanced.cosine_schedule"),
    Mutant("learned variance interpolated in variance, not log-variance", "ddpm",
           "return frac * max_log + (1 - frac) * min_log",
           "return torch.log(frac * torch.exp(torch.as_tensor(max_log)) + (1 - frac) * torch.exp(torch.as_tensor(min_log)))",
           "advanced.learned_variance"),
    Mutant("FID without the covariance term", "evaluation",
           "return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)",
           "return float(diff.dot(diff))",
           "advanced.fid"),
]

# failures the grader must contain to the part they happen in: it scores that part 0 and goes on
ISOLATION = [
    Mutant("an exception", "forward",
           "mean = extract(self.posterior_mean_coef1, t, xt.shape) * x0",
           "raise RuntimeError('oops'); mean = extract(self.posterior_mean_coef1, t, xt.shape) * x0",
           "ddpm.q_posterior"),
    Mutant("a NaN", "cfg",
           "return torch.lerp(uncond, cond, scale)",
           "return torch.lerp(uncond, cond, scale) * float('nan')",
           "cfg.guidance"),
    Mutant("an endless loop", "forward",
           "t = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps",
           "while True: pass",
           "advanced.cosine_schedule"),
    Mutant("a crash of the process", "latent",
           "return self.mean + self.std * eps",
           "import os; os._exit(3)",
           "vae.reparameterization"),
    Mutant("a module that does not import", "cfg",   # cfg: no other graded module imports it (training imports ddim)
           "import torch.nn as nn",
           "import torch.nn as nn; syntax error here",
           "cfg.guidance"),
]


def apply(pkg_dir, m: Mutant):
    "Patch module `m.module` of the package in `pkg_dir` (its hw5_diffusion/): `m.old` must occur exactly once."
    from pathlib import Path
    f = Path(pkg_dir) / "hw5_diffusion" / f"{m.module}.py"
    src = f.read_text()
    assert src.count(m.old) == 1, f"mutant {m.name!r}: {m.old!r} occurs {src.count(m.old)} times in {m.module}.py"
    f.write_text(src.replace(m.old, m.new))

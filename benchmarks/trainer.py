"""What the training engine adds to a step, on the digits preset (0.72 M-parameter U-Net, batch 128):
seconds per optimisation step without and with the EMA, and the one-off costs of a checkpoint (with its
evaluation loss) and of a preview grid. Rounds are interleaved, so the ratios hold on a loaded machine.

    python benchmarks/trainer.py [--steps 10] [--rounds 3] [--threads 1]
"""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch
from hw5_diffusion.data import DigitsDataset
from hw5_diffusion.training import Trainer, apply_overrides, preset
from results import append_results


def per_step(cfg, ds, steps):
    tr = Trainer(apply_overrides(cfg, [f"max_steps={steps}"]), dataset=ds, progress=False)
    tr.fit()  # includes the loader start: the same for both variants
    t0 = time.perf_counter()
    tr.config.max_steps = 2 * steps  # a second fit() continues the same run
    tr.fit()
    return (time.perf_counter() - t0) / steps, tr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = DigitsDataset()
    base = apply_overrides(preset("digits"), ["preview_every=0", "tensorboard=false", "sample_n=0"])
    res = {"step, no EMA": [], "step, EMA": [], "checkpoint + eval loss": [], "preview (16 images, 50 steps)": []}
    for _ in range(a.rounds):
        res["step, no EMA"].append(per_step(apply_overrides(base, ["ema_decay=0"]), ds, a.steps)[0])
        s, tr = per_step(base, ds, a.steps)
        res["step, EMA"].append(s)
        tr.out = Path(tempfile.mkdtemp()) / "run"
        t0 = time.perf_counter(); tr.save(); res["checkpoint + eval loss"].append(time.perf_counter() - t0)
        t0 = time.perf_counter(); tr.sample(16, 50); res["preview (16 images, 50 steps)"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in res.items()}
    step = med["step, no EMA"]
    rows = [f"| {k} | {v:.3f} | {v / step:.2f} |" for k, v in med.items()]
    table = "| what | seconds (median) | in no-EMA steps |\n|---|---|---|\n" + "\n".join(rows)
    # the digits preset: 600 steps, a checkpoint and a preview every 200 steps
    demo = 600 * med["step, EMA"] + 3 * (med["checkpoint + eval loss"] + med["preview (16 images, 50 steps)"])
    table += f"\n\nEstimated engine overhead on the 600-step digits preset: {demo / (600 * step) - 1:+.1%} over bare steps."
    print(table)
    append_results("Training engine overhead (digits preset)", "cpu",
                   f"{a.threads} thread(s), {a.steps} steps x {a.rounds} interleaved rounds; the machine was shared with other jobs, "
                   "so absolute seconds are noisy and the ratios are the result.", table)


if __name__ == "__main__":
    main()

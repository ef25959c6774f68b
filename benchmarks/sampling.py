"""Sampling speed: wall time per batch for DDPM-1000 and DDIM-50/100/200 with the same U-Net, and each sampler's
bookkeeping per step (everything but the U-Net call: the scheduler step, the loop) as a fraction of a U-Net forward.

    python benchmarks/sampling.py [--device cpu|cuda] [--batch 64] [--repeats 3] [--cpu-time] [--note TEXT] [--no-append]

The model is the digits demo U-Net (hw5_diffusion.ddpm.digits_unet, 16×16) with random weights: the time of a
forward pass does not depend on them. Bookkeeping is timed by running the same `generate` loop with a stand-in
model that returns a precomputed tensor; diffusers' DDPM/DDIM schedulers are timed the same way for comparison.
All timings are interleaved round by round (other processes' load hits every sampler alike) and the table
reports medians. On a CPU shared with other jobs, `--cpu-time` measures this process's CPU time on one thread
instead of wall time, which the other jobs barely disturb. Appends the table to benchmarks/RESULTS.md.
"""
import argparse, statistics, time
import torch
import torch.nn as nn
import diffusers
from hw5_diffusion.ddpm import DDPMScheduler, generate
from hw5_diffusion.unet import digits_unet
from hw5_diffusion.ddim import DDIMScheduler
from results import append_results

SAMPLERS = {"DDPM-1000": (DDPMScheduler, 1000, None), "DDIM-50": (DDIMScheduler, 50, 0.0),
            "DDIM-100": (DDIMScheduler, 100, 0.0), "DDIM-200": (DDIMScheduler, 200, 0.0)}
BOOKKEEPING = {"ours DDPM": (DDPMScheduler, None), "ours DDIM η=0": (DDIMScheduler, 0.0), "ours DDIM η=1": (DDIMScheduler, 1.0),
               "diffusers DDPM": (diffusers.DDPMScheduler, None), "diffusers DDIM η=0": (diffusers.DDIMScheduler, 0.0)}


class Replay(nn.Module):
    "Stands in for the U-Net: returns a fixed output, so a sampling loop times everything but the network."
    def __init__(self, model, out):
        super().__init__()
        self.config, self.out, self.p = model.config, out, nn.Parameter(torch.zeros((), device=out.device))
    def forward(self, x, t, y=None): return self.out


def timed(fn, device, clock=time.perf_counter):
    if device.type == "cuda": torch.cuda.synchronize()
    t0 = clock(); fn()
    if device.type == "cuda": torch.cuda.synchronize()
    return clock() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-time", action="store_true", help="CPU only: time this process's CPU time on one thread, not wall time")
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--note", default="", help="appended to the method line in RESULTS.md (e.g. the machine's load)")
    a = ap.parse_args()
    device = torch.device(a.device)
    if a.cpu_time and device.type != "cpu": ap.error("--cpu-time measures the CPU: use it with --device cpu")
    if a.cpu_time: torch.set_num_threads(1)
    clock = time.process_time if a.cpu_time else time.perf_counter
    torch.manual_seed(0)
    model = digits_unet().to(device).eval()
    x = torch.randn(a.batch, 1, 16, 16, device=device)
    t = torch.tensor(500, device=device)
    with torch.no_grad(): replay = Replay(model, torch.randn_like(x) * 0.5)
    def sample(m, cls, steps, eta): return lambda: generate(m, cls(), a.batch, steps=steps, eta=eta, seed=0, progress=False)
    def forward():
        with torch.no_grad(): model(x, t)
    for _ in range(3): forward()
    sample(model, DDIMScheduler, 10, 0.0)()  # warm-up
    wall = {k: [] for k in SAMPLERS}; book = {k: [] for k in BOOKKEEPING}; fwd = []
    for r in range(a.repeats):  # interleaved rounds
        for k, (cls, steps, eta) in SAMPLERS.items():
            wall[k].append(timed(sample(model, cls, steps, eta), device, clock))
        for k, (cls, eta) in BOOKKEEPING.items():
            book[k].append(timed(sample(replay, cls, 1000, eta), device, clock) / 1000)
        fwd.append(timed(lambda: [forward() for _ in range(20)], device, clock) / 20)
        print(f"round {r + 1}/{a.repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in wall.items()), flush=True)
    med = lambda v: statistics.median(v)
    f = med(fwd)
    what = "CPU time (1 thread)" if a.cpu_time else "wall time"
    lines = [f"| sampler | {what} per batch of {a.batch} (s) | vs DDPM-1000 |", "|---|---|---|"]
    for k, v in wall.items(): lines.append(f"| {k} | {med(v):.2f} | {med(v) / med(wall['DDPM-1000']):.4f} |")
    lines += ["", f"| sampler | bookkeeping per step (µs) | fraction of a U-Net forward ({f * 1e3:.2f} ms) |", "|---|---|---|"]
    for k, v in book.items(): lines.append(f"| {k} | {med(v) * 1e6:.1f} | {med(v) / f:.2%} |")
    table = "\n".join(lines)
    print(table)
    if not a.no_append:
        append_results("Sampling: DDPM vs DDIM, and the scheduler's bookkeeping", device,
                       f"digits demo U-Net, batch {a.batch}; medians of {a.repeats} interleaved rounds{'; ' + a.note if a.note else ''}. Bookkeeping: the "
                       "`generate` loop with a stand-in model returning a fixed tensor, per step, over 1000 steps.", table)


if __name__ == "__main__":
    main()

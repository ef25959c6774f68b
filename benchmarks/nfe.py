"""digits-FID against the number of model evaluations (NFE) for DDPM, DDIM, DPM-Solver++, UniPC and Euler on one trained
digits model: how much sample quality each sampler keeps when the budget shrinks from 200 evaluations to 10.

    python benchmarks/nfe.py [--ckpt runs/nfe-digits] [--n 300] [--nfe 10 20 50 100 200] [--samplers ...] [--no-append]

Trains the digits preset (`hw5-train --data digits`: 1,200 steps of 128 images, a few CPU minutes) into --ckpt unless that
folder already holds exactly this run. Each sampler is built from the checkpoint's scheduler config by
`hw5_diffusion.cli.make_scheduler` (ours for ddpm/ddim with η = 0, diffusers' for the others, their default spacing) and
makes one model evaluation per step, so steps = NFE (checked). For each (sampler, NFE) it draws --n images with seed 0
and scores them with the digits-FID against the 360-image digits test split (`fidelity_metrics(features="digits")`);
as many real training digits scored the same way give the floor. Prints a Markdown table, saves benchmarks/nfe.png,
and appends the table to benchmarks/RESULTS.md (date, machine, commit).
"""
import argparse, time
from pathlib import Path
import torch
from hw5_diffusion.cli import train_once, load_for_sampling, samples_fid, machine
from hw5_diffusion.checkpoints import read_config
from hw5_diffusion.ddpm import generate
from hw5_diffusion.data import offscreen_figure
from results import append_results

LABELS = {"ddpm": "DDPM (ancestral, respaced)", "ddim": "DDIM (η = 0)", "dpm-solver++": "DPM-Solver++ (2M)", "unipc": "UniPC (bh2)",
          "euler": "Euler"}


def measure(ckpt, samplers, nfes, n:int, seed:int=0, device="cpu") -> dict:
    "{sampler: {nfe: digits-FID}} and the floor (real training digits), each point `n` images."
    fids, floor = {}, None
    for name in samplers:
        model, scheduler, _ = load_for_sampling(ckpt, device, name)
        fids[name] = {}
        for nfe in nfes:
            scheduler.set_timesteps(nfe)
            assert len(scheduler.timesteps) == nfe, f"{name}: {nfe} steps visit {len(scheduler.timesteps)} time steps"
            t0 = time.process_time()
            x = generate(model, scheduler, n, steps=nfe, eta=0.0 if name == "ddim" else None, seed=seed, progress=False)
            fid, floor = samples_fid(x)
            fids[name][nfe] = fid
            print(f"{name:>13} NFE {nfe:>4}: digits-FID {fid:7.2f}  ({time.process_time() - t0:.0f} CPU s)", flush=True)
    return fids, floor


def table(fids, floor, nfes) -> str:
    rows = [f"| {LABELS.get(s, s)} | " + " | ".join(f"{f[k]:.2f}" for k in nfes) + " |" for s, f in fids.items()]
    return "\n".join([f"| sampler \\ NFE | {' | '.join(map(str, nfes))} |", "|---|" + "---|" * len(nfes), *rows,
                      f"| real training digits (floor) | " + " | ".join(f"{floor:.2f}" for _ in nfes) + " |"])


def plot(fids, floor, path):
    fig = offscreen_figure(figsize=(5.5, 3.6)); ax = fig.subplots()
    for s, f in fids.items(): ax.plot(list(f), list(f.values()), "o-", label=LABELS.get(s, s))
    ax.axhline(floor, ls="--", c="grey", label="real digits (floor)")
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("model evaluations (NFE)"); ax.set_ylabel("digits-FID ↓")
    ax.legend(fontsize=7); fig.tight_layout(); fig.savefig(path, dpi=100)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="runs/nfe-digits", help="run folder: trained here with the digits preset unless it holds that run")
    ap.add_argument("--n", type=int, default=300, help="images per point")
    ap.add_argument("--nfe", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    ap.add_argument("--samplers", nargs="+", default=["ddpm", "ddim", "dpm-solver++", "unipc", "euler"])
    ap.add_argument("--figure", default=str(Path(__file__).with_name("nfe.png")))
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    trained = train_once(["--data", "digits", "--out", a.ckpt, "--sample-n", "0"])
    t0 = time.perf_counter()
    fids, floor = measure(a.ckpt, a.samplers, a.nfe, a.n)
    secs = time.perf_counter() - t0
    md = table(fids, floor, a.nfe)
    print(md)
    print(f"figure: {plot(fids, floor, a.figure)}")
    if not a.no_append:
        note = (f"`python benchmarks/nfe.py {' '.join(f'--{k} {v}' for k, v in [('n', a.n)])}`: the digits preset ({read_config(a.ckpt)['train']['max_steps']:,} steps × 128 images, "
                f"{'trained for this run in ' + str(trained) + ' CPU s' if trained else 'reused from ' + a.ckpt}); {a.n} images per point, seed 0; "
                f"digits-FID against the 360-image test split (lower is better; the floor is {a.n} real training digits); "
                f"sampling and scoring took {secs / 60:.1f} min wall on {machine('cpu')}. Figure: benchmarks/nfe.png.")
        append_results("digits-FID vs model evaluations (NFE)", "cpu", note, md)


if __name__ == "__main__":
    main()

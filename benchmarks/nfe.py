"""digits-FID against the number of model evaluations (NFE) for every sampler `hw5-sample --sampler` offers on one trained
digits model: how much sample quality each sampler keeps when the budget shrinks from 200 evaluations to 10.

    python benchmarks/nfe.py [--ckpt runs/nfe-digits] [--as-is] [--n 300] [--nfe 10 20 50 100 200] [--samplers ...] [--no-append]

Trains the digits preset (`hw5-train --data digits`: 1,200 steps of 128 images, a few CPU minutes) into --ckpt unless that
folder already holds exactly this run; with --as-is it samples --ckpt as it is (the tables model: `--ckpt
runs/tables/digits/ckpt --as-is`). Each sampler is built from the checkpoint's scheduler config by
`hw5_diffusion.cli.make_scheduler` (ours for ddpm/ddim with η = 0, diffusers' for the others, their default spacing) and
makes one model evaluation per step, so steps = NFE, except Heun (2 per step, less one) and PNDM (its Runge-Kutta warm-up):
those take the most steps that stay within the NFE, and the table shows the evaluations made where fewer. For each (sampler, NFE) it draws --n images with seed 0
and scores them with the digits-FID against the 360-image digits test split (`fidelity_metrics(features="digits")`);
as many real training digits scored the same way give the floor. Prints a Markdown table, saves benchmarks/nfe.png,
and appends the table to benchmarks/RESULTS.md (date, machine, commit).
"""
import argparse, time
from pathlib import Path
import torch
from hw5_diffusion.cli import train_once, load_for_sampling, samples_fid, machine, SAMPLERS
from hw5_diffusion.checkpoints import read_config
from hw5_diffusion.ddpm import generate
from hw5_diffusion.data import offscreen_figure
from results import append_results

LABELS = {"ddpm": "DDPM (ancestral, respaced)", "ddim": "DDIM (η = 0)", "restart": "Restart (DDIM, 2 walks back in σ ∈ [0.06, 0.30])", "dpm-solver++": "DPM-Solver++ (2M)", "unipc": "UniPC (bh2)",
          "euler": "Euler", "euler-ancestral": "Euler-ancestral", "heun": "Heun (2nd order)", "pndm": "PNDM", "lms": "LMS"}
assert set(LABELS) == set(SAMPLERS), "a row for every sampler hw5-sample offers"


def steps_for(scheduler, nfe:int) -> int:
    "The most steps whose time steps (one model evaluation each) number at most `nfe`; None if none do."
    def evaluations(s):
        try: scheduler.set_timesteps(s)
        except ValueError: return float("inf")  # PNDM's warm-up needs a few steps
        return len(scheduler.timesteps)
    fits = [s for s in range(1, nfe + 1) if evaluations(s) <= nfe]
    return fits[-1] if fits else None


def measure(ckpt, samplers, nfes, n:int, seed:int=0, device="cpu") -> dict:
    "{sampler: {nfe: (digits-FID, evaluations made)}} and the floor (real training digits), each point `n` images."
    fids, floor = {}, None
    for name in samplers:
        model, scheduler, _ = load_for_sampling(ckpt, device, name)
        fids[name] = {}
        for nfe in nfes:
            steps = steps_for(scheduler, nfe)
            if steps is None: print(f"{name:>15} NFE {nfe:>4}: cannot sample within it"); continue
            t0 = time.process_time()
            x = generate(model, scheduler, n, steps=steps, eta=0.0 if name == "ddim" else None, seed=seed, progress=False)
            fid, floor = samples_fid(x)
            fids[name][nfe] = fid, len(scheduler.timesteps)
            print(f"{name:>15} NFE {nfe:>4} ({steps} steps, {len(scheduler.timesteps)} evaluations): digits-FID {fid:7.2f}  "
                  f"({time.process_time() - t0:.0f} CPU s)", flush=True)
    return fids, floor


def table(fids, floor, nfes) -> str:
    cell = lambda fid, made, nfe: f"{fid:.2f}" + (f" ({made})" if made != nfe else "")
    rows = [f"| {LABELS.get(s, s)} | " + " | ".join(cell(*f[k], k) if k in f else "—" for k in nfes) + " |" for s, f in fids.items()]
    return "\n".join([f"| sampler \\ NFE | {' | '.join(map(str, nfes))} |", "|---|" + "---|" * len(nfes), *rows,
                      f"| real training digits (floor) | " + " | ".join(f"{floor:.2f}" for _ in nfes) + " |"])


def plot(fids, floor, path):
    fig = offscreen_figure(figsize=(5.5, 3.6)); ax = fig.subplots()
    for s, f in fids.items(): ax.plot([made for _, made in f.values()], [fid for fid, _ in f.values()], "o-", label=LABELS.get(s, s))
    ax.axhline(floor, ls="--", c="grey", label="real digits (floor)")
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("model evaluations (NFE)"); ax.set_ylabel("digits-FID ↓")
    ax.legend(fontsize=7); fig.tight_layout(); fig.savefig(path, dpi=100)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="runs/nfe-digits", help="run folder: trained here with the digits preset unless it holds that run")
    ap.add_argument("--as-is", action="store_true", help="sample --ckpt as it is, whatever trained it (e.g. the tables model, runs/tables/digits/ckpt)")
    ap.add_argument("--n", type=int, default=300, help="images per point")
    ap.add_argument("--nfe", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    ap.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=list(SAMPLERS))
    ap.add_argument("--figure", default=str(Path(__file__).with_name("nfe.png")))
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    trained = None if a.as_is else train_once(["--data", "digits", "--out", a.ckpt, "--sample-n", "0"])
    t0 = time.perf_counter()
    fids, floor = measure(a.ckpt, a.samplers, a.nfe, a.n)
    secs = time.perf_counter() - t0
    md = table(fids, floor, a.nfe)
    print(md)
    print(f"figure: {plot(fids, floor, a.figure)}")
    if not a.no_append:
        note = (f"`python benchmarks/nfe.py --ckpt {a.ckpt}{' --as-is' * a.as_is} --n {a.n}`: {'the checkpoint as it is' if a.as_is else 'the digits preset'} ({read_config(a.ckpt)['train']['max_steps']:,} steps × 128 images, "
                f"{'trained for this run in ' + str(trained) + ' CPU s' if trained else 'reused from ' + a.ckpt}); {a.n} images per point, seed 0; "
                f"digits-FID against the 360-image test split (lower is better; the floor is {a.n} real training digits); "
                f"sampling and scoring took {secs / 60:.1f} min wall on {machine('cpu')}. Figure: benchmarks/nfe.png.")
        append_results("digits-FID vs model evaluations (NFE)", "cpu", note, md)


if __name__ == "__main__":
    main()

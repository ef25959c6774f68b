"""Where sampling at ≤ 50 model evaluations loses against DDPM-1000 on the tables model, and the Restart sampler (issue 30,
item 2): digits-FID of DDPM-1000 and of samplers at 50 (or 200) evaluations on one checkpoint, three draws for the main rows.

    python benchmarks/samplers.py [--ckpt runs/tables/digits/ckpt] [--n 1000] [--out runs/samplers] [--rows NAME ...] [--no-append]

The checkpoint is the 2,400-step pixel model of Tables 1–2 (`make tables` trains it into runs/tables/digits/ckpt; alone:
`hw5-train --preset digits --out runs/tables/digits/ckpt --sample-n 0 --set max_steps=2400 --set checkpoint_every=1200`).
Each row is a sampler that `hw5_diffusion.cli.make_scheduler` builds from the checkpoint's scheduler config with the row's
options over it, run by `sample_images`: image i of the draw with seed s comes from its own generator (`image_seeds`), the
same x_T for every row; one row draws x_T as the tables did before issue 31, from one generator a draw, to show how far
one draw's digits-FID moves. A draw's images are kept in --out/<row>-<seed>.pt with the row's settings, and a later run scores
those instead of sampling again (DDPM-1000 is 13 CPU-minutes a draw). digits-FID of --n images against the 360-image
test split; the floor is --n real training digits. Prints a Markdown table and appends it to benchmarks/RESULTS.md.
"""
import argparse, time
from pathlib import Path
import torch
from hw5_diffusion.cli import load_for_sampling, make_scheduler, sample_images, samples_fid, machine
from hw5_diffusion.checkpoints import read_config
from hw5_diffusion.ddpm import generate
from results import append_results

DRAWS = (0, 1000, 2000)  # the tables' three draws
# name: (label, sampler, steps, scheduler options over the checkpoint's, sampling options, the draws' seeds). `one_generator`: the
# draw's x_T from one generator seeded `seed` (`generate(..., seed=seed)`, the tables' way before issue 31), not one per image
ROWS = {
    "ddpm-1000": ("DDPM, 1000 steps (ancestral)", "ddpm", 1000, {}, {}, DRAWS),
    "ddim-50": ("DDIM, 50 steps, η = 0 (leading spacing: t = 980, 960, …, 0)", "ddim", 50, {}, {}, DRAWS),
    "restart-50": ("Restart, 50 evaluations (DDIM η = 0, two walks back over σ ∈ [0.06, 0.30])", "restart", 50, {}, {}, DRAWS),
    "ddim-50-one-generator": ("DDIM, 50 steps, η = 0, x_T from one generator a draw", "ddim", 50, {}, {"one_generator": True}, (0, 1, 2)),
    "ddim-200": ("DDIM, 200 steps, η = 0", "ddim", 200, {}, {}, DRAWS[:1]),
    "ddim-50-noclip": ("DDIM, 50 steps, x̂0 not clipped", "ddim", 50, {"clip_sample": False}, {}, DRAWS[:1]),
    "ddim-50-linspace": ("DDIM, 50 steps, linspace spacing (t = 999, …, 0)", "ddim", 50, {"timestep_spacing": "linspace"}, {}, DRAWS[:1]),
    "ddim-50-trailing": ("DDIM, 50 steps, trailing spacing (t = 999, …, 19)", "ddim", 50, {"timestep_spacing": "trailing"}, {}, DRAWS[:1]),
    "ddim-50-eta0.5": ("DDIM, 50 steps, η = 0.5", "ddim", 50, {}, {"eta": 0.5}, DRAWS[:1]),
    "ddim-50-eta1": ("DDIM, 50 steps, η = 1 (the ancestral step, DDPM-50)", "ddim", 50, {}, {"eta": 1.0}, DRAWS[:1]),
    "ddpm-50-large": ("DDPM, 50 steps, σ² = β", "ddpm", 50, {"variance_type": "fixed_large"}, {}, DRAWS[:1]),
    "sde-dpm-solver++-50": ("SDE-DPM-Solver++ (2M), 50 steps", "dpm-solver++", 50, {"algorithm_type": "sde-dpmsolver++"}, {}, DRAWS[:1]),
}


def draw(ckpt, name:str, seed:int, n:int, out:Path):
    "The images of row `name`'s draw `seed`: sampled, or read back from `out` when an earlier run sampled them with the same settings."
    label, sampler, steps, over, kw, _ = ROWS[name]
    settings = dict(sampler=sampler, steps=steps, over=over, kw=kw, seed=seed, n=n, ckpt_step=read_config(ckpt).get("step"))
    f = out / f"{name}-{seed}.pt"
    if f.is_file():
        kept = torch.load(f)
        if kept["settings"] == settings: return kept["images"], None
    model, base, _ = load_for_sampling(ckpt, "cpu", "ddpm")
    scheduler, t0 = make_scheduler(sampler, {**base.config, **over}), time.perf_counter()
    if kw.get("one_generator"): x = generate(model, scheduler, n, steps=steps, seed=seed, progress=False)
    else: x = sample_images(model, scheduler, n, steps=steps, seed=seed, progress=False, **kw)[0]
    secs = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    torch.save(dict(images=x, settings=settings), f)
    return x, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="runs/tables/digits/ckpt", help="the checkpoint to sample (the tables' pixel model)")
    ap.add_argument("--n", type=int, default=1000, help="images a draw")
    ap.add_argument("--out", default="runs/samplers", help="folder of the draws' images (a rerun scores these)")
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0, fids, floor = time.perf_counter(), {}, None
    for name in a.rows:
        fids[name] = []
        for seed in ROWS[name][5]:
            x, secs = draw(a.ckpt, name, seed, a.n, Path(a.out))
            fid, floor = samples_fid(x)
            fids[name].append(fid)
            print(f"{name:>20} seed {seed:>4}: digits-FID {fid:6.2f}" + (f" (sampled in {secs:.0f} s)" if secs else " (kept images)"), flush=True)
    mean = {k: sum(v) / len(v) for k, v in fids.items()}
    std = {k: (sum((f - mean[k]) ** 2 for f in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else None for k, v in fids.items()}
    ref = mean.get("ddpm-1000")
    rows = [f"| {ROWS[k][0]} | {ROWS[k][2]} | " + (f"{mean[k]:.2f} ± {std[k]:.2f}" if std[k] is not None else f"{mean[k]:.2f}")
            + f" | {', '.join(f'{f:.2f}' for f in v)} | " + (f"{mean[k] / ref - 1:+.0%}" if ref else "") + " |" for k, v in fids.items()]
    md = "\n".join(["| sampler | model evaluations | digits-FID ↓ (mean ± std of the draws) | draws (seeds 0, 1000, 2000; one generator: 0, 1, 2) | vs DDPM-1000 |",
                    "|---|---|---|---|---|", *rows, f"| real training digits (floor) | | {floor:.2f} | | |"])
    print(md)
    if not a.no_append:
        note = (f"`python benchmarks/samplers.py --ckpt {a.ckpt} --n {a.n}`: the tables' pixel model (step {read_config(a.ckpt).get('step')}), "
                f"{a.n} images a draw, each image from its own seeded generator (the same x_T in every row of a seed) except the one-generator row; digits-FID against "
                f"the 360-image test split; {(time.perf_counter() - t0) / 60:.1f} min wall on {machine('cpu')} (draws kept from an earlier run are scored, not resampled).")
        append_results("Samplers at ≤ 50 evaluations against DDPM-1000 on the tables model", "cpu", note, md)


if __name__ == "__main__":
    main()

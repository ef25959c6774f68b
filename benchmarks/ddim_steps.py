"""Why DDIM (η = 0) gets worse with more steps on the digits (issue 16): digits-FID at 50, 100, 200 steps for two networks
trained the same way and three ways of handling x̂0 clipping in the DDIM step.

    python benchmarks/ddim_steps.py [--work /tmp/ddim-steps] [--n 300] [--steps 50 100 200] [--long STEPS VARIANT]
                                    [--check-n 300] [--max-steps 600] [--figure PATH] [--collect] [--no-append]

Two models, each trained (or reused, if --work already holds the finished run) in its own process on one thread, the two
at the same time, then sampled in the same process:
- ours: the `hw5-train --data digits --sample-n 0` preset (our U-Net) via `hw5_diffusion.cli.train_once`, in WORK/ours;
- diffusers: a `UNet2DModel` near our parameter count (benchmarks/quality.py's `BASELINE_UNET`, built and trained by its
  `baseline`) on the same data (`load_digits_tensors(16, "train")`, [-1, 1]) and schedule (T = 1000, linear β, ε) with
  our preset's recipe in place of diffusers' (lr, AdamW betas/eps/weight decay, batch, steps, warm-up then cosine, gradient
  clip, EMA with the (1+n)/(10+n) warm-up), in WORK/diffusers; only the network differs.

Each model's EMA weights are sampled by diffusers' `DDIMScheduler`, configured from the model's scheduler config, its
`step` driven by a short loop here so that its arguments are ours to set, η = 0, --n images from one seed-0 draw of x_T
(the same x_T as `benchmarks/nfe.py`), in three variants:
  (a) clip x̂0 to [-1, 1], "direction pointing to x_t" from the unclipped ε̂ (diffusers' default; ours with use_clipped_model_output=False);
  (b) clip x̂0, ε̂ re-derived from the clipped x̂0 (`step(..., use_clipped_model_output=True)`, GLIDE's way, our `DDIMScheduler`'s default);
  (c) no clipping (`clip_sample=False`).
For our model, our own `DDIMScheduler` also samples every variant from the first --check-n of the same x_T, and the largest
|ours − diffusers| over those images is reported: the two implementations must agree for the rest to speak for ours.
Each point is scored with `hw5_diffusion.cli.samples_fid` (digits-FID against the 360-image test split; the floor: as
many real training digits), and the share of x̂0 pixels outside [-1, 1] (those clipping changes; in (c) those it would have
changed) is averaged over the steps. Prints a Markdown table, saves a figure (FID against steps), and appends the table
to benchmarks/RESULTS.md. Each worker saves its points to WORK/<model>-points.pt as it goes, so a run stopped early
(a deadline) still gives its table with --collect.
"""
import argparse, inspect, json, os, subprocess, sys, time
from pathlib import Path
import torch

VARIANTS = {"a": dict(clip_sample=True, use_clipped_model_output=False, label="(a) clip x̂0, ε̂ unclipped"),
            "b": dict(clip_sample=True, use_clipped_model_output=True, label="(b) clip x̂0, ε̂ from clipped x̂0"),
            "c": dict(clip_sample=False, use_clipped_model_output=False, label="(c) no clipping")}
MODELS = {"ours": "ours (hw5 U-Net)", "diffusers": "diffusers UNet2DModel"}


def our_recipe(max_steps:int) -> dict:
    "Our digits preset's optimisation recipe in the keys of quality.py's BASELINE, so its `baseline` trains with it."
    from hw5_diffusion.training import preset
    c = preset("digits")
    if not c.ema_warmup: raise SystemExit("the digits preset's EMA has no warm-up: diffusers' EMAModel has no constant-decay twin here")
    adamw = inspect.signature(torch.optim.AdamW).parameters  # the Trainer builds AdamW with torch's betas and eps
    return dict(lr=c.lr, betas=adamw["betas"].default, weight_decay=c.weight_decay, eps=adamw["eps"].default,
                warmup_steps=min(c.warmup_steps, max_steps // 10), batch_size=c.batch_size, grad_clip=c.grad_clip,
                # diffusers' decay without its "EMA warm-up" is min(decay, (1+n)/(10+n)), which is ours with our warm-up
                ema=dict(decay=c.ema_decay, use_ema_warmup=False), max_steps=max_steps)


def train_ours(work:Path, max_steps:int):
    "Our preset in work/ours (reused if finished): the EMA model, its scheduler config, parameters, CPU seconds (None: reused)."
    from hw5_diffusion.cli import train_once, load_for_sampling
    from hw5_diffusion.unet import num_params
    out = work / "ours"
    secs = train_once(["--data", "digits", "--sample-n", "0", "--out", out, "--max-steps", max_steps])
    model, scheduler, _ = load_for_sampling(out, "cpu", "ddim")
    return model, dict(scheduler.config), num_params(model), secs


def train_diffusers(work:Path, max_steps:int):
    "The UNet2DModel with our recipe in work/diffusers (reused if the same recipe finished there): the same four things."
    import diffusers
    from hw5_diffusion.cli import DiffusersUNet
    from quality import baseline, BASELINE_UNET
    out, recipe = work / "diffusers", our_recipe(max_steps)
    want = json.loads(json.dumps(dict(recipe=recipe, unet=BASELINE_UNET)))  # tuples as JSON lists, as read back
    done = out / "run.json"
    secs = None
    if not (done.is_file() and json.loads(done.read_text()).get("run") == want):
        t0 = time.process_time()
        step, sampling_model, scheduler, _, _ = baseline(max_steps, recipe=recipe)
        for i in range(max_steps):
            step()
            if (i + 1) % 100 == 0: print(f"diffusers: step {i + 1}/{max_steps}, {time.process_time() - t0:.0f} CPU s", file=sys.stderr, flush=True)
        sampling_model().unet.save_pretrained(out)
        scheduler.save_config(out / "scheduler")
        secs = round(time.process_time() - t0, 1)
        done.write_text(json.dumps(dict(run=want, cpu_s=secs)))
    unet = diffusers.UNet2DModel.from_pretrained(out)
    config = dict(diffusers.DDIMScheduler.load_config(out / "scheduler"))
    return DiffusersUNet(unet).eval(), config, sum(p.numel() for p in unet.parameters()), secs


TRAIN = dict(ours=train_ours, diffusers=train_diffusers)


@torch.inference_mode()
def ddim(model, scheduler, x, steps:int, use_clipped_model_output:bool):
    """DDIM η = 0 from x_T = `x` in `steps` steps with `scheduler` (diffusers' or ours): the images in [-1, 1] and the share
    of x̂0 pixels outside the clip range, averaged over the steps."""
    scheduler.set_timesteps(steps)
    alpha_bar = scheduler.alphas_cumprod if hasattr(scheduler, "alphas_cumprod") else scheduler.schedule.float64["alpha_bar"]
    limit = scheduler.config["clip_sample_range"]
    outside = []
    for t in scheduler.timesteps:
        eps = model(x, t)
        a = float(alpha_bar[int(t)])
        # x̂0 before any clipping, from this step's ε̂: the share it puts outside the range is what clipping acts on
        outside.append(((x - (1 - a) ** 0.5 * eps) / a ** 0.5).abs().gt(limit).float().mean().item())
        x = scheduler.step(eps, int(t), x, eta=0.0, use_clipped_model_output=use_clipped_model_output).prev_sample
    return x.clamp(-1, 1), sum(outside) / len(outside)


def worker(name:str, work:str, n:int, steps, long, check_n:int, max_steps:int, out:str):
    "Train (or reuse) one model, sample every variant at every step count, score them; save the rows to `out`."
    torch.set_num_threads(1)
    import diffusers
    from hw5_diffusion.cli import samples_fid
    from hw5_diffusion.ddim import DDIMScheduler as OurDDIM
    model, config, params, train_s = TRAIN[name](Path(work), max_steps)
    print(f"{name}: {params:,} parameters, {'trained in ' + str(train_s) + ' CPU s' if train_s else 'reused'}", file=sys.stderr, flush=True)
    shape = (model.in_channels, model.sample_size, model.sample_size)
    x_T = torch.randn((n, *shape), generator=torch.Generator().manual_seed(0))  # as `generate(..., seed=0)` draws it
    points = [(v, s) for v in VARIANTS for s in steps] + ([(long[1], int(long[0]))] if long else [])
    rows, check = [], []
    for v, s in points:
        t0 = time.perf_counter()
        sched = diffusers.DDIMScheduler.from_config({**config, "clip_sample": VARIANTS[v]["clip_sample"]})
        x, outside = ddim(model, sched, x_T.clone(), s, VARIANTS[v]["use_clipped_model_output"])
        fid, floor = samples_fid(x)
        rows.append(dict(model=name, variant=v, steps=s, fid=fid, floor=floor, outside=outside, images=x[:64]))
        line = f"{name} ({v}) {s:>4} steps: digits-FID {fid:7.2f}, x̂0 outside {100 * outside:.2f}%"
        if name == "ours" and check_n:
            ours_x, _ = ddim(model, OurDDIM.from_config({**config, "clip_sample": VARIANTS[v]["clip_sample"]}), x_T[:check_n].clone(), s,
                             VARIANTS[v]["use_clipped_model_output"])
            check.append(dict(variant=v, steps=s, n=check_n, max_abs=(ours_x - x[:check_n]).abs().max().item()))
            line += f"; ours vs diffusers' DDIMScheduler max |Δ| {check[-1]['max_abs']:.2e}"
        print(f"{line} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        torch.save(dict(rows=rows, check=check, params=params, train_s=train_s), out)  # after each point: a stopped run keeps what it measured


def run_models(a) -> dict:
    "Both models at once, a process and a thread each; {model: what its worker saved}."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    d = Path(a.work); d.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in TRAIN:
        cmd = [sys.executable, __file__, "--worker", name, "--work", a.work, "--n", str(a.n), "--steps", *map(str, a.steps),
               "--check-n", str(a.check_n), "--max-steps", str(a.max_steps), "--out", f"{d}/{name}-points.pt", *(["--long", *a.long] if a.long else [])]
        procs[name] = subprocess.Popen(cmd, env=env)
    try:
        for name, p in procs.items():
            if p.wait(): raise SystemExit(f"the {name} worker failed (exit {p.returncode})")
    finally:  # one failed, or Ctrl-C: the other must not run on alone
        for p in procs.values():
            if p.poll() is None: p.terminate(); p.wait()
    return {name: torch.load(f"{d}/{name}-points.pt") for name in TRAIN}


def table(runs, steps) -> str:
    cols = sorted({r["steps"] for run in runs.values() for r in run["rows"]})
    head = [f"| model | variant | {' | '.join(f'FID {s}' for s in cols)} | x̂0 pixels outside [-1, 1], % ({' / '.join(map(str, cols))}) |",
            "|---|---|" + "---|" * len(cols) + "---|"]
    rows, floor = [], None
    for name, run in runs.items():
        for v in VARIANTS:
            got = {r["steps"]: r for r in run["rows"] if r["variant"] == v}
            floor = next(iter(got.values()))["floor"]
            rows.append(f"| {MODELS[name]} | {VARIANTS[v]['label']} | " + " | ".join(f"{got[s]['fid']:.2f}" if s in got else "" for s in cols)
                        + " | " + " / ".join(f"{100 * got[s]['outside']:.1f}" if s in got else "–" for s in cols) + " |")
    rows.append(f"| real training digits (floor) | | " + " | ".join(f"{floor:.2f}" for _ in cols) + " | |")
    check = runs["ours"]["check"]
    lines = [*head, *rows, ""]
    if check:
        lines.append(f"ours vs diffusers' `DDIMScheduler` on our model, first {check[0]['n']} images, max |Δ| over the images: "
                     + ", ".join(f"({c['variant']}) {c['steps']} steps {c['max_abs']:.1e}" for c in check) + ".")
    lines.append("Parameters: " + ", ".join(f"{MODELS[n]} {r['params'] / 1e3:.0f} k" for n, r in runs.items()) + ".")
    return "\n".join(lines)


def figure(runs, path):
    from matplotlib.ticker import NullLocator, FuncFormatter
    from hw5_diffusion.data import offscreen_figure
    fig = offscreen_figure(figsize=(8, 3.4))
    for ax, (name, run) in zip(fig.subplots(1, 2, sharey=True), runs.items()):
        for v in VARIANTS:
            got = sorted((r["steps"], r["fid"]) for r in run["rows"] if r["variant"] == v)
            ax.plot(*zip(*got), "o-", label=VARIANTS[v]["label"])
        ax.axhline(run["rows"][0]["floor"], ls="--", c="grey", label="real digits (floor)")
        ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("DDIM steps (η = 0)"); ax.set_title(MODELS[name], fontsize=9)
        ax.set_xticks(sorted({r["steps"] for r in run["rows"]}), labels=sorted({r["steps"] for r in run["rows"]}))
        ax.xaxis.set_minor_locator(NullLocator())  # a log axis would label 2·10¹, 3·10¹, ... over the step counts
        for f in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter): f(FuncFormatter(lambda v, _: f"{v:g}"))
    fig.axes[0].set_ylabel("digits-FID ↓"); fig.axes[1].legend(fontsize=7, loc="upper left")  # the left panel has no empty corner
    fig.tight_layout(); fig.savefig(path, dpi=100)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/ddim-steps", help="folder for the two trained models (reused when they hold these runs)")
    ap.add_argument("--n", type=int, default=300, help="images per point")
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--long", nargs=2, metavar=("STEPS", "VARIANT"), help="one more point per model, e.g. --long 1000 a")
    ap.add_argument("--check-n", type=int, default=300, help="images our DDIMScheduler also samples for the cross-check (0: none)")
    ap.add_argument("--max-steps", type=int, default=600, help="training steps of both models (the digits preset's 600)")
    ap.add_argument("--figure", default=str(Path(__file__).with_name("ddim_steps.png")))
    ap.add_argument("--collect", action="store_true", help="no training or sampling: the table from the points a run saved in --work (one stopped early)")
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--worker", choices=list(TRAIN), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.long and a.long[1] not in VARIANTS: ap.error(f"--long VARIANT must be one of {', '.join(VARIANTS)}")
    a.check_n = min(a.check_n, a.n)
    if a.worker: return worker(a.worker, a.work, a.n, a.steps, a.long, a.check_n, a.max_steps, a.out)
    from hw5_diffusion.cli import machine
    from quality import figure_note, BASELINE_UNET
    from results import append_results
    t0 = time.perf_counter()
    runs = {name: torch.load(Path(a.work) / f"{name}-points.pt") for name in TRAIN} if a.collect else run_models(a)
    md = table(runs, a.steps)
    print(md)
    print(f"figure: {figure(runs, a.figure)}")
    if not a.no_append:
        r = our_recipe(a.max_steps)
        trained = "; ".join(f"{n}: {'trained for this run, ' + str(run['train_s']) + ' CPU s' if run['train_s'] else 'reused from ' + a.work + '/' + n}"
                            for n, run in runs.items())
        note = (f"`python benchmarks/ddim_steps.py --n {a.n} --steps {' '.join(map(str, a.steps))}{' --long ' + ' '.join(a.long) if a.long else ''} "
                f"--check-n {a.check_n}`. Both models trained {a.max_steps} steps with our digits recipe (AdamW lr {r['lr']:g}, betas "
                f"{tuple(r['betas'])}, wd {r['weight_decay']:g}, batch {r['batch_size']}, {r['warmup_steps']} warm-up steps then cosine, "
                f"clip {r['grad_clip']:g}, EMA {r['ema']['decay']} with the (1+n)/(10+n) warm-up; T = 1000 linear β, ε; the digits "
                f"train split in [-1, 1]), one process and thread each, in parallel ({trained}). Ours: `hw5-train --data digits "
                f"--sample-n 0`. diffusers: `UNet2DModel` {BASELINE_UNET['block_out_channels']}, 2 layers a block, attention at 8² "
                f"(quality.py's layout). Sampled from the EMA weights by diffusers' `DDIMScheduler` (η = 0, leading spacing, "
                f"set_alpha_to_one) driven step by step, {a.n} images from one seed-0 x_T per point; digits-FID against the "
                f"360-image test split (the floor: {a.n} real training digits). The x̂0 column: the share of pixels of the "
                f"unclipped x̂0 outside [-1, 1] (what clipping changes), averaged over the steps. "
                + (f"Table made by --collect from the points the run saved in {a.work}" if a.collect else
                   f"Whole run {(time.perf_counter() - t0) / 60:.1f} min wall") + f" on {machine('cpu')}. {figure_note(a.figure)}")
        append_results("DDIM (η = 0) against steps: x̂0 clipping and the ε̂ it leaves (issue 16)", "cpu", note, md)


if __name__ == "__main__":
    main()

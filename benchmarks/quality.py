"""Time to target at equal training time: our digits recipe against diffusers' unconditional-training recipe, each trained
for the same wall-clock budget on one CPU core; how soon ours reaches the baseline's final digits-FID, and how close to the
floor of real digits it ends.

    python benchmarks/quality.py [--minutes 4 16] [--n 1000] [--calib 20] [--sampler ddim] [--steps 50] [--eta 0]
                                 [--pairing clipped|model] [--no-levers] [--ours-set KEY=VALUE ...] [--figure PATH] [--no-append]

Each budget of --minutes (several run one after the other, each with its own calibration) trains the two models side by
side, one process each (`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`), so they share the machine's load alike.
- ours: the `hw5-train --data digits` preset (our U-Net, AdamW lr 2e-3, batch 128, 50 warm-up steps then cosine, EMA with
  warm-up) through `hw5_diffusion.training.Trainer`, with the short-run `LEVERS` over it (cosine β, lr 3e-3, Min-SNR-5;
  `--no-levers`: the bare preset) and `--ours-set` overrides after them.
- baseline: a diffusers `UNet2DModel` near our parameter count, laid out as diffusers' example
  examples/unconditional_image_generation/train_unconditional.py lays out its U-Net (2 ResNet layers a block, attention
  in the second-lowest block) and trained with that example's recipe: `DDPMScheduler` (T = 1000, linear β, ε), AdamW
  lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, eps 1e-8, cosine schedule with 500 warm-up steps, `EMAModel`
  (inv_gamma 1, power 3/4, max decay 0.9999), gradient-norm clip 1, batch 16, MSE on ε, data reshuffled every epoch.

Each side first times --calib seconds of steps on a throw-away copy (the two sides at once, as they will train) to
estimate its steps per second, sets max_steps = budget × rate so that its learning-rate schedule ends at the budget (a
cosine cut short is not the recipe), then trains from scratch, starting together with the other side, and stops at
max_steps or at the budget, whichever comes first. Along the way ours copies its sampling (EMA) weights in memory at each
of `FRACTIONS` of the budget: at the first step at which its training time reaches that fraction of the budget or its
step count that fraction of max_steps (the two agree while the calibrated rate holds); the last copy is the final weights.
A copy takes about 2 ms of an idle core (under 10 ms on a loaded one) against about 0.5 s a training step; the run prints
their total and keeps it in the note. The baseline keeps only its final EMA weights.

Scoring starts after both sides have stopped, so it takes no training time from either. Each point (every copy of ours,
the baseline's final weights) is scored by `DRAWS` sampling draws of --n images (image seeds `DRAW_SEEDS`, the same for
every point), the same sampler for both sides: --sampler, any of `hw5_diffusion.cli.SAMPLERS`, built by `make_scheduler`
from each side's training configuration, with --steps (default `SAMPLER`: DDIM-50, η = 0, the DDIM step's ε̂ re-derived
from the clipped x̂0, our default; --pairing model takes the model's own ε̂, diffusers' default). Each draw's digits-FID is
against the 360-image test split (`samples_fid`), and so is the floor: the first --n real training digits, the same
images in every draw (so the floor has no draw spread; the run reports whether it came out identical). The jobs run two at a
time, one process and one thread each, a progress line each. Every spread is the standard deviation of the draws.

Reported per budget: (a) time to target, the fraction of the budget (training time of the copy / budget) at which ours'
mean digits-FID first reaches the baseline's final mean, linearly interpolated between neighbouring copies ("≤ f" when
the first copy is already there, "> 1 (not reached)" when none is); (b) excess over the floor at the end,
(ours_final − floor) / (baseline_final − floor), from the means, ± the standard deviation of the per-draw ratios (draw k of
ours over draw k of the baseline: the same image seeds). Targets (issue 30): (a) ≤ 0.2 and (b) ≤ 0.3, at every budget;
both move with the host's speed, so a faster host does not put them out of reach. Prints a table with a row per budget
and a table of ours' digits-FID at each fraction, saves the curves (digits-FID against the fraction of the budget, the
baseline's final level and the floor as lines) to benchmarks/quality.png, and appends both tables to benchmarks/RESULTS.md.
"""
import argparse, json, math, os, queue, statistics, subprocess, sys, tempfile, threading, time
from dataclasses import replace
from pathlib import Path
import torch

# the targets: (a) time to target, as a fraction of the budget; (b) excess over the floor at the end
TARGETS = dict(time_to_target=0.2, excess=0.3)
# where ours keeps a copy of its sampling weights, as fractions of its budget: dense around the 0.2 of target (a); six copies,
# 21 scoring jobs a budget with the baseline's three draws (eight copies took 27, too long for two budgets on 2 cores)
FRACTIONS = (0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
# the image seeds of the draws that score each point; 0, 1000, 2000 are those of the tables' three 1,000-image draws
DRAW_SEEDS = (0, 1000, 2000)
DRAWS = len(DRAW_SEEDS)
# the scoring sampler for both sides, (a name of hw5_diffusion.cli.SAMPLERS, steps): change it here for a better ≤ 50-NFE one
SAMPLER = ("ddim", 50)
# the DDIM step's ε̂, both sides alike: re-derived from the clipped x̂0 (our DDIMScheduler's default, the default here), or
# the model's own (diffusers' default); 04_ddim's "More deterministic steps can be worse" measures the difference
PAIRINGS = {"clipped": True, "model": False}
PAIRING_WORDS = {"clipped": "ε̂ from clipped x̂0", "model": "model's ε̂"}
DEFAULT_PAIRING = "clipped"
SCORERS = 2  # scoring processes at once, one thread each: the machine's two cores
# diffusers' example builds a 6-level U-Net for 64²+ images; 16² digits leave room for 3 levels (16, 8, 4), so its layout
# (2 layers a block, attention one level above the lowest) at widths that land near our digits U-Net's parameter count
BASELINE_UNET = dict(sample_size=16, in_channels=1, out_channels=1, layers_per_block=2, block_out_channels=(32, 32, 48),
                     down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=16)
BASELINE = dict(lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8, warmup_steps=500, batch_size=16, grad_clip=1.0,
                ema=dict(decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4))
LABELS = {"ours": "ours (hw5 digits preset)", "baseline": "baseline (diffusers UNet2DModel + example recipe)"}
# the levers that gained most in 8-minute runs of ours alone (RESULTS.md, "quality.py levers"). The digits preset keeps
# linear β: a short cosine-β run sends diffusers' Euler sampler from σ_max ≈ 20,000 (ᾱ_T ≈ 0), which such a model cannot follow
LEVERS = ("beta_schedule=cosine", "lr=3e-3", "min_snr_gamma=5")


def ours(max_steps:int, overrides=()):
    "One step of our digits preset, the EMA model for sampling, the noise scheduler's config, the parameter count and the batch."
    from hw5_diffusion.cli import train_parser, train_config
    from hw5_diffusion.training import Trainer
    from hw5_diffusion.advanced import training_parts
    from hw5_diffusion.unet import num_params
    argv = ["--data", "digits", "--out", "unused", *[a for kv in overrides for a in ("--set", kv)]]  # --out: required, never written
    c = replace(train_config(train_parser().parse_args(argv)), max_steps=max_steps)
    tr = Trainer(c, device="cpu", progress=False, **training_parts(c))  # what hw5-train hands it: an override may need the advanced objective
    batches = tr.batches()  # the batches `Trainer.fit` would draw
    tr.model.train()
    step = lambda: tr.train_step(batches)
    return step, lambda: tr.sampling_model, dict(tr.noise_scheduler.config), num_params(tr.unwrapped), tr.global_batch


def baseline(max_steps:int, overrides=(), recipe:dict=None):
    """The same for diffusers' unconditional-training recipe on the digits (16², [-1, 1]), or for `recipe` (BASELINE's keys) in its
    place. Its sampling model is the U-Net with the EMA weights copied over the trained ones: take it only when training is over."""
    import torch.nn.functional as F
    from diffusers import UNet2DModel, DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from hw5_diffusion.cli import DiffusersUNet
    from hw5_diffusion.data import load_digits_tensors
    r = recipe or BASELINE
    x = load_digits_tensors(16, "train")[0]
    torch.manual_seed(0)
    unet = UNet2DModel(**BASELINE_UNET)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    opt = torch.optim.AdamW(unet.parameters(), lr=r["lr"], betas=r["betas"], weight_decay=r["weight_decay"], eps=r["eps"])
    lr = get_scheduler("cosine", opt, num_warmup_steps=r["warmup_steps"], num_training_steps=max_steps)
    ema = EMAModel(unet.parameters(), model_cls=UNet2DModel, model_config=unet.config, **r["ema"])
    g = torch.Generator().manual_seed(0)

    def epochs():  # a shuffled DataLoader without drop_last, as the example's: each epoch ends on a short batch
        while True: yield from torch.randperm(len(x), generator=g).split(r["batch_size"])
    order = epochs()
    unet.train()

    def step():
        x0 = x[next(order)]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x0),), generator=g)
        loss = F.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), r["grad_clip"])
        opt.step(); lr.step(); opt.zero_grad(set_to_none=True)
        ema.step(unet.parameters())

    def sampling_model():
        ema.copy_to(unet.parameters())
        return DiffusersUNet(unet).eval()
    return step, sampling_model, dict(noise_scheduler.config), sum(p.numel() for p in unet.parameters()), r["batch_size"]


SIDES = dict(ours=ours, baseline=baseline)
SNAPSHOTS = dict(ours=FRACTIONS, baseline=(1.0,))  # the baseline's sampling model overwrites its training weights: the end only


def sync():
    "Wait at the parent's barrier: both sides calibrate together and start the timed training together, so they share the load alike."
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go": raise SystemExit("the parent stopped the run")


def worker(side:str, minutes:float, calib:float, out:str, overrides=()):
    "Calibrate, train for the budget, copying the sampling weights at `SNAPSHOTS[side]`; save the copies and the run's numbers to `out`."
    torch.set_num_threads(1)
    make, budget = SIDES[side], minutes * 60
    step = make(10**9, overrides)[0]
    sync()
    for _ in range(5): step()  # the first steps allocate and warm caches: leave them out of the rate
    done, t0 = 0, time.perf_counter()
    while done < 10 or time.perf_counter() - t0 < calib: step(); done += 1
    rate = done / (time.perf_counter() - t0)
    max_steps = max(1, int(budget * rate))
    step, sampling_model, scheduler_config, params, batch = make(max_steps, overrides)
    snapshots, copy_s = [], 0.0

    def snapshot(fraction):
        nonlocal copy_s
        t = time.perf_counter()
        state = {k: v.detach().clone() for k, v in sampling_model().state_dict().items()}
        snapshots.append(dict(fraction=fraction, time_fraction=(t - t0) / budget, step=done, state=state))
        copy_s += time.perf_counter() - t
    pending = [f for f in SNAPSHOTS[side] if f < 1]
    sync()
    done, t0 = 0, time.perf_counter()
    while done < max_steps and time.perf_counter() - t0 < budget:
        step(); done += 1
        while pending and (time.perf_counter() - t0 >= pending[0] * budget or done >= pending[0] * max_steps): snapshot(pending.pop(0))
    train_s = time.perf_counter() - t0
    snapshot(1.0)
    print(f"{side}: {done}/{max_steps} steps in {train_s:.0f} s (calibrated {rate:.2f} steps/s); {len(snapshots)} cop{'y' if len(snapshots) == 1 else 'ies'} of its "
          f"sampling weights, {copy_s * 1e3:.0f} ms in all", file=sys.stderr, flush=True)
    torch.save(dict(side=side, overrides=list(overrides), params=params, batch=batch, rate=rate, max_steps=max_steps, steps=done,
                    images_seen=done * batch, train_s=train_s, copy_s=copy_s, snapshots=snapshots, scheduler_config=scheduler_config), out)


def scorer():
    """Score jobs read from stdin, one JSON line each (a worker's file, a copy in it, the sampler and a draw): sample, take the
    digits-FID and the floor, and answer `result {...}` on stdout. The models are built once and take each copy's weights."""
    torch.set_num_threads(1)
    from hw5_diffusion.cli import make_scheduler, sample_images, samples_fid, finite_samples
    runs, models = {}, {}
    for line in sys.stdin:
        j = json.loads(line)
        if j["run"] not in runs: runs[j["run"]] = torch.load(j["run"])
        r = runs[j["run"]]
        key = (r["side"], tuple(r["overrides"]))
        if key not in models: models[key] = SIDES[r["side"]](1, r["overrides"])[1]()
        model = models[key]
        model.load_state_dict(r["snapshots"][j["snapshot"]]["state"])
        images, s = sample_images(model, make_scheduler(j["sampler"], r["scheduler_config"]), j["n"], steps=j["steps"], eta=j["eta"],
                                  seed=j["seed"], progress=False, use_clipped_model_output=j["clipped"])
        fid, floor = samples_fid(finite_samples(images, f"the {r['side']} copy at {r['snapshots'][j['snapshot']]['fraction']:g}"))
        print("result " + json.dumps(dict(fid=fid, floor=floor, sample_s=s)), flush=True)


def waits(p, word:str="ready"):
    "Read the process's stdout up to a line that starts with `word`: the rest of that line (None at its end); a library may print there first."
    for line in iter(p.stdout.readline, ""):
        if line.startswith(word): return line[len(word):].strip()
    return None


def run_sides(minutes, calib, overrides, folder) -> dict:
    "Both sides in parallel, a process and a thread each, through two barriers; {side: its worker's file in `folder`}."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs, files = {}, {side: f"{folder}/{side}.pt" for side in SIDES}
    for side in SIDES:
        cmd = [sys.executable, __file__, "--worker", side, "--minutes", str(minutes), "--calib", str(calib), "--out", files[side],
               *[a for kv in (overrides if side == "ours" else []) for a in ("--ours-set", kv)]]
        procs[side] = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(2):  # before calibrating, before training
            for side, p in procs.items():
                if waits(p) is None: raise SystemExit(f"the {side} worker failed (exit {p.wait()})")
            for p in procs.values(): p.stdin.write("go\n"); p.stdin.flush()
        for side, p in procs.items():
            if p.wait(): raise SystemExit(f"the {side} worker failed (exit {p.returncode})")
    finally:  # a failed side, or Ctrl-C: the other must not train on alone
        for p in procs.values():
            if p.poll() is None: p.terminate(); p.wait()
    return files


def score(jobs:list, name) -> list:
    """Each job of `jobs` (a line for `scorer`) by `SCORERS` scoring processes at once, one thread each; their results in order.
    A progress line per job on stderr, `name(job)` naming it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo, results, failed, lock = queue.SimpleQueue(), [None] * len(jobs), [], threading.Lock()
    for i in range(len(jobs)): todo.put(i)
    procs = [subprocess.Popen([sys.executable, __file__, "--scorer"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(min(SCORERS, len(jobs)))]

    def drive(p):
        while not failed:
            try: i = todo.get_nowait()
            except queue.Empty: return
            t = time.perf_counter()
            try: p.stdin.write(json.dumps(jobs[i]) + "\n"); p.stdin.flush()
            except OSError: pass  # it has ended: its stdout says so below
            answer = waits(p, "result ")
            if answer is None: failed.append(f"{name(jobs[i])}: the scoring process failed (exit {p.wait()})"); return
            results[i] = json.loads(answer)
            with lock:
                k = sum(r is not None for r in results)
                print(f"[{k}/{len(jobs)}] {name(jobs[i])}: digits-FID {results[i]['fid']:.2f} ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    threads = [threading.Thread(target=drive, args=(p,), daemon=True) for p in procs]
    try:
        for th in threads: th.start()
        for th in threads: th.join()
    finally:
        for p in procs:
            if p.poll() is None: p.stdin.close(); p.terminate(); p.wait()
    if failed: raise SystemExit(failed[0])
    return results


def measure_budget(minutes, n, calib, overrides, sampler) -> dict:
    "Train both sides for `minutes`, then score ours' copies and the baseline's end, `DRAWS` draws each: one budget's numbers (`budget_rows`' input)."
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        files = run_sides(minutes, calib, overrides, d)
        train_wall = time.perf_counter() - t0
        runs = {side: torch.load(f) for side, f in files.items()}
        points = [(side, k) for side in ("baseline", "ours") for k in range(len(runs[side]["snapshots"]))]
        jobs = [dict(run=files[side], snapshot=k, seed=seed, n=n, **sampler) for side, k in points for seed in DRAW_SEEDS]
        where = {(s, k): f"{minutes:g} min, {s} at {runs[s]['snapshots'][k]['fraction']:g} (step {runs[s]['snapshots'][k]['step']:,})" for s, k in points}
        t0 = time.perf_counter()
        scores = score(jobs, lambda j: f"{where[Path(j['run']).stem, j['snapshot']]}, seed {j['seed']}")
        score_wall = time.perf_counter() - t0
    fids = {p: [r["fid"] for r in scores[i * DRAWS:(i + 1) * DRAWS]] for i, p in enumerate(points)}
    for r in runs.values(): r["snapshots"] = [{k: v for k, v in s.items() if k != "state"} for s in r["snapshots"]]
    curve = [dict(**s, fids=fids["ours", k]) for k, s in enumerate(runs["ours"]["snapshots"])]
    sample_s = {side: [r["sample_s"] for (s, _), r in zip([p for p in points for _ in DRAW_SEEDS], scores) if s == side] for side in SIDES}
    return dict(minutes=minutes, n=n, runs=runs, curve=curve, baseline=fids["baseline", 0], floors=[r["floor"] for r in scores],
                train_wall=train_wall, score_wall=score_wall, sample_s=sample_s, images=len(jobs) * n)


def mean_sd(xs) -> tuple:
    "The mean of `xs` and their standard deviation (n − 1; 0 for a single value)."
    xs = list(xs)
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def time_to_target(fractions, fids, target:float) -> float:
    """The first fraction of the budget at which the curve (`fids` at increasing `fractions`) reaches `target`, linearly
    interpolated between the neighbouring points; `fractions[0]` when the first point is already there (the time lies at or
    before it), `math.inf` when no point is."""
    for k, (f, y) in enumerate(zip(fractions, fids)):
        if y <= target:
            if k == 0: return f
            f0, y0 = fractions[k - 1], fids[k - 1]
            return f0 + (y0 - target) / (y0 - y) * (f - f0)
    return math.inf


def excess_over_floor(ours, base, floor:float) -> tuple:
    """(ours − floor) / (baseline − floor) from the means of the draws `ours` and `base`, and its spread: the standard deviation of
    the per-draw ratios (draw k of ours over draw k of the baseline, the same image seeds). NaN when the baseline is at the floor or below."""
    if statistics.mean(base) <= floor: return math.nan, math.nan
    ratios = [(o - floor) / (b - floor) if b > floor else math.nan for o, b in zip(ours, base)]
    return (statistics.mean(ours) - floor) / (statistics.mean(base) - floor), mean_sd(ratios)[1]


def verdict(value:float, target:float) -> str:
    "`met` or `not met` against `target` (at most), with the margin."
    if math.isnan(value): return "not measurable"
    if value == math.inf: return "not met"
    return f"met, {target - value:.3f} under" if value <= target else f"not met, {value - target:.3f} over"


def show_time(value:float, first:float) -> str:
    "A time to target as the table writes it."
    if value == math.inf: return "> 1 (not reached)"
    return f"≤ {first:.3f}" if value <= first else f"{value:.3f}"


def budget_rows(b:dict) -> dict:
    "The reported numbers of one budget (`measure_budget`'s dict): means, spreads, (a) and (b) and whether they meet `TARGETS`."
    floor = statistics.mean(b["floors"])
    base, base_sd = mean_sd(b["baseline"])
    means = [mean_sd(p["fids"])[0] for p in b["curve"]]
    ttt = time_to_target([p["time_fraction"] for p in b["curve"]], means, base)
    excess, excess_sd = excess_over_floor(b["curve"][-1]["fids"], b["baseline"], floor)
    return dict(floor=floor, floor_varies=max(b["floors"]) - min(b["floors"]), base=base, base_sd=base_sd, ours=means[-1],
                ours_sd=mean_sd(b["curve"][-1]["fids"])[1], time_to_target=ttt, excess=excess, excess_sd=excess_sd,
                ttt_text=show_time(ttt, b["curve"][0]["time_fraction"]), ttt_verdict=verdict(ttt, TARGETS["time_to_target"]),
                excess_verdict=verdict(excess, TARGETS["excess"]))


def summary_table(budgets:list, sampler_text:str) -> str:
    "One Markdown row per budget: steps, the final digits-FIDs and the floor, (a) and (b) against their targets."
    head = (f"| budget | ours: steps (of max_steps) | baseline: steps (of max_steps) | baseline final, {sampler_text} | ours final | floor | "
            f"(a) time to target, fraction of the budget (target ≤ {TARGETS['time_to_target']}) | "
            f"(b) excess over the floor at the end (target ≤ {TARGETS['excess']}) |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for b in budgets:
        r, o, bl = budget_rows(b), b["runs"]["ours"], b["runs"]["baseline"]
        rows.append(f"| {b['minutes']:g} min | {o['steps']:,} of {o['max_steps']:,} | {bl['steps']:,} of {bl['max_steps']:,} | "
                    f"{r['base']:.2f} ± {r['base_sd']:.2f} | {r['ours']:.2f} ± {r['ours_sd']:.2f} | {r['floor']:.2f} | "
                    f"{r['ttt_text']} ({r['ttt_verdict']}) | {r['excess']:.3f} ± {r['excess_sd']:.3f} ({r['excess_verdict']}) |")
    return "\n".join([head, *rows])


def curve_table(budgets:list) -> str:
    "Ours' digits-FID at each copy of each budget, a Markdown row each: its fraction, where it was taken, the draws, mean ± sd."
    rows = ["| budget | fraction | training time / budget | step | digits-FID of the draws | mean ± sd |", "|---|---|---|---|---|---|"]
    for b in budgets:
        for p in b["curve"]:
            m, s = mean_sd(p["fids"])
            rows.append(f"| {b['minutes']:g} min | {p['fraction']:g} | {p['time_fraction']:.3f} | {p['step']:,} | "
                        f"{' / '.join(f'{x:.2f}' for x in p['fids'])} | {m:.2f} ± {s:.2f} |")
    return "\n".join(rows)


def figure(budgets:list, path, sampler_text:str):
    "Ours' mean digits-FID (± sd) against the fraction of each budget, the baseline's final level (dashed) and the floor (dotted)."
    from matplotlib.ticker import LogFormatter
    from hw5_diffusion.data import offscreen_figure
    fig = offscreen_figure(figsize=(7, 4.4))
    ax = fig.subplots()
    for k, b in enumerate(budgets):
        color, r = f"C{k}", budget_rows(b)
        ms = [mean_sd(p["fids"]) for p in b["curve"]]
        ax.errorbar([p["time_fraction"] for p in b["curve"]], [m for m, _ in ms], yerr=[s for _, s in ms], color=color, marker="o",
                    capsize=3, label=f"ours, {b['minutes']:g} min (time to target {r['ttt_text']})")
        ax.axhline(r["base"], color=color, ls="--", lw=1, label=f"baseline's final, {b['minutes']:g} min: {r['base']:.2f}")
    floor = budget_rows(budgets[0])["floor"]
    ax.axhline(floor, color="k", ls=":", lw=1, label=f"floor (real training digits): {floor:.2f}")
    ax.axvline(TARGETS["time_to_target"], color="grey", lw=0.8, alpha=0.6)  # target (a)
    ax.set(xlabel="training time / budget", ylabel=f"digits-FID, mean ± sd of {DRAWS} draws", xlim=(0, 1.05), yscale="log")
    ax.set_title(f"ours along its budget against the baseline's end; {sampler_text}", fontsize=9)
    # 20, not 2×10¹; the in-between ticks labelled while the curve spans at most 2 decades, a few of them up to 2
    ax.yaxis.set_major_formatter(LogFormatter()); ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 1)))
    ax.legend(fontsize=7); fig.tight_layout(); fig.savefig(path, dpi=100)
    return path


def figure_note(path) -> str:
    "The RESULTS.md sentence on the figure: where it is kept, if in the repository."
    root = Path(__file__).resolve().parent.parent
    try: return f"Figure: {Path(path).resolve().relative_to(root)}."
    except ValueError: return "Figure: not kept in the repository."


def sampler_options(ap, a) -> dict:
    "The scoring sampler's job keys from the arguments; `ap.error` (exit 2) for an option the sampler does not take."
    if a.sampler != "ddim":
        for opt, v in (("--eta", a.eta), ("--pairing", a.pairing)):
            if v is not None: ap.error(f"{opt} applies only to --sampler ddim, not {a.sampler}")
        return dict(sampler=a.sampler, steps=a.steps, eta=None, clipped=None)
    if a.eta is not None and not a.eta >= 0: ap.error(f"--eta must be >= 0, got {a.eta}")
    return dict(sampler="ddim", steps=a.steps, eta=a.eta or 0.0, clipped=PAIRINGS[a.pairing or DEFAULT_PAIRING])


def sampler_text(s:dict) -> str:
    "The scoring sampler in words: `DDIM-50 (η = 0, ε̂ from clipped x̂0)`, `dpm-solver++-20`."
    if s["sampler"] != "ddim": return f"{s['sampler']}-{s['steps']}"
    pairing = next(k for k, v in PAIRINGS.items() if v == s["clipped"])
    return f"DDIM-{s['steps']} (η = {s['eta']:g}, {PAIRING_WORDS[pairing]})"


def check_sampler(ap, sampler:dict, overrides):
    "Before any training: the sampler and its steps must fit both sides' noise schedules (and --ours-set must parse)."
    from hw5_diffusion.cli import CLIError, make_scheduler, check_steps
    try:
        for side in SIDES:
            config = SIDES[side](1, overrides if side == "ours" else ())[2]
            if not 1 <= sampler["steps"] <= config["num_train_timesteps"]:
                ap.error(f"--steps must be between 1 and T={config['num_train_timesteps']}, got {sampler['steps']}")
            check_steps(make_scheduler(sampler["sampler"], config), sampler["steps"])
    except CLIError as e: ap.error(str(e))


def main():
    from hw5_diffusion.cli import SAMPLERS
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--minutes", type=float, nargs="+", default=[4.0, 16.0], help="wall-clock training budgets of each side, run one after the other")
    ap.add_argument("--n", type=int, default=1000, help="images a sampling draw, per scored point")
    ap.add_argument("--calib", type=float, default=20, help="seconds of steps timed (both sides at once) to set max_steps from the budget")
    ap.add_argument("--sampler", choices=list(SAMPLERS), default=SAMPLER[0], help=f"the scoring sampler, both sides (default: {SAMPLER[0]})")
    ap.add_argument("--steps", type=int, default=SAMPLER[1], help=f"its sampling steps (default: {SAMPLER[1]})")
    ap.add_argument("--eta", type=float, help="DDIM's η (default 0); ddim only")
    ap.add_argument("--pairing", choices=list(PAIRINGS), help=f"the DDIM step's ε̂: {', '.join(f'{k}: {v}' for k, v in PAIRING_WORDS.items())} "
                    f"(default: {DEFAULT_PAIRING}); ddim only")
    ap.add_argument("--no-levers", action="store_true", help=f"ours: the bare digits preset, without {' '.join(LEVERS)}")
    ap.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE", help="a config override for ours (hw5-train --set), after the levers")
    ap.add_argument("--figure", default=str(Path(__file__).with_name("quality.png")))
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--worker", choices=list(SIDES), help=argparse.SUPPRESS)
    ap.add_argument("--scorer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a.worker, a.minutes[0], a.calib, a.out, a.ours_set)
    if a.scorer: return scorer()
    if min(a.minutes) <= 0 or a.n < 2 or a.calib <= 0: ap.error("--minutes, --n (at least 2) and --calib must be positive")
    from hw5_diffusion.cli import machine
    from results import append_results
    t0, sets, sampler = time.perf_counter(), [*([] if a.no_levers else LEVERS), *a.ours_set], sampler_options(ap, a)
    check_sampler(ap, sampler, sets)
    budgets = [measure_budget(m, a.n, a.calib, sets, sampler) for m in a.minutes]
    words = sampler_text(sampler)
    md = summary_table(budgets, words) + "\n\nOurs' digits-FID at each copy of its sampling weights:\n\n" + curve_table(budgets)
    print(md)
    rows = [budget_rows(b) for b in budgets]
    floors = sorted({x for b in budgets for x in b["floors"]})
    floor_words = (f"identical in all {sum(len(b['floors']) for b in budgets)} scorings ({floors[0]:.2f})" if len(floors) == 1
                   else f"from {floors[0]:.2f} to {floors[-1]:.2f} over the scorings")
    per_image = {side: sum(sum(b["sample_s"][side]) for b in budgets) / sum(len(b["sample_s"][side]) * b["n"] for b in budgets) for side in SIDES}
    per_image = ", ".join(f"{side} {s * 1e3:.1f} ms" for side, s in per_image.items())
    timing = "; ".join(f"{b['minutes']:g} min: training {b['train_wall'] / 60:.1f} min (ours' {len(b['curve'])} copies "
                       f"{b['runs']['ours']['copy_s'] * 1e3:.0f} ms), scoring {b['score_wall'] / 60:.1f} min ({b['images']:,} images)" for b in budgets)
    print(f"floor: {floor_words}; sampling an image on one thread (while the other scorer runs): {per_image}; {timing}")
    print(f"figure: {figure(budgets, a.figure, words)}")
    if not a.no_append:
        note = (f"`python benchmarks/quality.py --minutes {' '.join(f'{m:g}' for m in a.minutes)} --n {a.n} --sampler {sampler['sampler']} --steps {sampler['steps']}"
                f"{f' --eta {a.eta:g}' if a.eta is not None else ''}{f' --pairing {a.pairing}' if a.pairing else ''}"
                f"{' --no-levers' * a.no_levers}{''.join(' --ours-set ' + kv for kv in a.ours_set)}`: "
                f"each budget trains both sides from scratch in their own processes on 1 thread, the two in parallel on {machine('cpu')} "
                f"(a machine shared with other work); max_steps set from {a.calib:g} s of timed steps (both sides at once, after 5 untimed) so the "
                f"learning-rate schedule ends at the budget. Ours: the `hw5-train --data digits` preset{' with ' + ', '.join(sets) if sets else ''}, "
                f"its EMA weights copied in memory at {', '.join(f'{f:g}' for f in FRACTIONS)} of the budget (by training time, or by steps if "
                f"those come first). Baseline: diffusers `UNet2DModel` {BASELINE_UNET['block_out_channels']}, 2 layers a block, attention at 8², "
                f"with diffusers' train_unconditional.py recipe (AdamW 1e-4, betas 0.95/0.999, wd 1e-6, cosine with 500 warm-up steps, "
                f"EMAModel inv_gamma 1 power 3/4 max 0.9999, clip 1, batch 16, MSE on ε, T = 1000 linear β), its final EMA weights. "
                f"Scored after training ends: every copy of ours and the baseline's end by {DRAWS} draws of {a.n} images (image seeds "
                f"{', '.join(map(str, DRAW_SEEDS))}), {words} for both, digits-FID against the 360-image test split; ± is the sd of the draws. "
                f"The floor: the first {a.n} real training digits, {floor_words}. (a) time to target: the fraction of the budget "
                f"(the copy's training time / the budget) at which ours' mean first reaches the baseline's final mean, linearly interpolated "
                f"between neighbouring copies; (b) (ours − floor) / (baseline − floor) at the end from the means, ± the sd of the per-draw ratios "
                f"(the same seeds paired). Targets: (a) ≤ {TARGETS['time_to_target']}, (b) ≤ {TARGETS['excess']}. {timing}; "
                f"Sampling an image on one thread, two scorers at once: {per_image}. Whole run {(time.perf_counter() - t0) / 60:.1f} min. {figure_note(a.figure)}")
        append_results("Time to target at equal training time: ours vs diffusers' recipe", "cpu", note, md)


if __name__ == "__main__":
    main()

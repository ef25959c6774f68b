"""Sample quality for equal training time: our digits recipe against diffusers' unconditional-training recipe, each trained
for the same wall-clock budget on one CPU core, both sampled with DDIM-50 (η = 0) and scored with the digits-FID.

    python benchmarks/quality.py [--minutes 8] [--n 1000] [--calib 20] [--no-levers] [--ours-set KEY=VALUE ...] [--figure PATH] [--no-append]

The two models train side by side, one process each (`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`), so they share the
machine's load alike.
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
max_steps or at the budget, whichever comes first. Then --n images from the EMA weights, DDIM with 50 steps and
η = 0, the same sampler for both (our `hw5_diffusion.ddim` built from each side's training config) and the same seeds, via
`hw5_diffusion.cli.sample_images`, once with each ε̂ pairing of the DDIM step (`PAIRINGS`: ε̂ re-derived from the clipped
x̂0, our default, and the model's own ε̂, diffusers' default); the digits-FID of each against the 360-image test split, and the floor: as many real
training digits. Prints a Markdown table, saves 64 samples of each side by side in benchmarks/quality.png, and appends
the table to benchmarks/RESULTS.md. The issue's target: ours ≤ 0.4 × the baseline's digits-FID at 8 minutes.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
import torch

TARGET = 0.4
# diffusers' example builds a 6-level U-Net for 64²+ images; 16² digits leave room for 3 levels (16, 8, 4), so its layout
# (2 layers a block, attention one level above the lowest) at widths that land near our digits U-Net's parameter count
BASELINE_UNET = dict(sample_size=16, in_channels=1, out_channels=1, layers_per_block=2, block_out_channels=(32, 32, 48),
                     down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=16)
BASELINE = dict(lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8, warmup_steps=500, batch_size=16, grad_clip=1.0,
                ema=dict(decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4))
# the DDIM step's ε̂, both sides alike: re-derived from the clipped x̂0 (our DDIMScheduler's default), or the model's own
# (diffusers' default); 04_ddim's "More deterministic steps can be worse" measures the difference
PAIRINGS = {"ε̂ from clipped x̂0": True, "model's ε̂ (diffusers' default)": False}
LABELS = {"ours": "ours (hw5 digits preset)", "baseline": "baseline (diffusers UNet2DModel + example recipe)"}
# the levers that gained most in 8-minute runs of ours alone (RESULTS.md, "quality.py levers"). The digits preset keeps
# linear β: a short cosine-β run sends diffusers' Euler sampler from σ_max ≈ 20,000 (ᾱ_T ≈ 0), which such a model cannot follow
LEVERS = ("beta_schedule=cosine", "lr=3e-3", "min_snr_gamma=5")


def ours(max_steps:int, overrides=()):
    "One step of our digits preset, the EMA model for sampling, our DDIM, the parameter count and the batch."
    from hw5_diffusion.cli import train_parser, train_config, make_scheduler
    from hw5_diffusion.training import Trainer
    from hw5_diffusion.advanced import training_parts
    from hw5_diffusion.unet import num_params
    argv = ["--data", "digits", "--out", "unused", *[a for kv in overrides for a in ("--set", kv)]]  # --out: required, never written
    c = replace(train_config(train_parser().parse_args(argv)), max_steps=max_steps)
    tr = Trainer(c, device="cpu", progress=False, **training_parts(c))  # what hw5-train hands it: an override may need the advanced objective
    batches = tr.batches()  # the batches `Trainer.fit` would draw
    tr.model.train()
    step = lambda: tr.train_step(batches)
    return step, lambda: tr.sampling_model, make_scheduler("ddim", tr.noise_scheduler.config), num_params(tr.unwrapped), tr.global_batch


def baseline(max_steps:int, overrides=(), recipe:dict=None):
    "The same for diffusers' unconditional-training recipe on the digits (16², [-1, 1]), or for `recipe` (BASELINE's keys) in its place."
    import torch.nn.functional as F
    from diffusers import UNet2DModel, DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel
    from hw5_diffusion.cli import DiffusersUNet, make_scheduler
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
    return step, sampling_model, make_scheduler("ddim", dict(noise_scheduler.config)), sum(p.numel() for p in unet.parameters()), r["batch_size"]


SIDES = dict(ours=ours, baseline=baseline)


def sync():
    "Wait at the parent's barrier: both sides calibrate together and start the timed training together, so they share the load alike."
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go": raise SystemExit("the parent stopped the run")


def worker(side:str, minutes:float, n:int, calib:float, out:str, overrides=()):
    "Calibrate, train for the budget, sample `n` images; save them and the run's numbers to `out`."
    torch.set_num_threads(1)
    from hw5_diffusion.cli import sample_images
    make, budget = SIDES[side], minutes * 60
    step = make(10**9, overrides)[0]
    sync()
    for _ in range(5): step()  # the first steps allocate and warm caches: leave them out of the rate
    done, t0 = 0, time.perf_counter()
    while done < 10 or time.perf_counter() - t0 < calib: step(); done += 1
    rate = done / (time.perf_counter() - t0)
    max_steps = max(1, int(budget * rate))
    step, sampling_model, scheduler, params, batch = make(max_steps, overrides)
    sync()
    done, t0 = 0, time.perf_counter()
    while done < max_steps and time.perf_counter() - t0 < budget:
        step(); done += 1
    train_s = time.perf_counter() - t0
    print(f"{side}: {done}/{max_steps} steps in {train_s:.0f} s (calibrated {rate:.2f} steps/s); sampling {n}", file=sys.stderr, flush=True)
    images, sample_s = {}, 0.0
    for pairing, clipped in PAIRINGS.items():
        images[pairing], s = sample_images(sampling_model(), scheduler, n, steps=50, eta=0.0, seed=0, progress=False,
                                           use_clipped_model_output=clipped)
        sample_s += s
    torch.save(dict(images=images, side=side, params=params, batch=batch, rate=rate, max_steps=max_steps, steps=done,
                    images_seen=done * batch, train_s=train_s, sample_s=sample_s, timesteps=scheduler.timesteps[:3].tolist()), out)


def waits(p) -> bool:
    "Read the worker's stdout up to its `ready` (True) or its end (False); a library may print there first."
    for line in iter(p.stdout.readline, ""):
        if line.strip() == "ready": return True
    return False


def run_sides(minutes, n, calib, overrides) -> dict:
    "Both sides in parallel, a process and a thread each, through two barriers; {side: what its worker saved}."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as d:
        procs = {}
        for side in SIDES:
            cmd = [sys.executable, __file__, "--worker", side, "--minutes", str(minutes), "--n", str(n), "--calib", str(calib),
                   "--out", f"{d}/{side}.pt", *[a for kv in (overrides if side == "ours" else []) for a in ("--ours-set", kv)]]
            procs[side] = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(2):  # before calibrating, before training
                for side, p in procs.items():
                    if not waits(p): raise SystemExit(f"the {side} worker failed (exit {p.wait()})")
                for p in procs.values(): p.stdin.write("go\n"); p.stdin.flush()
            for side, p in procs.items():
                if p.wait(): raise SystemExit(f"the {side} worker failed (exit {p.returncode})")
        finally:  # a failed side, or Ctrl-C: the other must not train on alone
            for p in procs.values():
                if p.poll() is None: p.terminate(); p.wait()
        return {side: torch.load(f"{d}/{side}.pt") for side in SIDES}


def label(side:str, overrides=()) -> str:
    return LABELS[side] if side == "baseline" or not overrides else f"ours (hw5 digits preset, {', '.join(overrides)})"


def table(runs, fids, floor, n, overrides=()) -> str:
    "`fids[side][pairing]`: one digits-FID column per DDIM pairing, the same sampler for both sides in each."
    rows = [f"| {label(s, overrides)} | {r['params'] / 1e3:.0f} k | {r['steps']:,} of {r['max_steps']:,} | {r['batch']} | {r['images_seen']:,} | "
            f"{r['train_s']:.0f} | " + " | ".join(f"{fids[s][k]:.2f}" for k in PAIRINGS) + " |" for s, r in runs.items()]
    ratios = {k: fids["ours"][k] / fids["baseline"][k] for k in PAIRINGS}
    return "\n".join([f"| model | parameters | steps done (of max_steps) | batch | images seen | train s | "
                      + " | ".join(f"digits-FID (DDIM-50, {k}, {n} images)" for k in PAIRINGS) + " |",
                      "|---|---|---|---|---|---|" + "---|" * len(PAIRINGS), *rows,
                      f"| real training digits (floor) | | | | | | " + " | ".join(f"{floor:.2f}" for _ in PAIRINGS) + " |", "",
                      "ours / baseline = " + "; ".join(f"{r:.3f} with {k} (target ≤ {TARGET}: {'met' if r <= TARGET else 'not met'})"
                                                        for k, r in ratios.items())])


def figure(runs, fids, path, overrides=()):
    from hw5_diffusion.data import image_grid, offscreen_figure
    fig = offscreen_figure(figsize=(8, 4.4))
    for ax, (s, r) in zip(fig.subplots(1, 2), runs.items()):
        k = next(iter(PAIRINGS))
        ax.imshow(image_grid(r["images"][k][:64], nrow=8), cmap="gray"); ax.axis("off")
        ax.set_title(f"{label(s, overrides)}\n{r['steps']:,} steps, digits-FID {fids[s][k]:.1f} (DDIM-50, {k})", fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=100)
    return path


def figure_note(path) -> str:
    "The RESULTS.md sentence on the figure: where it is kept, if in the repository."
    root = Path(__file__).resolve().parent.parent
    try: return f"Figure: {Path(path).resolve().relative_to(root)}."
    except ValueError: return "Figure: not kept in the repository."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8.0, help="wall-clock training budget of each side")
    ap.add_argument("--n", type=int, default=1000, help="images sampled and scored per side")
    ap.add_argument("--calib", type=float, default=20, help="seconds of steps timed (both sides at once) to set max_steps from the budget")
    ap.add_argument("--no-levers", action="store_true", help=f"ours: the bare digits preset, without {' '.join(LEVERS)}")
    ap.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE", help="a config override for ours (hw5-train --set), after the levers")
    ap.add_argument("--figure", default=str(Path(__file__).with_name("quality.png")))
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--worker", choices=list(SIDES), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a.worker, a.minutes, a.n, a.calib, a.out, a.ours_set)
    from hw5_diffusion.cli import samples_fid, machine
    from results import append_results
    t0, sets = time.perf_counter(), [*([] if a.no_levers else LEVERS), *a.ours_set]
    runs = run_sides(a.minutes, a.n, a.calib, sets)
    fids = {}
    for s, r in runs.items():
        fids[s] = {}
        for k, x in r["images"].items(): fids[s][k], floor = samples_fid(x)
    md = table(runs, fids, floor, a.n, sets)
    print(md)
    for s, r in runs.items(): print(f"{s}: calibrated {r['rate']:.2f} steps/s; sampling {r['sample_s']:.0f} s; first DDIM steps {r['timesteps']}")
    print(f"figure: {figure(runs, fids, a.figure, sets)}")
    if not a.no_append:
        note = (f"`python benchmarks/quality.py --minutes {a.minutes:g} --n {a.n}{' --no-levers' * a.no_levers}{''.join(' --ours-set ' + kv for kv in a.ours_set)}`: "
                f"each side trained for {a.minutes:g} min of wall-clock time in its own process on 1 thread, the two in parallel "
                f"on {machine('cpu')} (a machine shared with other work); max_steps set from {a.calib:g} s of timed steps (both sides at once, after 5 untimed) so the "
                f"learning-rate schedule ends at the budget. Ours: the `hw5-train --data digits` preset"
                f"{' with ' + ', '.join(sets) if sets else ''}. Baseline: diffusers `UNet2DModel` {BASELINE_UNET['block_out_channels']}, "
                f"2 layers a block, attention at 8², with diffusers' train_unconditional.py recipe (AdamW 1e-4, betas 0.95/0.999, "
                f"wd 1e-6, cosine with 500 warm-up steps, EMAModel inv_gamma 1 power 3/4 max 0.9999, clip 1, batch 16, MSE on ε, "
                f"T = 1000 linear β). Both sampled from EMA weights by the same DDIM-50 (our `DDIMScheduler`, η = 0, seeds 0…), once with each ε̂ pairing; digits-FID against the 360-image "
                f"test split (the floor: {a.n} real training digits). Whole run {(time.perf_counter() - t0) / 60:.1f} min. "
                f"{figure_note(a.figure)}")
        append_results("Sample quality at equal training time: ours vs diffusers' recipe", "cpu", note, md)


if __name__ == "__main__":
    main()

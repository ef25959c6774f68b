"""Training throughput and forward latency of hw5_diffusion's U-Net against diffusers' UNet2DModel at matched
architecture (same channels, levels, ResBlocks per level, attention placement, scale-shift conditioning).

    python benchmarks/unet.py [--config demo|cifar|imagenet100|all] [--device cpu|cuda] [--amp no|bf16|fp16]
                              [--cpu-time] [--threads N] [--rounds 7] [--profile] [--compile]

Both models are timed in the same run, interleaved round by round, so that load from other processes hits both
alike. `--cpu-time` runs on one thread and measures each step with `time.process_time()` (the CPU time of this
process), which the other programs on a shared machine disturb far less than wall-clock time; without it the
steps are timed by the wall clock on `--threads` threads. The table reports medians, the ratio of the per-round
ratios (median, min–max) and, with `--profile`, where a training step spends its time. It is appended to
benchmarks/RESULTS.md.
"""
import argparse, statistics, sys, time
from collections import defaultdict
import torch
import diffusers
from diffusers import UNet2DModel
from results import append_results
from hw5_diffusion.unet import UNet, num_params

CONFIGS = {
    # the digits demo model (hw5_diffusion.ddpm.digits_unet)
    "demo": dict(in_channels=1, res=16, ch=16, ch_mult=(1, 2, 4), num_res_blocks=1, attn_levels=(2,), head_channels=32, groups=8, batch=128),
    # a CIFAR-sized model
    "cifar": dict(in_channels=3, res=32, ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, attn_levels=(1,), head_channels=64, groups=32, batch=32),
    # the seed's ImageNet-100 model at 128² (preset imagenet100-pixel): for a GPU, minutes per step on this CPU
    "imagenet100": dict(in_channels=3, res=128, ch=128, ch_mult=(1, 2, 2, 4), num_res_blocks=2, attn_levels=(2, 3), head_channels=64, groups=32, batch=32),
}
CPU_CONFIGS = ("demo", "cifar")


def ours(c):
    return UNet(c["in_channels"], ch=c["ch"], ch_mult=c["ch_mult"], num_res_blocks=c["num_res_blocks"], attn_levels=c["attn_levels"],
                head_channels=c["head_channels"], norm_groups=c["groups"], dropout=0.0, sample_size=c["res"])


def theirs(c):
    levels = range(len(c["ch_mult"]))
    return UNet2DModel(
        sample_size=c["res"], in_channels=c["in_channels"], out_channels=c["in_channels"],
        block_out_channels=tuple(c["ch"] * m for m in c["ch_mult"]), layers_per_block=c["num_res_blocks"],
        down_block_types=tuple("AttnDownBlock2D" if l in c["attn_levels"] else "DownBlock2D" for l in levels),
        up_block_types=tuple("AttnUpBlock2D" if l in c["attn_levels"] else "UpBlock2D" for l in reversed(levels)),
        attention_head_dim=c["head_channels"], norm_num_groups=c["groups"], resnet_time_scale_shift="scale_shift",
        add_attention=True, dropout=0.0)


def models(c, device, compile=False):
    "name -> (model, call) for both implementations, optionally torch.compile'd."
    ms = {"hw5_diffusion": (ours(c).to(device), lambda m, x, t: m(x, t)),
          "diffusers": (theirs(c).to(device), lambda m, x, t: m(x, t).sample)}
    if compile: ms = {f"{k} (torch.compile)": (torch.compile(m), call) for k, (m, call) in ms.items()}
    return ms


def train_step_fn(model, call, x, t, opt=None, amp=None):
    "One training step: forward (under autocast to `amp`, if given), MSE loss, backward and, given `opt`, the optimizer step."
    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            loss = (call(model, x, t).float() - x).square().mean()
        loss.backward()
        if opt is not None: opt.step()
    return step


def timed(fn, device, n, clock):
    if device.type == "cuda": torch.cuda.synchronize()
    t0 = clock()
    for _ in range(n): fn()
    if device.type == "cuda": torch.cuda.synchronize()
    return (clock() - t0) / n


def bench(name, c, device, rounds, iters, clock, compile=False, amp=None):
    "Per model: parameter count, training-step and 1-image forward times of each interleaved round."
    x = torch.randn(c["batch"], c["in_channels"], c["res"], c["res"], device=device)
    t = torch.randint(0, 1000, (c["batch"],), device=device)
    res, fns = {}, {}
    for k, (m, call) in models(c, device, compile).items():
        fns[k] = (train_step_fn(m, call, x, t, torch.optim.AdamW(m.parameters(), lr=1e-4), amp), m, call)
        res[k] = dict(config=name, model=k, params=num_params(m), batch=c["batch"], res=c["res"], train=[], fwd=[])
    for k, (step, m, call) in fns.items():  # warm-up (and compilation)
        for _ in range(2): step()
        with torch.no_grad(): m.eval(); call(m, x[:1], t[:1]); m.train()
    for _ in range(rounds):
        for k, (step, m, call) in fns.items():
            res[k]["train"].append(timed(step, device, iters, clock))
            with torch.no_grad():
                m.eval(); res[k]["fwd"].append(timed(lambda: call(m, x[:1], t[:1]), device, iters * 4, clock)); m.train()
    return list(res.values())


CATEGORIES = [("convolutions", ("conv",)), ("GroupNorm", ("group_norm",)), ("SiLU", ("silu",)),
              ("attention (SDPA/bmm/softmax)", ("attention", "bmm", "softmax")), ("Linear (mm)", ("aten::mm", "addmm", "aten::linear"))]


def profile(c, device, steps=3):
    "CPU time of a forward+backward pass by kind of op (ms per step), and the optimizer step's, per model."
    from torch.profiler import profile as tprof
    x = torch.randn(c["batch"], c["in_channels"], c["res"], c["res"], device=device)
    t = torch.randint(0, 1000, (c["batch"],), device=device)
    out = {}
    for k, (m, call) in models(c, device).items():
        fb = train_step_fn(m, call, x, t)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        fb(); opt.step()
        cats = defaultdict(float)
        with tprof() as p:
            t0 = time.process_time()
            for _ in range(steps): fb()
            cpu = time.process_time() - t0
        # the profiler clocks ops by wall time, which other processes' load inflates: rescale to this process's CPU time
        scale = cpu * 1e3 / steps / sum(e.self_cpu_time_total / 1e3 for e in p.key_averages())
        for e in p.key_averages():
            cat = next((n for n, keys in CATEGORIES if any(s in e.key for s in keys)), "elementwise, copies, cat, other")
            cats[cat] += e.self_cpu_time_total / 1e3 * scale
        cats["AdamW step (timed apart)"] = timed(opt.step, device, steps, time.process_time) * 1e3
        out[k] = cats
    return out


def profile_table(name, prof):
    ks = list(prof)
    names = [n for n, _ in CATEGORIES] + ["elementwise, copies, cat, other", "AdamW step (timed apart)"]
    tot = {k: sum(v for n, v in prof[k].items() if n != "AdamW step (timed apart)") for k in ks}
    lines = [f"| {name}: where a training step's CPU time goes | " + " | ".join(ks) + " |", "|---" * (len(ks) + 1) + "|"]
    for n in names:
        cells = [f"{prof[k][n]:.0f} ms" + ("" if n.startswith("AdamW") else f" ({100 * prof[k][n] / tot[k]:.0f}%)") for k in ks]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("| forward + backward, total | " + " | ".join(f"{tot[k]:.0f} ms" for k in ks) + " |")
    return "\n".join(lines)


def results_table(rows):
    lines = ["| config | model | params | batch × res² | train images/s | forward latency (1 image, ms) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['model']} | {r['params']/1e6:.3f} M | {r['batch']} × {r['res']}² | "
                     f"{r['batch'] / statistics.median(r['train']):.1f} | {1e3 * statistics.median(r['fwd']):.2f} |")
    notes = []
    for name in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == name]
        for o, d in zip(rs[0::2], rs[1::2]):  # (ours, diffusers) pairs, plain and compiled
            per_round = [b / a for a, b in zip(o["train"], d["train"])]
            fwd = statistics.median(d["fwd"]) / statistics.median(o["fwd"])
            notes.append(f"- {name}{' (both torch.compile)' if 'compile' in o['model'] else ''}: training throughput "
                         f"hw5_diffusion / diffusers = {statistics.median(per_round):.2f}× (median of {len(per_round)} rounds, "
                         f"range {min(per_round):.2f}–{max(per_round):.2f}); forward latency diffusers / hw5_diffusion = {fwd:.2f}×; "
                         f"parameter counts differ by {100 * (o['params'] / d['params'] - 1):+.2f}%")
    return "\n".join(lines + [""] + notes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", default="all", choices=["all", *CONFIGS], help=f"all: {', '.join(CPU_CONFIGS)} on the CPU, every config on a GPU")
    ap.add_argument("--amp", choices=["no", "bf16", "fp16"], default="no", help="autocast dtype for the training step")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    ap.add_argument("--iters", type=int, default=2, help="training steps per round and model")
    ap.add_argument("--cpu-time", action="store_true", help="one thread, timed by process CPU time (robust to other load)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for wall-clock timing (default: torch's)")
    ap.add_argument("--profile", action="store_true", help="also break a training step's time down by kind of op")
    ap.add_argument("--compile", action="store_true", help="also time both models under torch.compile (slow to compile)")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    if a.cpu_time and device.type != "cpu": ap.error("--cpu-time measures CPU time; use it with --device cpu")
    if a.cpu_time: torch.set_num_threads(1)
    elif a.threads: torch.set_num_threads(a.threads)
    clock = time.process_time if a.cpu_time else time.perf_counter
    torch.manual_seed(0)
    names = [a.config] if a.config != "all" else list(CONFIGS) if device.type == "cuda" else list(CPU_CONFIGS)
    amp = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.amp]
    rows = []
    for name in names:
        rows += bench(name, CONFIGS[name], device, a.rounds, a.iters, clock, amp=amp)
        if a.compile: rows += bench(name, CONFIGS[name], device, a.rounds, a.iters, clock, compile=True, amp=amp)
    out = [results_table(rows)]
    if a.profile: out += [profile_table(name, profile(CONFIGS[name], device)) for name in names]
    text = "\n\n".join(out)
    print(text)
    if not a.no_append:
        how = ("CPU time of this process (`time.process_time`) on 1 thread" if a.cpu_time else
               "wall-clock time" + (" — noisy on a shared machine" if device.type == "cpu" else ""))
        append_results("U-Net training throughput vs diffusers", device,
                       f"diffusers {diffusers.__version__}; `python benchmarks/unet.py {' '.join(sys.argv[1:])}`; {how}; "
                       f"medians of {a.rounds} interleaved rounds of {a.iters} steps (AdamW included); autocast {a.amp}.", text)


if __name__ == "__main__":
    main()

"""A latent-diffusion training step against a pixel-space one at 128² (the seed's ImageNet-100 configuration).

    python benchmarks/latent.py [--device cpu|cuda] [--cpu-time] [--rounds 3] [--iters 1] [--batch 4] [--bf16]

The pixel model is the `imagenet100-pixel` preset's U-Net on 3×128×128 images, the latent model the
`imagenet100-latent` preset's U-Net (the same architecture with 3 input/output channels) on the 3×32×32 latents of
the course's KL autoencoder (`COURSE_VAE`, random weights: only the cost is measured), both at the seed's batch of 4.
A training step is forward + backward + AdamW. With the latent cache the VAE encodes each image once, not every step,
so its cost is reported apart (per image), with the decoder's cost per sampled image and one sampling step (a U-Net
forward) of each model. Rounds interleave the models so that other load hits both alike; the table gives medians
and the pixel/latent ratios per round. `--cpu-time` times one thread by `time.process_time()`; on CUDA the clock is
the wall clock after `torch.cuda.synchronize()`, and the peak memory of each phase is `torch.cuda.max_memory_allocated`.
Appended to benchmarks/RESULTS.md.
"""
import argparse, statistics, sys, time
from contextlib import nullcontext
import torch
from results import append_results, timing_note
from unet import timed, train_step_fn
from hw5_diffusion.training import preset, build_unet
from hw5_diffusion.latent import KLAutoencoder, COURSE_VAE


def phases(batch, device, bf16):
    "name -> (function to time, images per call, model parameters)."
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    pixel = build_unet(preset("imagenet100-pixel"), 3, 128).to(device)
    latent = build_unet(preset("imagenet100-latent"), 3, 32).to(device)
    vae = KLAutoencoder(**COURSE_VAE).to(device).eval().requires_grad_(False)
    x, z = torch.randn(batch, 3, 128, 128, device=device), torch.randn(batch, 3, 32, 32, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    call = lambda m, x, t: m(x, t)

    def amp_step(model, x):
        step = train_step_fn(model, call, x, t, torch.optim.AdamW(model.parameters(), lr=1e-4))
        def f():
            with amp: step()
        return f

    def no_grad(f):
        def g():
            with torch.no_grad(), amp: f()
        return g
    num_params = lambda m: sum(p.numel() for p in m.parameters())
    return {"pixel U-Net training step (3×128×128)": (amp_step(pixel, x), batch, num_params(pixel)),
            "latent U-Net training step (3×32×32)": (amp_step(latent, z), batch, num_params(latent)),
            "pixel U-Net sampling step (forward)": (no_grad(lambda: pixel.eval()(x, t)), batch, num_params(pixel)),
            "latent U-Net sampling step (forward)": (no_grad(lambda: latent.eval()(z, t)), batch, num_params(latent)),
            "VAE encode 128² -> 3×32×32 (once per image, cached)": (no_grad(lambda: vae.encode(x).sample()), batch, num_params(vae)),
            "VAE decode 3×32×32 -> 128² (once per sample)": (no_grad(lambda: vae.decode(z)), batch, num_params(vae))}


def bench(batch, device, rounds, iters, clock, bf16):
    ps = phases(batch, device, bf16)
    res = {k: dict(times=[], peak=None, images=n, params=p) for k, (_, n, p) in ps.items()}
    for f, _, _ in ps.values(): f()  # warm-up
    for _ in range(rounds):
        for k, (f, _, _) in ps.items():
            if device.type == "cuda": torch.cuda.reset_peak_memory_stats(device)
            res[k]["times"].append(timed(f, device, iters, clock))
            if device.type == "cuda": res[k]["peak"] = max(res[k]["peak"] or 0, torch.cuda.max_memory_allocated(device))
    return res


def table(res, device):
    mem = device.type == "cuda"
    L = ["| phase | parameters | batch | time per call (ms) | images/s |" + (" peak GPU memory (GiB) |" if mem else ""),
         "|---|---|---|---|---|" + ("---|" if mem else "")]
    for k, r in res.items():
        m = statistics.median(r["times"])
        L.append(f"| {k} | {r['params'] / 1e6:.1f} M | {r['images']} | {1e3 * m:.1f} | {r['images'] / m:.1f} |"
                 + (f" {r['peak'] / 2**30:.2f} |" if mem else ""))
    names = list(res)
    L.append("")
    for a, b, what in ((names[0], names[1], "training step"), (names[2], names[3], "sampling step")):
        per = [p / l for p, l in zip(res[a]["times"], res[b]["times"])]
        L.append(f"- {what}: pixel / latent = {statistics.median(per):.1f}× (median of {len(per)} rounds, range {min(per):.1f}–{max(per):.1f})")
    enc, dec, step = (statistics.median(res[k]["times"]) / res[k]["images"] for k in (names[4], names[5], names[1]))
    L.append(f"- encoding one image once costs {enc / step:.2f} latent training steps' time per image; decoding one sample costs "
             f"{dec / (statistics.median(res[names[3]]['times']) / res[names[3]]['images']):.1f} latent sampling steps' time")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=1, help="calls per round and phase")
    ap.add_argument("--batch", type=int, default=4, help="batch (the seed's: 4 per GPU)")
    ap.add_argument("--cpu-time", action="store_true", help="one thread, timed by process CPU time (robust to other load)")
    ap.add_argument("--threads", type=int, help="CPU threads for wall-clock timing")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available(): ap.error("--device cuda: CUDA is not available")
    if a.cpu_time and device.type != "cpu": ap.error("--cpu-time measures CPU time; use it with --device cpu")
    if a.cpu_time: torch.set_num_threads(1)
    elif a.threads: torch.set_num_threads(a.threads)
    if device.type == "cuda": torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    clock = time.process_time if a.cpu_time else time.perf_counter
    text = table(bench(a.batch, device, a.rounds, a.iters, clock, a.bf16), device)
    print(text)
    if not a.no_append:
        append_results("Latent vs pixel training step at 128² (imagenet100 presets)", device,
                       f"`python benchmarks/latent.py {' '.join(sys.argv[1:])}`; {timing_note(a.cpu_time, device)}; {'bf16 autocast; ' if a.bf16 else ''}"
                       f"medians of {a.rounds} interleaved rounds of {a.iters} call(s); the course VAE with random weights.", text)


if __name__ == "__main__":
    main()

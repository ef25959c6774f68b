"""Training throughput and model FLOPs utilisation (MFU) of the HW5 configurations in bf16, and the time to sample
5,000 images with DDIM-50 and score them with FID/IS (issue 16, item 5; a GPU check run by benchmarks/gpu.sh).

    python benchmarks/mfu.py [--device cuda] [--batch 32] [--iters 10] [--n 5000] [--sample-batch 250] [--no-append]

Configurations: `imagenet100-pixel` (the HW5 U-Net on 3×128×128 images) and `imagenet100-latent` (the same U-Net on the
3×32×32 latents of the course VAE), random weights (only the cost is measured). A training step is forward and
backward of the U-Net under bf16 autocast, MSE, and AdamW (`unet.train_step_fn`). Its FLOPs are counted once by
`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, forward and backward; the optimizer and
element-wise work are not counted, as MFU usually leaves them out); then `--iters` timed steps after 3 untimed give
images/s and achieved FLOP/s. MFU = achieved FLOP/s ÷ the device's peak dense bf16 FLOP/s (`PEAK_BF16`, by device name;
no figure for a device not listed, nor for a CPU). Sampling: `--n` images from the pixel model with our DDIM, 50 steps,
η = 0, under bf16 autocast, `--sample-batch` at a time; scoring: FID, IS and KID by `fidelity_metrics` with
torch-fidelity's Inception architecture (random weights: the same cost, and nothing to download) against
the same images as reference (the reference's features counted in the time). Appended to benchmarks/RESULTS.md.
"""
import argparse, tempfile, time
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode
from results import append_results
from unet import timed, train_step_fn
from hw5_diffusion.training import preset, build_unet
from hw5_diffusion.unet import num_params

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}  # dense, no sparsity
CONFIGS = {"imagenet100-pixel": (3, 128), "imagenet100-latent": (3, 32)}


def peak_flops(device) -> float:
    "The device's peak dense bf16 FLOP/s from `PEAK_BF16`, None when unknown (or a CPU)."
    if device.type != "cuda": return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def step_flops(step) -> int:
    "FLOPs of one call of `step`, counted by FlopCounterMode."
    with FlopCounterMode(display=False) as counter: step()
    return counter.get_total_flops()


def train_row(name:str, device, batch:int, iters:int) -> dict:
    channels, size = CONFIGS[name]
    model = build_unet(preset(name), channels, size).to(device).train()
    x = torch.randn(batch, channels, size, size, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    step = train_step_fn(model, lambda m, x, t: m(x, t), x, t, torch.optim.AdamW(model.parameters(), lr=1e-4), torch.bfloat16)
    flops = step_flops(step)
    for _ in range(3): step()
    secs = timed(step, device, iters, time.perf_counter)
    peak = peak_flops(device)
    return dict(config=name, shape=f"{channels}×{size}×{size}", params=num_params(model), batch=batch, step_s=secs,
                images_per_s=batch / secs, tflops_step=flops / 1e12, achieved=flops / secs, mfu=flops / secs / peak if peak else None)


def sampling_row(device, n:int, batch:int) -> dict:
    from hw5_diffusion.cli import sample_images
    from hw5_diffusion.ddim import DDIMScheduler
    from hw5_diffusion.evaluation import fidelity_metrics, save_random_inception_weights
    model = build_unet(preset("imagenet100-pixel"), 3, 128).to(device).eval()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        images, sample_s = sample_images(model, DDIMScheduler(), n, steps=50, eta=0.0, batch_size=batch, progress=False)
    weights = save_random_inception_weights(Path(tempfile.mkdtemp()) / "inception.pth")  # the cost of the real ones, no download
    t0 = time.perf_counter()
    m = fidelity_metrics(images.float(), images.float(), "inception", weights, device=device)
    if device.type == "cuda": torch.cuda.synchronize()
    return dict(n=n, sample_s=sample_s, score_s=time.perf_counter() - t0, fid=m["fid"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=32, help="training batch per step")
    ap.add_argument("--iters", type=int, default=10, help="timed training steps per configuration")
    ap.add_argument("--n", type=int, default=5000, help="images sampled and scored")
    ap.add_argument("--sample-batch", type=int, default=250)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    rows = [train_row(c, device, a.batch, a.iters) for c in a.configs]
    mfu = lambda r: "n/a (no peak figure for this device)" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
    lines = ["| config | input | parameters | batch | step (ms) | images/s | TFLOPs a step | achieved TFLOP/s | MFU (bf16 peak) |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['shape']} | {r['params'] / 1e6:.1f} M | {r['batch']} | {1e3 * r['step_s']:.1f} | {r['images_per_s']:.1f} | "
              f"{r['tflops_step']:.3f} | {r['achieved'] / 1e12:.2f} | {mfu(r)} |" for r in rows]
    s = sampling_row(device, a.n, a.sample_batch) if a.n else None
    if s:
        lines += ["", f"Sampling {s['n']} images (pixel config, DDIM-50, bf16): {s['sample_s']:.1f} s; FID + IS + KID of them "
                      f"(Inception-v3 with random weights: the cost of the real ones): {s['score_s']:.1f} s; "
                      f"together {s['sample_s'] + s['score_s']:.1f} s."]
    table = "\n".join(lines)
    print(table)
    if not a.no_append:
        note = (f"`python benchmarks/mfu.py --device {a.device} --batch {a.batch} --iters {a.iters} --n {a.n}`: bf16 autocast, random weights; "
                "FLOPs of a training step (forward + backward) by FlopCounterMode, MFU against the device's dense bf16 peak "
                f"({', '.join(f'{k} {v / 1e12:.0f}' for k, v in PEAK_BF16.items())} TFLOP/s); wall-clock times after torch.cuda.synchronize().")
        append_results("Training MFU and 5,000-sample time, HW5 configs in bf16", device, note, table)


if __name__ == "__main__":
    main()

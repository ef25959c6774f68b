"""Memory and time of a U-Net training step as self-attention is added at each resolution, and which
scaled_dot_product_attention kernel ran (plus a last row with BigGAN-style up/down ResBlocks).

    python benchmarks/attention.py [--config digits|cifar|all] [--device cpu|cuda] [--cpu-time] [--amp bf16] [--rounds 5]

Rows add attention level by level, from the coarsest (the default placement) to every resolution including the
highest. All variants of a config are timed in the same run, interleaved round by round, so that load from other
processes hits them alike; `--cpu-time` (CPU only) uses one thread and the process's CPU time. Memory is the
activations autograd saves for the backward pass (any device: counted with saved-tensor hooks), and on CUDA also
`torch.cuda.max_memory_allocated` over one training step. The kernel is read from the profiler: the aten op that
`F.scaled_dot_product_attention` dispatched to (flash, memory-efficient, cuDNN or math), and, on CUDA, which
backends accept these shapes when forced one at a time with `torch.nn.attention.sdpa_kernel`. The table is appended
to benchmarks/RESULTS.md.
"""
import argparse, os, statistics, sys, time
from contextlib import nullcontext
import torch
from results import append_results
from hw5_diffusion.unet import UNet, num_params

CONFIGS = {
    # the digits U-Net (hw5_diffusion.ddpm.digits_unet), 16 channels per head as in the advanced chapter
    "digits": dict(in_channels=1, res=16, ch=16, ch_mult=(1, 2, 4), num_res_blocks=1, head_channels=16, groups=8, batch=64),
    # a CIFAR-sized model, ADM's 64 channels per head
    "cifar": dict(in_channels=3, res=32, ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, head_channels=64, groups=32, batch=32),
    # the HW5 ImageNet-100 U-Net at 128², batch 4 per GPU as the seed (GPU only: "all" skips it on a CPU)
    "hw5": dict(in_channels=3, res=128, ch=128, ch_mult=(1, 2, 2, 4), num_res_blocks=2, head_channels=64, groups=32, batch=4, gpu_only=True),
}
KERNELS = {"aten::_scaled_dot_product_flash_attention": "flash", "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
           "aten::_scaled_dot_product_efficient_attention": "memory-efficient", "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
           "aten::_scaled_dot_product_attention_math": "math"}


def placements(c):
    "(attn_levels, resblock_updown): none, then coarsest first to every level (the highest resolution included), then that with up/down ResBlocks."
    n = len(c["ch_mult"])
    return [((), False)] + [(tuple(range(n - 1 - k, n)), False) for k in range(n)] + [(tuple(range(n)), True)]


def model(c, levels, updown, device):
    return UNet(c["in_channels"], ch=c["ch"], ch_mult=c["ch_mult"], num_res_blocks=c["num_res_blocks"], attn_levels=levels,
                head_channels=c["head_channels"], norm_groups=c["groups"], dropout=0.0, sample_size=c["res"],
                resblock_updown=updown).to(device)


def saved_bytes(fn):
    "Bytes of the tensors autograd saves for backward while `fn` runs (each storage counted once)."
    seen = {}
    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.device)] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): out = fn()
    return sum(seen.values()), out


def sdpa_kernel_used(m, x, t, amp):
    "The aten SDPA op(s) a forward pass dispatched to, read from the profiler."
    from torch.profiler import profile, ProfilerActivity
    with torch.no_grad(), amp(), profile(activities=[ProfilerActivity.CPU]) as p: m(x, t)
    names = {KERNELS[e.key] for e in p.key_averages() if e.key in KERNELS}
    return ", ".join(sorted(names)) or "none"


def backends_accepting(m, x, t, amp):
    "CUDA: the SDPA backends that run this model's attention when forced one at a time."
    from torch.nn.attention import sdpa_kernel, SDPBackend
    ok = []
    for name, b in [("flash", SDPBackend.FLASH_ATTENTION), ("memory-efficient", SDPBackend.EFFICIENT_ATTENTION),
                    ("cuDNN", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]:
        try:
            with torch.no_grad(), amp(), sdpa_kernel(b): m(x, t)
            torch.cuda.synchronize(); ok.append(name)
        except RuntimeError: pass
    return ", ".join(ok)


def bench(name, c, device, rounds, iters, clock, amp):
    x = torch.randn(c["batch"], c["in_channels"], c["res"], c["res"], device=device)
    t = torch.randint(0, 1000, (c["batch"],), device=device)
    rows = []
    for levels, updown in placements(c):
        torch.manual_seed(0)
        m = model(c, levels, updown, device)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        def step(m=m, opt=opt):
            opt.zero_grad(set_to_none=True)
            with amp(): loss = (m(x, t) - x).float().square().mean()
            loss.backward(); opt.step()
        for _ in range(2): step()  # warm-up
        with amp(): saved, _ = saved_bytes(lambda: m(x, t))
        peak = None
        if device.type == "cuda":
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(device); base = torch.cuda.memory_allocated(device)
            step(); torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated(device) - base
        res = [c["res"] // 2 ** l for l in levels]
        rows.append(dict(config=name, levels=levels, res=res, updown=updown, params=num_params(m), batch=c["batch"], saved=saved, peak=peak,
                         kernel=sdpa_kernel_used(m, x, t, amp) if levels else "—",
                         accepts=backends_accepting(m, x, t, amp) if levels and device.type == "cuda" else None,
                         step=step, times=[]))
    for _ in range(rounds):
        for r in rows:
            if device.type == "cuda": torch.cuda.synchronize()
            t0 = clock()
            for _ in range(iters): r["step"]()
            if device.type == "cuda": torch.cuda.synchronize()
            r["times"].append((clock() - t0) / iters)
    return rows


def table(rows, device):
    cuda = device.type == "cuda"
    head = "| config | attention at | params | batch | step (ms) | vs none | saved activations (MB) |" + (" CUDA peak (MB) |" if cuda else "") + " SDPA kernel |" + (" backends that accept it |" if cuda else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == name]
        base = rs[0]["times"]
        for r in rs:
            ratio = statistics.median([a / b for a, b in zip(r["times"], base)])
            where = (", ".join(f"{s}²" for s in r["res"]) or "none") + (" + up/down ResBlocks" if r["updown"] else "")
            line = (f"| {name} | {where} | {r['params'] / 1e6:.3f} M | {r['batch']} | {1e3 * statistics.median(r['times']):.1f} | "
                    f"{ratio:.2f}× | {r['saved'] / 2**20:.1f} |")
            if cuda: line += f" {r['peak'] / 2**20:.1f} |"
            line += f" {r['kernel']} |"
            if cuda: line += f" {r['accepts'] or '—'} |"
            lines.append(line)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", default="all", choices=["all", *CONFIGS])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--iters", type=int, default=2, help="training steps per round and variant")
    ap.add_argument("--cpu-time", action="store_true", help="one thread, timed by process CPU time (robust to other load)")
    ap.add_argument("--amp", choices=["no", "bf16", "fp16"], default="no", help="autocast dtype (flash attention needs bf16/fp16)")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available(): ap.error("--device cuda: CUDA is not available")
    if a.cpu_time and device.type != "cpu": ap.error("--cpu-time measures CPU time; use it with --device cpu")
    if a.amp == "fp16" and device.type != "cuda": ap.error("--amp fp16 needs --device cuda")
    if a.cpu_time: torch.set_num_threads(1)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)
    amp = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    clock = time.process_time if a.cpu_time else time.perf_counter
    names = [n for n in CONFIGS if device.type == "cuda" or not CONFIGS[n].get("gpu_only")] if a.config == "all" else [a.config]
    rows = sum((bench(n, CONFIGS[n], device, a.rounds, a.iters, clock, amp) for n in names), [])
    text = table(rows, device)
    print(text)
    if not a.no_append:
        load = f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end (other processes share the CPU: ratios within this run are what to compare)" if device.type == "cpu" else ""
        how = ("CPU time of this process (`time.process_time`) on 1 thread" + load if a.cpu_time else
               "wall-clock time" + (" (torch.cuda.synchronize around each round)" if device.type == "cuda" else " — noisy on a shared machine"))
        append_results("U-Net training step as attention is added at each resolution", device,
                       f"`python benchmarks/attention.py {' '.join(sys.argv[1:])}`; {how}; autocast {a.amp}; medians of {a.rounds} "
                       f"interleaved rounds of {a.iters} steps (AdamW included); 'vs none': median per-round ratio to the model "
                       "without attention; saved activations: tensors autograd keeps for backward.", text)


if __name__ == "__main__":
    main()

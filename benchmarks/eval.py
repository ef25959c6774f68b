"""Time FID + IS (+ KID) on 1,000 and 5,000 generated images: feature extraction and the statistics separately,
for the digits classifier and for Inception-v3, through the same torch-fidelity functions `calculate_metrics` uses.

    python benchmarks/eval.py [--device cpu|cuda] [--sizes 1000 5000] [--features digits inception]
                              [--inception-weights PATH] [--batch-size 200] [--no-append]

The images are stand-ins for generated ones (training digits drawn with replacement plus a little noise, 16×16):
the time of a fixed feature network does not depend on what the pixels show. Without --inception-weights, and
with no cached download, Inception runs with random weights of the same architecture: same time, meaningless
values. The reference statistics (the 360 test digits) are computed before the clock starts, as they are cached
in real use. Appends a table to benchmarks/RESULTS.md.
"""
import argparse, os, time
from pathlib import Path
import torch
from results import append_results
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from hw5_diffusion.data import load_digits_tensors
from hw5_diffusion.checkpoints import CheckpointError
from hw5_diffusion.evaluation import FEATURES, DIGITS_NET_PATH, UInt8Images, inception_weights, save_random_inception_weights


def extractor(features, weights, cuda):
    layers = {"digits": ["features", "logits"], "inception": ["2048", "logits_unbiased"]}[features]
    return create_feature_extractor(FEATURES[features], layers, cuda=cuda, feature_extractor_weights_path=str(weights), verbose=False), layers


def timed(fn, cuda):
    "The result, the wall seconds and this process's CPU seconds (all threads: robust to other programs' load)."
    if cuda: torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if cuda: torch.cuda.synchronize()
    return out, time.perf_counter() - t0, time.process_time() - c0


def bench(features, weights, sizes, batch_size, cuda):
    fe, (fid_layer, isc_layer) = extractor(features, weights, cuda)
    extract = lambda x: get_featuresdict_from_dataset(UInt8Images(x), fe, batch_size, cuda, True, False)
    ref = extract(load_digits_tensors(16, "test")[0])
    ref_stats = fid_features_to_statistics(ref[fid_layer])
    g = torch.Generator().manual_seed(0)
    pool = load_digits_tensors(16, "train")[0]
    rows = []
    for n in sizes:
        x = (pool[torch.randint(len(pool), (n,), generator=g)] + 0.05 * torch.randn(n, 1, 16, 16, generator=g)).clamp(-1, 1)
        f, t_feat, c_feat = timed(lambda: extract(x), cuda)

        def stats():
            fid = fid_statistics_to_metric(fid_features_to_statistics(f[fid_layer]), ref_stats, False)
            isc = isc_features_to_metric(f[isc_layer], splits=10)
            kid = kid_features_to_metric(f[fid_layer], ref[fid_layer], kid_subset_size=min(1000, n, len(ref[fid_layer])), verbose=False)
            return fid, isc, kid
        (fid, isc, kid), t_stats, c_stats = timed(stats, cuda)
        rows.append(dict(features=features, n=n, feat_s=t_feat, stats_s=t_stats, feat_cpu=c_feat, stats_cpu=c_stats, dim=f[fid_layer].shape[1]))
        print(f"{features:>9} N={n}: features {t_feat:.1f} s ({n / t_feat:.0f} img/s, {c_feat:.1f} s CPU), "
              f"statistics {t_stats:.2f} s ({c_stats:.2f} s CPU)", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--features", nargs="+", default=["digits", "inception"], choices=sorted(FEATURES))
    ap.add_argument("--inception-weights")
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    cuda = torch.device(a.device).type == "cuda"
    load = os.getloadavg()[0]
    rows, note = [], ""
    for features in a.features:
        if features == "digits": w = DIGITS_NET_PATH
        else:
            try: w = inception_weights(a.inception_weights)
            except CheckpointError as e:
                if a.inception_weights: raise
                w = save_random_inception_weights(Path("/tmp") / "hw5-bench-random-inception.pth")
                note = f"Inception ran with random weights of the same architecture ({e}); the time is the same."
        rows += bench(features, w, a.sizes, a.batch_size, cuda)
    lines = ["| features | N | feature dim | feature extraction: wall s (CPU s) | images/s | FID + IS + KID statistics: wall s (CPU s) | total wall (s) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['features']} | {r['n']} | {r['dim']} | {r['feat_s']:.1f} ({r['feat_cpu']:.1f}) | {r['n'] / r['feat_s']:.3g} | "
              f"{r['stats_s']:.2f} ({r['stats_cpu']:.2f}) | {r['feat_s'] + r['stats_s']:.1f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if not a.no_append:
        append_results("FID + IS + KID evaluation time", a.device,
                       f"batch {a.batch_size}; stand-in 16×16 images (upsampled to 299² for Inception); reference statistics "
                       f"precomputed; {torch.get_num_threads()} torch threads; load average before the run {load:.1f} (wall times on a "
                       f"loaded CPU are upper bounds; CPU seconds, summed over threads, are not inflated by the load). {note}", table)


if __name__ == "__main__":
    main()

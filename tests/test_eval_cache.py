"""The reference-statistics cache runs no code (issue 15, item 1): torch-fidelity's own cache is pickles it reads with
`torch.load(weights_only=False)`, so a file planted in `--cache` (or in `$HW5_CACHE/fidelity`) would run during
`hw5-eval`. Payloads are planted under every name the package or torch-fidelity could read; none may run, and the
metrics must be the ones torch-fidelity computes on the same images with its cache off."""
import json, math, sys
from pathlib import Path
import pytest
import torch
import torch_fidelity
from safetensors.torch import save_file
from torch.utils.data import Dataset
from conftest import run
from hw5_diffusion.data import load_digits_tensors
from hw5_diffusion.evaluation import (DIGITS_NET_PATH, FEATURES, UInt8Images, fidelity_metrics, file_hash, reference_cache_file,
                                      reference_dataset)

METRICS = ("fid", "is_mean", "is_std", "kid_mean", "kid_std")


class Payload:
    "Unpickling this writes `marker`: what a planted cache file would do."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


def plant(path, marker):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(Payload(marker), path)
    return Path(path)


def torch_fidelity_names(cache_name, features="digits", weights=DIGITS_NET_PATH):
    "Every file torch-fidelity's cache reads for the reference under the name the package used to give it."
    prefix = f"{cache_name}-{features}-{file_hash(weights)}-{FEATURES[features]}"
    return [f"{prefix}-features-features.pt", f"{prefix}-features-logits.pt", f"{prefix}-stat-fid-features.pt"]


def close(a, b):
    "Equal to float64 round-off (the numbers are in fact bit-identical: the same functions on the same features)."
    return all(math.isclose(a[k], b[k], rel_tol=4 * sys.float_info.epsilon, abs_tol=1e-300) for k in METRICS)


@pytest.fixture(scope="module")
def digits():
    xtr, xt = load_digits_tensors(16, "train")[0], load_digits_tensors(16, "test")[0]
    gen = xtr[:200].flip(-1)  # mirrored digits: some distance from the reference
    # the old fidelity_metrics: one calculate_metrics call; here with torch-fidelity's cache off
    r = torch_fidelity.calculate_metrics(
        input1=UInt8Images(gen), input2=UInt8Images(xt), fid=True, isc=True, kid=True, feature_extractor=FEATURES["digits"],
        feature_extractor_weights_path=str(DIGITS_NET_PATH), isc_splits=10, kid_subset_size=200, cache=False, cuda=False,
        batch_size=200, save_cpu_ram=True, verbose=False)
    want = dict(fid=r["frechet_inception_distance"], is_mean=r["inception_score_mean"], is_std=r["inception_score_std"],
                kid_mean=r["kernel_inception_distance_mean"], kid_std=r["kernel_inception_distance_std"])
    return gen, xt, want


class Unreadable(Dataset):
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i): raise RuntimeError("a reference image was read")


def test_metrics_equal_torch_fidelity_and_cache_hit_equals_miss(digits, tmp_path):
    gen, xt, want = digits
    plain = fidelity_metrics(gen, xt)
    miss = fidelity_metrics(gen, xt, cache_name="digits-test-16px", cache_root=tmp_path)
    (cached,) = tmp_path.glob("digits-test-16px-digits-*.safetensors")
    hit = fidelity_metrics(gen, Unreadable(len(xt)), cache_name="digits-test-16px", cache_root=tmp_path)  # no image read
    print({k: (want[k], plain[k], miss[k], hit[k]) for k in METRICS})
    assert close(plain, want) and close(miss, want)
    assert {k: hit[k] for k in METRICS} == {k: miss[k] for k in METRICS}
    assert sorted(p.name for p in tmp_path.iterdir()) == [cached.name]


def test_planted_pickles_never_run_in_process(digits, tmp_path):
    gen, xt, want = digits
    marker, cache = tmp_path / "PWNED", tmp_path / "cache"
    # the names are right: torch-fidelity itself, given the old cache name, runs the payload
    old = "digits-test-16px-digits-" + file_hash(DIGITS_NET_PATH)
    for name in torch_fidelity_names("digits-test-16px"): plant(tmp_path / "tf" / name, tmp_path / "tf-ran")
    try: torch_fidelity.calculate_metrics(input1=UInt8Images(gen), input2=UInt8Images(xt), fid=True, isc=True, kid=True,
                                          feature_extractor=FEATURES["digits"], feature_extractor_weights_path=str(DIGITS_NET_PATH),
                                          kid_subset_size=200, input2_cache_name=old, cache_root=str(tmp_path / "tf"), cuda=False, save_cpu_ram=True,
                                          verbose=False)
    except Exception: pass  # the payload unpickles to None, which torch-fidelity then trips over
    assert (tmp_path / "tf-ran").exists()
    # now the package: torch-fidelity's names, our own file name, and torch-fidelity's default cache folder
    for name in torch_fidelity_names("digits-test-16px"): plant(cache / name, marker)
    fidelity_metrics(gen, xt, cache_name="digits-test-16px", cache_root=tmp_path / "probe")
    (ours,) = (tmp_path / "probe").iterdir()
    plant(cache / ours.name, marker)
    got = fidelity_metrics(gen, xt, cache_name="digits-test-16px", cache_root=cache)
    assert not marker.exists() and close(got, want)
    assert (cache / ours.name).read_bytes() == ours.read_bytes()  # the planted file was replaced by the real features
    again = fidelity_metrics(gen, Unreadable(len(xt)), cache_name="digits-test-16px", cache_root=cache)
    assert not marker.exists() and {k: again[k] for k in METRICS} == {k: got[k] for k in METRICS}


@pytest.mark.parametrize("spoil", ["garbage", "truncated", "other-key", "nan", "wrong-rows", "wrong-layer"])
def test_unusable_cache_file_is_recomputed_with_one_warning(digits, tmp_path, capsys, spoil):
    gen, xt, want = digits
    kw = dict(cache_name="digits-test-16px", cache_root=tmp_path)
    fidelity_metrics(gen, xt, **kw)
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f: meta, feats = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    if spoil == "garbage": path.write_bytes(b"\x80\x04not safetensors at all")
    elif spoil == "truncated": path.write_bytes(good[: len(good) // 2])
    elif spoil == "other-key": save_file(feats, path, metadata={"key": json.dumps({**json.loads(meta["key"]), "n_ref": 7})})
    elif spoil == "nan": save_file({k: v.clone().fill_(float("nan")) for k, v in feats.items()}, path, metadata=meta)
    elif spoil == "wrong-rows": save_file({k: v[:10].clone() for k, v in feats.items()}, path, metadata=meta)
    elif spoil == "wrong-layer": save_file({"logits": v for v in feats.values()}, path, metadata=meta)
    capsys.readouterr()
    got = fidelity_metrics(gen, xt, **kw)
    err = capsys.readouterr().err.strip().splitlines()
    assert close(got, want) and path.read_bytes() == good
    assert len(err) == 1 and str(path) in err[0] and "recomputing" in err[0], err


def _metrics(out):
    return json.loads((Path(out) / "metrics.json").read_text())


def test_hw5_eval_runs_no_planted_payload(tiny_ckpt, tmp_path):
    "The real console script: planted under --cache, under the default $HW5_CACHE/fidelity and in torch-fidelity's own default."
    marker = tmp_path / "PWNED"
    env = {"TORCH_HOME": str(tmp_path / "torch-home")}
    args = ["hw5-eval", "--ckpt", tiny_ckpt, "--n", "30", "--steps", "10", "--batch-size", "16", "--no-pngs"]
    run(args + ["--cache", tmp_path / "clean", "--out", tmp_path / "clean-out"], env=env)
    want = _metrics(tmp_path / "clean-out")
    written = [p.name for p in (tmp_path / "clean").iterdir()]
    assert len(written) == 1 and written[0].endswith(".safetensors"), written
    cache_name = reference_dataset("digits", 16)[1]
    names = written + torch_fidelity_names(cache_name)
    for folder in (tmp_path / "planted", tmp_path / "home" / "fidelity", tmp_path / "torch-home" / "fidelity_cache"):
        for name in names: plant(folder / name, marker)
    p1 = run(args + ["--cache", tmp_path / "planted", "--out", tmp_path / "o1"], env=env)
    p2 = run(args + ["--out", tmp_path / "o2"], env={**env, "HW5_CACHE": str(tmp_path / "home")})
    assert not marker.exists()
    for p, folder, out in ((p1, "planted", "o1"), (p2, "home/fidelity", "o2")):
        assert "Traceback" not in p.stderr and f"cache file {tmp_path / folder / written[0]} is unusable" in p.stderr, p.stderr
        got = _metrics(tmp_path / out)
        assert {k: got[k] for k in METRICS} == {k: want[k] for k in METRICS}
    # the planted file was replaced by real features: a third run reads it, warns about nothing, gives the same numbers
    p3 = run(args + ["--cache", tmp_path / "planted", "--out", tmp_path / "o3"], env=env)
    assert "unusable" not in p3.stderr and not marker.exists()
    assert {k: _metrics(tmp_path / "o3")[k] for k in METRICS} == {k: want[k] for k in METRICS}

"""Run every chapter notebook top to bottom through a Jupyter kernel, as Run All in JupyterLab does: every cell,
including those nbdev_test skips (`#| eval: false`, `#| cuda`, `#| slow`), which must then run or say why they skip.
`IN_TEST=1` (the small configuration) unless `--full`. Afterwards the working tree must be as it was: no cell may
write into the package or the repository. Usage: python tests/run_notebooks.py [--full] [--workers N] [NOTEBOOK ...]"""
import argparse, os, subprocess, sys, tempfile, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True).stdout


def run_one(path: str, full: bool, timeout: int) -> tuple:
    "(notebook, seconds, error or None): one notebook in a fresh kernel, started in nbs/."
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if full: os.environ.pop("IN_TEST", None)
    else:  # a test run: caches of its own, never the user's ~/.cache/hw5_diffusion
        os.environ["IN_TEST"] = "1"
        os.environ.setdefault("HW5_CACHE", os.path.join(tempfile.gettempdir(), f"hw5-nb-cache-{os.getuid()}"))
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        err = None
    except Exception as e:
        lines = [l for l in str(e).strip().splitlines() if l.strip()]
        err = (lines[-1] if lines else type(e).__name__)[:500]
    return Path(path).name, time.perf_counter() - t0, err


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--full", action="store_true", help="the real configuration (IN_TEST unset): minutes to hours on a CPU")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    a = p.parse_args(argv)
    nbs = a.notebooks or sorted(map(str, (ROOT / "nbs").glob("*.ipynb")))
    before = git_status()
    failed, t0 = [], time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        for fut in as_completed([ex.submit(run_one, nb, a.full, a.timeout) for nb in nbs]):
            name, secs, err = fut.result()
            print(f"{'FAILED' if err else 'ok':6} {name:28} {secs:7.1f} s" + (f"  {err}" if err else ""), flush=True)
            if err: failed.append(name)
    after = git_status()
    if after != before:
        changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
        print(f"FAILED the notebooks changed the working tree: {changed[:10]}")
        failed.append("clean working tree")
    print(f"run-all ({'full' if a.full else 'IN_TEST=1'}): {time.perf_counter() - t0:.0f} s wall")
    print(f"{len(nbs) + 1 - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

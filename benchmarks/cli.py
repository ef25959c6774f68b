"""How long a person waits for the command line: `--help` of every console script, and a 3-step `hw5-train` on a folder
of images with its end-of-run samples. Wall clock of real processes (median of 3 for `--help`), with the load average
beside it: on a shared machine only an idle run says what a user sees. Appends the table to benchmarks/RESULTS.md.

    python benchmarks/cli.py [--no-append]
"""
import argparse, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
from PIL import Image

BIN = Path(sys.executable).parent


def wall(cmd) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(c) for c in cmd], capture_output=True, check=True)
    return time.perf_counter() - t0


def image_folder(root: Path) -> Path:
    "Two classes of four random 40×40 RGB images: a stand-in for an ImageNet-style folder."
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(4): Image.fromarray((np.random.default_rng(i).random((40, 40, 3)) * 255).astype(np.uint8)).save(root / "train" / c / f"{i}.png")
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    rows = [(f"`{c} --help`", statistics.median(wall([BIN / c, "--help"]) for _ in range(3)))
            for c in ("hw5-train", "hw5-sample", "hw5-eval", "hw5-tables", "hw5-export", "hw5-grade", "hw5-release")]
    with tempfile.TemporaryDirectory() as d:
        data = image_folder(Path(d) / "data")
        cmd = ["hw5-train", "--data", data, "--resolution", "32", "--max-steps", "3", "--batch-size", "4", "--device", "cpu", "--out", Path(d) / "run"]
        rows.append(("`hw5-train --data FOLDER --resolution 32 --max-steps 3` (16 samples, DDIM-50, included)", wall([BIN / cmd[0], *cmd[1:]])))
    table = "\n".join(["| command | wall (s) |", "|---|---|", *(f"| {w} | {s:.2f} |" for w, s in rows),
                       "", f"Load average before: {load:.2f} on {os.cpu_count()} CPUs. Targets (issue 17): `--help` under 1 s; "
                       "a 3-step run on a folder under a minute, samples included."])
    print(table)
    if not a.no_append:
        sys.path.insert(0, str(Path(__file__).parent))
        from results import append_results
        append_results("Command-line waits", "cpu", "`python benchmarks/cli.py`; wall clock of each command as a new process.", table)


if __name__ == "__main__":
    main()

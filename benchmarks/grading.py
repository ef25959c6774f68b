"""Time `hw5-grade` on one full submission (the reference solution: every part passes, so every test runs to the end),
part by part, and append the table to benchmarks/RESULTS.md. Target: at most 10 minutes on a 2-core CPU.

    python benchmarks/grading.py            # grades nbs/ (the solution) in a fresh process
    python benchmarks/grading.py --submission release/ --no-append

The whole command runs in a child process (as a grader runs it): its wall clock and the CPU time of it and its
children (the nbdev build and the per-part processes) are measured; the per-part seconds come from the grader."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submission", default=str(ROOT / "nbs"))
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    code = ("import json, sys; from hw5_diffusion.autograder import grade_submission\n"
            "g = grade_submission(sys.argv[1], sys.argv[2]); print(json.dumps(g))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code, a.submission, out], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode: sys.exit(f"grading failed:\n{p.stderr}")
    g = json.loads(p.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sec = g["_seconds"]
    rows = ["| step | score | seconds (wall) |", "|---|---:|---:|", f"| build (copy + nbdev_export) | | {sec.get('build', 0):.1f} |"]
    rows += [f"| `{k}` | {v['score']:g} / {v['max']} | {sec[k]:.1f} |" for k, v in g["parts"].items()]
    rows += [f"| **whole command** | **{g['total']:g} / {g['max']}** | **{wall:.1f}** (CPU {cpu:.1f} s) |"]
    table = "\n".join(rows) + f"\n\nTarget: at most 10 minutes on a 2-core CPU — {'met' if wall <= 600 else 'MISSED'} ({wall:.0f} s)."
    print(table)
    if not a.no_append:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from results import append_results
        append_results("hw5-grade on one full submission", "cpu",
                       f"`python benchmarks/grading.py --submission {Path(a.submission).name}`; {os.cpu_count()} CPUs, load average "
                       f"{load:.2f} before; wall clock of the whole command and CPU (user + sys) of its processes; each part "
                       "in its own forked process, one at a time.", table)


if __name__ == "__main__":
    main()

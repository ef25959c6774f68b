"""Time `hw5-grade` on one full submission (the reference solution: every part passes, so every probe and check runs to
the end), part by part, and append the table to benchmarks/RESULTS.md. Target: at most 60 s on a 2-core CPU.

    python benchmarks/grading.py            # grades nbs/ (the solution) in a fresh process
    python benchmarks/grading.py --submission release/ --sandbox --no-append

The whole command runs in a child process (as a grader runs it): its wall clock and the CPU time of it and its
children (each part a fresh interpreter, two at a time) are measured; the per-part seconds (start of the part's
process to its score) come from the grader."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submission", default=str(ROOT / "nbs"))
    ap.add_argument("--sandbox", action="store_true", help="each part under bubblewrap")
    ap.add_argument("--no-append", action="store_true")
    a = ap.parse_args()
    code = ("import json, sys; from hw5_diffusion.grader import grade_submission\n"
            "g = grade_submission(sys.argv[1], sys.argv[2], sandbox=sys.argv[3] == '1'); print(json.dumps(g))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code, a.submission, out, "1" if a.sandbox else "0"], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode: sys.exit(f"grading failed:\n{p.stderr}")
    g = json.loads(p.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sec = g["_seconds"]
    rows = ["| part | score | seconds (wall, its process) |", "|---|---:|---:|"]
    rows += [f"| `{k}` | {v['score']:g} / {v['max']} | {sec[k]:.1f} |" for k, v in g["parts"].items()]
    rows += [f"| **whole command** | **{g['total']:g} / {g['max']}** | **{wall:.1f}** (CPU {cpu:.1f} s) |"]
    table = "\n".join(rows) + f"\n\nTarget: at most 60 s on a 2-core CPU — {'met' if wall <= 60 else 'MISSED'} ({wall:.0f} s)."
    print(table)
    if not a.no_append:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from results import append_results
        append_results("hw5-grade on one full submission", "cpu",
                       f"`python benchmarks/grading.py --submission {Path(a.submission).name}{' --sandbox' if a.sandbox else ''}`; {os.cpu_count()} CPUs, "
                       f"load average {load:.2f} before (the machine was shared with other work at the same time); wall clock of the whole "
                       "command and CPU (user + sys) of its processes; each part a fresh interpreter (python -I -S) on its own build, two at a time.", table)


if __name__ == "__main__":
    main()

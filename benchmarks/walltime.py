"""Wall time, CPU time and peak memory of one whole command (a main job such as `make tables` or `make demo`),
appended to benchmarks/RESULTS.md with the machine's load before the run.

    python benchmarks/walltime.py --title "make tables" -- hw5-tables --preset digits --out /tmp/t/results --work /tmp/t/runs

Give the command fresh output and work folders (and HW5_CACHE an empty folder) to time a first run, not one that
reuses earlier checkpoints. The command's own output passes through; a non-zero exit is reported and not recorded.
"""
import argparse, os, resource, shlex, subprocess, sys, time


def run_timed(cmd) -> dict:
    "Run `cmd`; its wall seconds, the CPU seconds (user + sys) and peak resident memory of it and its children."
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dict(rc=rc, wall=wall, cpu=cpu, peak_gib=after.ru_maxrss / 2**20, load=load)  # ru_maxrss is in KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--title", required=True, help="what is timed, for the RESULTS.md heading (e.g. 'make tables')")
    ap.add_argument("--target", default=None, help="the target in words, printed under the table (e.g. 'under 30 minutes on 2 cores')")
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd: ap.error("give the command to time after --")
    r = run_timed(cmd)
    if r["rc"] != 0: sys.exit(f"walltime: {shlex.join(cmd)} exited {r['rc']}; nothing recorded")
    table = "\n".join([
        "| command | wall | CPU (user + sys) | peak memory | load average before |", "|---|---|---|---|---|",
        f"| `{shlex.join(cmd)}` | {r['wall']:.0f} s ({int(r['wall'] // 60)} min {r['wall'] % 60:.0f} s) | {r['cpu']:.0f} s | "
        f"{r['peak_gib']:.2f} GiB | {r['load']:.2f} |"] + ([f"\nTarget: {a.target}."] if a.target else []))
    print(table)
    if not a.no_append:
        from results import append_results  # imported after the run: a parent holding torch would count in the child's peak memory
        append_results(f"{a.title} wall time", "cpu", f"`python benchmarks/walltime.py {shlex.join(sys.argv[1:])}`; "
                       f"{os.cpu_count()} CPUs; wall clock of the whole command, CPU and peak memory of its processes.", table)


if __name__ == "__main__":
    main()

"Shared by the benchmark scripts: append a table, headed by date, host, device and commit, to benchmarks/RESULTS.md."
import datetime, socket
from pathlib import Path
import torch
from hw5_diffusion.cli import git_commit, machine

RESULTS = Path(__file__).with_name("RESULTS.md")


def append_results(title:str, device, note:str, table:str, path:Path=RESULTS):
    "Append `table` under `## title — date — host (device) — commit`, after `note` (how it was measured)."
    head = (f"\n## {title} — {datetime.date.today()} — {socket.gethostname()} ({machine(device)}) — commit {git_commit()}\n\n"
            f"torch {torch.__version__}; {note}\n\n")
    if not path.exists(): path.write_text("# Benchmark results\n\nAppended by the scripts in benchmarks/.\n")
    with path.open("a") as f: f.write(head + table + "\n")


def timing_note(cpu_time:bool, device) -> str:
    "How a benchmark's times were taken, in words, for its RESULTS.md entry."
    if cpu_time: return "CPU time of this process (`time.process_time`) on 1 thread"
    return "wall-clock time" + (" after torch.cuda.synchronize()" if torch.device(device).type == "cuda" else " — noisy on a shared machine")

"""The console scripts' front door (chapter 15): a bare `--help` and `--version` answered without importing torch, the
same text the command's own parser prints, and every other call handed to the chapter's main."""
import configparser, functools, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT
from hw5_diffusion.launch import COMMANDS, HELP_FILE, HELP_COLUMNS, source_hash, live_help, stored_help

BIN = Path(sys.executable).parent
# without the tests' own HW5_CACHE (conftest): `--cache`'s help names the default folder, as a user's shell shows it
ENV = {**{k: v for k, v in os.environ.items() if k != "HW5_CACHE"}, "COLUMNS": str(HELP_COLUMNS)}


def py(code: str, cwd=None, **kw) -> subprocess.CompletedProcess:
    "`python -c code`; `python -c` puts its working folder first on sys.path, so `cwd` picks the package it imports."
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env={**ENV, **kw})


@functools.lru_cache
def user_help() -> dict:
    "Every command's `live_help` in a process without the tests' HW5_CACHE (this one imported the package with it)."
    p = py("import json\nfrom hw5_diffusion.launch import COMMANDS, live_help\nprint(json.dumps({c: live_help(c) for c in COMMANDS}))")
    return json.loads(p.stdout)


def test_every_console_script_goes_through_the_launcher():
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini")
    scripts = dict(l.split("=") for l in cfg["DEFAULT"]["console_scripts"].split())
    assert set(scripts) == set(COMMANDS)
    assert all(target.startswith("hw5_diffusion.launch:") for target in scripts.values()), scripts


def test_the_stored_help_is_current():
    "A parser or any module changed without `make cli-help`: --help would still be right, but slow."
    record = json.loads(HELP_FILE.read_text())
    assert record["source_hash"] == source_hash(HELP_FILE.parent), "hw5_diffusion/cli_help.json is stale: run make cli-help"
    assert record["help"] == user_help(), "hw5_diffusion/cli_help.json is stale: run make cli-help"


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_help_and_version_answer_without_torch(prog):
    "Through the installed console script: the parser's own help text, with worked examples; and in-process, no torch loaded."
    p = subprocess.run([BIN / prog, "--help"], capture_output=True, text=True, env=ENV)
    assert p.returncode == 0 and p.stdout == user_help()[prog] and "\nexamples:\n" in p.stdout, p.stderr
    v = subprocess.run([BIN / prog, "--version"], capture_output=True, text=True)
    assert (v.returncode, v.stdout) == (0, f"{prog} 0.1.0\n")
    p = py(f"import sys\nfrom hw5_diffusion.launch import launch\nlaunch({prog!r}, ['--help'])\n"
           "print([m for m in sys.modules if m == 'torch' or m.startswith('hw5_diffusion.')])")
    assert p.stdout.splitlines()[-1] == "['hw5_diffusion.launch']", p.stdout[-300:]


def test_other_calls_reach_the_command_and_its_errors():
    "An invalid option is the parser's one-line error (exit 2); --help beside other arguments is the parser's own help."
    p = subprocess.run([BIN / "hw5-train", "--out", "x", "--max-steps", "0"], capture_output=True, text=True, env=ENV)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [p.stderr.strip()] and "--max-steps" in p.stderr, p.stderr
    p = subprocess.run([BIN / "hw5-sample", "--n", "4", "--help"], capture_output=True, text=True, env=ENV)
    assert p.returncode == 0 and p.stdout == live_help("hw5-sample")


def test_stale_or_broken_help_falls_back_to_the_parser(tmp_path):
    "After any change to a module (or with an unreadable file) the stored text is ignored: the real parser answers."
    pkg = Path(shutil.copytree(HELP_FILE.parent, tmp_path / "hw5_diffusion", ignore=shutil.ignore_patterns("__pycache__")))
    assert stored_help("hw5-release", pkg / "cli_help.json") == live_help("hw5-release")
    cli = pkg / "cli.py"; cli.write_text(cli.read_text().replace('"examples:\\n"', '"EXAMPLES:\\n"'))
    assert stored_help("hw5-release", pkg / "cli_help.json") is None
    p = py("import sys\nfrom hw5_diffusion.launch import release\nrelease(['--help'])", cwd=tmp_path)
    assert "\nEXAMPLES:\n" in p.stdout, p.stderr[-500:]
    (pkg / "cli_help.json").write_text("{not json")
    assert stored_help("hw5-release", pkg / "cli_help.json") is None

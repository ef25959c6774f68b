"""The Makefile installs only into the environment it creates (.venv); one passed as VENV=... is checked, never changed."""
import subprocess, sys
from pathlib import Path
from conftest import ROOT


INSTALL = "pip install -q"  # the install recipe's command (the refusal's hint names pip too)


def make(*args):
    return subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=120)


def test_docs_with_someone_elses_env_never_installs(tmp_path):
    dry = make("-n", "docs", f"VENV={tmp_path / 'their-env'}")
    assert INSTALL not in dry.stdout and "-m venv" not in dry.stdout
    p = make("docs", f"VENV={tmp_path / 'their-env'}")
    assert p.returncode != 0 and "make does not install into an environment it did not create" in p.stdout
    assert not (tmp_path / "their-env").exists()


def test_docs_with_a_ready_env_builds_without_installing():
    env = Path(sys.executable).parent.parent
    dry = make("-n", "docs", f"VENV={env}/")   # the same environment, named as someone else would: checked, not installed into
    assert INSTALL not in dry.stdout and "-m venv" not in dry.stdout and "build.py" in dry.stdout


def test_docs_env_accepts_an_env_with_every_docs_tool():
    "The check imports what the build imports, as Sphinx does: the extension `sphinx-mathjax-offline` by that name."
    env = Path(sys.executable).parent.parent
    p = make("docs-env", f"VENV={env}/")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "lacks hw5_diffusion or its docs tools" not in p.stdout

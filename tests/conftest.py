import atexit, os, shutil, subprocess, sys, tempfile
from pathlib import Path
import pytest

# Tests never read or write the user's ~/.cache/hw5_diffusion: caches and data of their own, set before any test imports
# hw5_diffusion (which reads them at import) and inherited by every command a test starts.
_CACHE = tempfile.mkdtemp(prefix="hw5-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.update(HW5_CACHE=_CACHE, HW5_DATA=os.path.join(_CACHE, "data"))

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# the files that take minutes go first: two workers take whole files in collection order (`--dist loadfile`), so a long file
# collected last runs alone at the end (test_quality's demo-sized training did, for minutes, on one of the two cores)
LONG_FIRST = ("test_quality.py", "test_course.py", "test_nbgrader.py", "test_course_browser.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: LONG_FIRST.index(item.path.name) if item.path.name in LONG_FIRST else len(LONG_FIRST))


def run(cmd, check=True, timeout=1800, **kw):
    "Run a command (list) with the venv's scripts on PATH; returns the CompletedProcess."
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **kw.pop("env", {})}
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    "A checkpoint trained for 30 steps on the digits by the real `hw5-train`."
    out = tmp_path_factory.mktemp("ckpt") / "run"
    run(["hw5-train", "--data", "digits", "--out", out, "--max-steps", "30", "--batch-size", "32",
         "--sample-n", "4", "--sample-steps", "10"])
    return out


@pytest.fixture(scope="session")
def digits_ckpt(tmp_path_factory):
    "A digits DDPM trained once per session by the real `hw5-train`: 300 steps of 64 images (a quarter of the demo's work)."
    out = tmp_path_factory.mktemp("digits") / "run"
    run(["hw5-train", "--data", "digits", "--out", out, "--max-steps", "300", "--batch-size", "64", "--sample-n", "0"], timeout=3600)
    return out

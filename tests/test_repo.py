"The repository's own invariants: the library is what the notebooks export, and the notebooks are clean."
import filecmp, shutil
from pathlib import Path
from conftest import ROOT, BIN, run


def _copy_project(dst: Path):
    for name in ("settings.ini", "setup.py", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "nbs", dst / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_proc"))
    shutil.copytree(ROOT / "hw5_diffusion", dst / "hw5_diffusion", ignore=shutil.ignore_patterns("__pycache__"))


def _diff_tree(a: Path, b: Path, pattern: str):
    "Files matching `pattern` that differ, or exist on one side only."
    fa = {p.relative_to(a) for p in a.rglob(pattern) if "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}
    fb = {p.relative_to(b) for p in b.rglob(pattern) if "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}
    return sorted(str(p) for p in fa ^ fb) + sorted(str(p) for p in fa & fb if not filecmp.cmp(a / p, b / p, shallow=False))


def test_library_matches_notebooks(tmp_path):
    _copy_project(tmp_path)
    shutil.rmtree(tmp_path / "hw5_diffusion")
    run([BIN / "nbdev_export"], cwd=tmp_path)
    diff = _diff_tree(ROOT / "hw5_diffusion", tmp_path / "hw5_diffusion", "*.py")
    assert not diff, f"hw5_diffusion/ differs from what nbdev_export writes: {diff} (run nbdev_export and commit)"


def test_notebooks_are_clean(tmp_path):
    _copy_project(tmp_path)
    run([BIN / "nbdev_clean"], cwd=tmp_path)
    diff = _diff_tree(ROOT / "nbs", tmp_path / "nbs", "*.ipynb")
    assert not diff, f"notebooks not clean: {diff} (run nbdev_clean and commit)"

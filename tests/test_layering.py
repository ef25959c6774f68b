"""Chapter order is dependency order: a module imports only modules of earlier chapters, at the top of its file."""
import ast, re
import pytest
from conftest import ROOT


def chapters() -> dict:
    "module name -> chapter number, from each numbered notebook's `#| default_exp`."
    out = {}
    for nb in sorted((ROOT / "nbs").glob("[0-9][0-9]_*.ipynb")):
        m = re.search(r"#\|\s*default_exp\s+(\w+)", nb.read_text())
        if m: out[m.group(1)] = int(nb.name[:2])
    return out


def project_imports(tree: ast.Module):
    "(node, imported module, at the top of the file?) for every import of a package module."
    top = {id(n) for n in tree.body}
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level: mods = [n.module.split(".")[0]] if n.module else [a.name for a in n.names]
            elif n.module == "hw5_diffusion": mods = [a.name for a in n.names]
            elif n.module and n.module.startswith("hw5_diffusion."): mods = [n.module.split(".")[1]]
            else: continue
        elif isinstance(n, ast.Import): mods = [a.name.split(".")[1] for a in n.names if a.name.startswith("hw5_diffusion.")]
        else: continue
        for m in mods: yield n, m, id(n) in top


def test_every_package_module_has_a_chapter():
    mods = {p.stem for p in (ROOT / "hw5_diffusion").glob("*.py") if not p.stem.startswith("_")}
    assert mods <= set(chapters()), f"modules without a chapter notebook: {sorted(mods - set(chapters()))}"


@pytest.mark.parametrize("module", sorted(chapters()))
def test_module_imports_only_earlier_chapters_at_the_top(module):
    chap = chapters()
    tree = ast.parse((ROOT / "hw5_diffusion" / f"{module}.py").read_text())
    bad = [f"line {n.lineno}: {m} (chapter {chap[m]:02d}{', inside a function' if not top else ''})"
           for n, m, top in project_imports(tree) if m in chap and m != module and (chap[m] > chap[module] or not top)]
    assert not bad, f"{module} (chapter {chap[module]:02d}) imports against chapter order: {bad}"


def run_time_imports(tree: ast.Module) -> list:
    "Lines that import a package module by name at run time (`importlib.import_module`), where the AST shows no import."
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, (ast.Attribute, ast.Name))
            and getattr(n.func, "attr", getattr(n.func, "id", None)) == "import_module" and "hw5_diffusion" in ast.unparse(n)]


def test_only_the_launcher_and_the_grader_import_by_name():
    """The deliberate exceptions: `launch` (the last chapter) imports a command's chapter when the command runs, so that
    --help answers before torch loads; `grading` and `check` (hw5-check) import the *student's* modules, which they must
    not bind at import time."""
    users = {m for m in chapters() if run_time_imports(ast.parse((ROOT / "hw5_diffusion" / f"{m}.py").read_text()))}
    assert users == {"launch", "grading", "check"}, users
    assert max(chapters().values()) == chapters()["launch"]


def test_the_check_sees_a_violation(tmp_path):
    "The parser finds both kinds of violation in a module written to break them."
    tree = ast.parse("from .ddpm import x\ndef f():\n    from hw5_diffusion.cli import y\n    import hw5_diffusion.results\n")
    found = [(m, top) for _, m, top in project_imports(tree)]
    assert found == [("ddpm", True), ("cli", False), ("results", False)]
    assert run_time_imports(ast.parse("import importlib\ndef f(m):\n    return importlib.import_module(f'hw5_diffusion.{m}')\n")) == [3]

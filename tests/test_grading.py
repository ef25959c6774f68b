"""The grader grades: the solution scores 100, the untouched student edition 0 on every part, each seeded bug loses
points in exactly the part it breaks; the student edition leaks no solution line and builds into a package that imports.

Every grading runs `hw5-grade` in a fresh process (`python -c` on `grade_main`: a console script added to settings.ini
only exists after a reinstall), as a grader would; the mutants patch a copy of the package built once from the notebooks."""
import json, os, shutil, sys
from pathlib import Path
import pytest
from conftest import ROOT, run
from grading_mutants import MUTANTS, ISOLATION, apply

sys.path.insert(0, str(ROOT))
from hw5_diffusion.grading import PARTS, SOLUTION, chapter_notebooks, make_release, build_package, solution_lines, _regions

GRADE = [sys.executable, "-c", "from hw5_diffusion.grading import grade_main; grade_main()"]
ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
FULL = {p.name: p.points for p in PARTS}


def grade(*args, timeout=600):
    "grades.json's content for `hw5-grade ARGS --json`."
    p = run([*GRADE, *args, "--json"], env=ENV, timeout=timeout)
    return json.loads(p.stdout)


def scores(g): return {k: v["score"] for k, v in g["parts"].items()}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(ROOT, tmp_path_factory.mktemp("rel") / "release")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    "The package nbdev exports from the solution notebooks, built the way the grader builds a submission."
    return build_package(ROOT / "nbs", tmp_path_factory.mktemp("built") / "pkg", ROOT)


def _nb_sources(nbs):
    out = {}
    for p in sorted(Path(nbs).glob("*.ipynb")):
        nb = json.loads(p.read_text())
        out[p.name] = ["".join(c["source"]) for c in nb["cells"]]
    return out


def test_every_part_has_a_marked_solution_and_the_rubric_adds_up():
    assert sum(FULL.values()) == 100
    chapters = {p.name for p in chapter_notebooks(ROOT / "nbs")}
    srcs = "\n".join(s for name, nb in _nb_sources(ROOT / "nbs").items() if name in chapters for s in nb)
    assert srcs.count(SOLUTION[0]) == srcs.count(SOLUTION[1]) >= 15


def test_release_leaks_no_solution_line(release):
    "No stripped, non-trivial line of a solution region appears anywhere in the release."
    chapters = {p.name for p in chapter_notebooks(ROOT / "nbs")}
    src = {k: v for k, v in _nb_sources(ROOT / "nbs").items() if k in chapters}
    sol, outside = set(), set()
    for cells in src.values():
        for s in cells:
            sol |= {l.strip() for l in solution_lines(s)}
            lines, inside = s.split("\n"), set()
            for a, b in _regions(lines, *SOLUTION): inside |= set(range(a, b + 1))
            outside |= {l.strip() for i, l in enumerate(lines) if i not in inside}
    sol = {l for l in sol if len(l) > 12 and not l.startswith("#")}
    # a line the course also shows outside any solution region (in another chapter) is public: there are very few
    shared = sol & outside
    assert len(shared) <= 3, f"solution lines also written outside solution regions: {sorted(shared)}"
    text = []
    for p in release.rglob("*"):
        if not p.is_file() or p.suffix in (".png", ".safetensors", ".jpg"): continue
        t = p.read_text(encoding="utf-8")
        if p.suffix == ".ipynb":
            nb = json.loads(t)
            t = "\n".join("".join(c["source"]) for c in nb["cells"]) + json.dumps([c.get("outputs", []) for c in nb["cells"]])
        text.append(t)
    text = "\n".join(text)
    release_lines = {l.strip() for l in text.split("\n")}
    leaked = sorted((sol - shared) & release_lines)
    assert not leaked, f"solution lines in the release: {leaked}"
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    assert {p.name for p in (release / "nbs").glob("*.ipynb")} == {p.name for p in chapter_notebooks(ROOT / "nbs")}


def test_release_builds_a_package_that_imports(release, tmp_path):
    rel = tmp_path / "release"
    shutil.copytree(release, rel)
    run([sys.executable, "-c", "from nbdev.doclinks import nbdev_export; nbdev_export()"], cwd=rel)
    mods = sorted(p.stem for p in (rel / "hw5_diffusion").glob("[!_]*.py"))
    assert "grading" not in mods and {"forward", "ddpm", "ddim", "latent", "cfg", "advanced"} <= set(mods)
    code = ("import importlib, hw5_diffusion as h; assert h.__file__.startswith(%r), h.__file__\n"
            "for m in %r: importlib.import_module('hw5_diffusion.' + m)\n"
            "from hw5_diffusion.forward import NoiseSchedule\n"
            "try: NoiseSchedule(10).q_sample(*[__import__('torch').zeros(1)] * 3)\nexcept NotImplementedError: print('stub')") % (str(rel), mods)
    p = run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(rel)})
    assert p.stdout.strip() == "stub"


def test_reference_solution_scores_100(tmp_path):
    g = grade(str(ROOT / "nbs"), "--out", tmp_path)
    assert g["total"] == 100 and g["max"] == 100, {k: v for k, v in g["parts"].items() if v["failed"]}
    assert json.loads((tmp_path / "grades.json").read_text()) == g
    assert "100 / 100" in (tmp_path / "feedback.md").read_text()


def test_untouched_release_scores_0_on_every_part(release, tmp_path):
    g = grade(str(release), "--out", tmp_path)
    assert scores(g) == {k: 0 for k in FULL}, scores(g)
    assert all(v["failed"] for v in g["parts"].values())
    assert "not implemented" in (tmp_path / "feedback.md").read_text()


def _mutant_pkg(built, tmp_path, m):
    pkg = tmp_path / "pkg"
    shutil.copytree(built, pkg, ignore=shutil.ignore_patterns("__pycache__", "nbs"))
    apply(pkg, m)
    return pkg


@pytest.mark.parametrize("m", MUTANTS, ids=[m.name for m in MUTANTS])
def test_seeded_bug_costs_exactly_its_part(m, built, tmp_path):
    g = grade("--package", _mutant_pkg(built, tmp_path, m))
    lost = {k: FULL[k] - s for k, s in scores(g).items() if s < FULL[k]}
    assert list(lost) == [m.part], f"{m.name}: lost {lost}, expected points lost in {m.part} only"


@pytest.mark.parametrize("m", ISOLATION, ids=[m.name for m in ISOLATION])
def test_a_failing_part_scores_0_and_grading_goes_on(m, built, tmp_path):
    g = grade("--package", _mutant_pkg(built, tmp_path, m), "--timeout", "20")
    assert scores(g) == {**FULL, m.part: 0}, scores(g)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args in ([str(tmp_path / "missing")], [str(tmp_path)]):
        p = run([*GRADE, *args], check=False, env=ENV)
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, (p.returncode, p.stderr)
        assert p.stderr.startswith("hw5-grade: ")


def test_docs_parts_table_is_the_rubric():
    "The parts table on the grading page (a Markdown cell: the docs show no code output that is not stored) is PARTS."
    from hw5_diffusion.grading import parts_table
    nb = json.loads((ROOT / "nbs" / "14_grading.ipynb").read_text())
    assert any(parts_table() in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")

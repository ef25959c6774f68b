"""The grader grades: the solution scores 100, the untouched student edition 0 on every part, each seeded bug loses
points in its own part and nowhere else, each correct solution written otherwise (float32 included) scores full marks,
a broken notebook or region costs only the parts in it; the student edition leaks no solution line.

Every grading runs `hw5-grade` in a fresh process (`python -c` on `grade_main`), as a grader would, on a copy of the
solution notebooks with patches from `grading_mutants.py`. Cheats are in `test_grading_cheats.py`."""
import json, os, shutil, sys
from pathlib import Path
import pytest
from conftest import ROOT, run
from grading_mutants import MUTANTS, MUTANTS_2, CORRECT, Mutant, patch

sys.path.insert(0, str(ROOT))
from hw5_diffusion.grading import PARTS, SOLUTION, chapter_notebooks, solution_lines, _regions, part_build, submission_notebooks, course_regions
from hw5_diffusion.release import make_release

GRADE = [sys.executable, "-c", "from hw5_diffusion.grader import grade_main; grade_main()"]
ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
FULL = {p.name: p.points for p in PARTS}


def grade(*args, timeout=900):
    "grades.json's content for `hw5-grade ARGS --json`."
    p = run([*GRADE, *map(str, args), "--json"], env=ENV, timeout=timeout)
    return json.loads(p.stdout)


def scores(g): return {k: v["score"] for k, v in g["parts"].items()}


def submission(tmp: Path, *mutants) -> Path:
    "A copy of the solution's chapter notebooks in `tmp/nbs` with `mutants` applied."
    nbs = tmp / "nbs"; nbs.mkdir(parents=True)
    for p in chapter_notebooks(ROOT / "nbs"): shutil.copy(p, nbs / p.name)
    for m in mutants: patch(nbs, m)
    return tmp


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(ROOT, tmp_path_factory.mktemp("rel") / "release")


def _nb_sources(nbs):
    return {p.name: ["".join(c["source"]) for c in json.loads(p.read_text())["cells"]] for p in sorted(Path(nbs).glob("*.ipynb"))}


def test_every_part_has_its_regions_and_the_rubric_adds_up():
    assert sum(FULL.values()) == 100
    found = course_regions()
    for p in PARTS:
        for q in p.regions: assert (p.chapter, q, 0) in found, f"{p.name}: no solution region in {q} of {p.chapter}"
    assert {k[:2] for k in found} == {(p.chapter, q) for p in PARTS for q in p.regions}, "a solution region that no part grades"


def test_release_leaks_no_solution_line(release):
    "No stripped, non-trivial line of a solution region appears anywhere in the release; the markers stay, the stub between them."
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
    shared = sol & outside   # a line the course also shows outside any solution region is public: there are very few
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
    leaked = sorted((sol - shared) & {l.strip() for l in text.split("\n")})
    assert not leaked, f"solution lines in the release: {leaked}"
    assert "BEGIN HIDDEN TESTS" not in text and text.count(SOLUTION[0]) == text.count(SOLUTION[1]) >= 22
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


def test_release_refuses_a_folder_of_other_work(tmp_path):
    "hw5-release --out replaces an earlier release or an empty folder, and refuses (exit 2, nothing deleted) anything else."
    rel = [sys.executable, "-c", "from hw5_diffusion.release import release_main; release_main()"]
    (tmp_path / "d").mkdir(); (tmp_path / "d" / "thesis.tex").write_text("x")
    (tmp_path / "f").write_text("y")
    for out in ("d", "f"):
        p = run([*rel, "--out", tmp_path / out], check=False, env=ENV)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "refusing" in p.stderr, p.stderr
    assert (tmp_path / "d" / "thesis.tex").read_text() == "x" and (tmp_path / "f").read_text() == "y"
    (tmp_path / "empty").mkdir()
    for _ in range(2): run([*rel, "--out", tmp_path / "empty"], env=ENV)   # empty, then an earlier release
    assert (tmp_path / "empty" / ".hw5-release").is_file() and (tmp_path / "empty" / "nbs" / "01_forward.ipynb").is_file()


def test_reference_solution_scores_100(tmp_path):
    g = grade(ROOT / "nbs", "--out", tmp_path)
    assert g["total"] == 100 and g["max"] == 100, {k: v for k, v in g["parts"].items() if v["failed"]}
    assert json.loads((tmp_path / "grades.json").read_text()) == g
    assert "100 / 100" in (tmp_path / "feedback.md").read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_untouched_release_scores_0_on_every_part(release, tmp_path):
    g = grade(release, "--out", tmp_path)
    assert scores(g) == {k: 0 for k in FULL}, scores(g)
    assert all(v["failed"] for v in g["parts"].values())
    assert "not implemented" in (tmp_path / "feedback.md").read_text()


def test_each_seeded_bug_loses_points(tmp_path):
    "One realistic bug in every part at once: every part loses points."
    g = grade(submission(tmp_path, *MUTANTS))
    assert all(s < FULL[k] for k, s in scores(g).items()), scores(g)


def test_bugs_the_old_tests_missed_cost_exactly_their_parts(tmp_path):
    "Labels ignored by the loss, lerp on step's float bounds, `learned` treated as fixed, DDIM's ε̂ ignoring prediction_type: each costs its part only."
    g = grade(submission(tmp_path, *MUTANTS_2))
    lost = {k for k, s in scores(g).items() if s < FULL[k]}
    assert lost == {m.part for m in MUTANTS_2}, scores(g)
    fb = (tmp_path / "feedback.md").read_text()
    assert "raises TypeError at line 2 of your code in `model_log_variance` (03_ddpm.ipynb)" in fb, fb
    assert "`loss_passes_the_labels`: raises AttributeError at line 2 of your code in `ddpm_loss`" in fb and "ddim_sample_prediction_unclipped" in fb and "ddpm_step_learned" in fb


def test_correct_solutions_written_otherwise_score_full_marks(tmp_path):
    "float32 cosine schedule, the posterior in ε form from float32 buffers, other spellings: full marks."
    parts = sorted({m.part for m in CORRECT})
    g = grade(submission(tmp_path, *CORRECT), "--parts", *parts)
    assert scores(g) == {k: FULL[k] for k in parts}, {k: v["failed"] for k, v in g["parts"].items()}


BROKEN = [
    Mutant("a syntax error in q_sample's region", "01_forward",
           "return extract(self.sqrt_alpha_bar, t, x0.shape) * x0 + extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * noise",
           "return extract(self.sqrt_alpha_bar, t, x0.shape) * x0 +", "ddpm.q_sample"),
    Mutant("a stray line that fails at import, outside any region", "02_unet",
           "#| export\nimport math", "#| export\nthis_name_is_not_defined\nimport math", None),
    Mutant("the markers of ResBlock.forward's region deleted", "02_unet",
           "        ### BEGIN SOLUTION\n        h = F.silu(self.norm1(x))", "        h = F.silu(self.norm1(x))", "ddpm.resblock"),
]


def test_a_broken_region_or_notebook_costs_only_its_part(tmp_path):
    sub = submission(tmp_path, *BROKEN)
    (sub / "nbs" / "00_data.ipynb").write_text("{ not json")           # a notebook with no graded part
    (sub / "nbs" / "09_cfg.ipynb").write_text("{ not json")            # a notebook with one
    parts = ["ddpm.q_sample", "ddpm.q_posterior", "advanced.cosine_schedule", "ddpm.timestep_embedding", "ddpm.resblock", "cfg.guidance", "cfg.label_dropout"]
    g = grade(sub, "--parts", *parts)
    assert scores(g) == {**{k: FULL[k] for k in parts}, "ddpm.q_sample": 0, "ddpm.resblock": 0, "cfg.guidance": 0}, scores(g)
    fb = (sub / "feedback.md").read_text()
    assert "01_forward.ipynb: SyntaxError at line 1 of your code in `NoiseSchedule.q_sample`" in fb, fb
    assert "09_cfg.ipynb is not a readable notebook" in fb and "no `### BEGIN SOLUTION` ... `### END SOLUTION` region in `ResBlock.forward`" in fb


def test_each_part_is_built_with_only_its_own_regions_from_the_student(tmp_path):
    "The student's text of part P appears in P's build and in no other part's build."
    sub = submission(tmp_path / "s", *MUTANTS)
    nbs = submission_notebooks(sub)
    builds = {p.name: part_build(p.name, nbs, tmp_path / p.name) for p in PARTS}
    course = course_regions()
    for p in PARTS:
        pkg = builds[p.name].path / "hw5_diffusion"
        changed = {f.name for f in pkg.glob("*.py") if f.read_text() != (ROOT / "hw5_diffusion" / f.name).read_text()}
        assert changed == {course[(p.chapter, q, 0)][0] for q in p.regions}, (p.name, changed)
    assert all(b.error is None for b in builds.values())
    assert not list((tmp_path / "ddpm.q_sample" / "hw5_diffusion").glob("grading*.py"))   # the checks never reach a part


@pytest.mark.parametrize("timeout", ["nan", "-1", "0", "inf", "x"])
def test_a_bad_timeout_is_one_line_and_exit_2(timeout, tmp_path):
    p = run([*GRADE, str(ROOT / "nbs"), "--timeout", timeout, "--out", tmp_path], check=False, env=ENV)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1 and "--timeout" in p.stderr, p.stderr
    assert not list(tmp_path.iterdir())


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args in ([str(tmp_path / "missing")], [str(tmp_path)]):
        p = run([*GRADE, *args], check=False, env=ENV)
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, (p.returncode, p.stderr)
        assert p.stderr.startswith("hw5-grade: ")


def test_sandbox_without_bwrap_is_one_line_and_exit_2(tmp_path):
    p = run([*GRADE, str(ROOT / "nbs"), "--sandbox", "--out", tmp_path], check=False, env={**ENV, "PATH": str(tmp_path)})
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "bwrap" in p.stderr, p.stderr
    assert not list(tmp_path.iterdir())


def test_help_says_what_code_of_the_student_runs():
    p = run([*GRADE, "--help"], env=ENV)
    text = " ".join(p.stdout.split())
    assert "only the student's solution regions" in text and "module-level code" in text and "Code outside the regions is never run" in text
    readme = " ".join(make_release.__globals__["STUDENT_README"].replace("*", "").split())
    assert "the grader takes only the lines between them" in readme and "is not graded and not run by the grader" in readme


def test_docs_parts_table_is_the_rubric():
    "The parts table on the grading page (a Markdown cell: the docs show no code output that is not stored) is PARTS."
    from hw5_diffusion.grading import parts_table
    nb = json.loads((ROOT / "nbs" / "14_grading.ipynb").read_text())
    assert any(parts_table() in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")

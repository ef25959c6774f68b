"""The nbgrader route of the grading chapter, followed as documented with the real nbgrader 0.9.6: the course folder
and nbgrader_config.py are taken from the chapter's text, then generate_assignment, autograde (IN_TEST=1, 01_forward
only, to keep this under a minute) and generate_feedback really run."""
import json, re, shutil
from pathlib import Path
import pytest
from conftest import ROOT, run
from hw5_diffusion.grading import chapter_notebooks
from hw5_diffusion.course import PARTS
from nbgrader import api            # a test dependency (dev_requirements in settings.ini): nbgrader==0.9.6
CHAPTER = "01_forward"


def documented_config() -> str:
    "The nbgrader_config.py block of the grading chapter's nbgrader route."
    text = "".join("".join(c["source"]) for c in json.loads((ROOT / "nbs" / "14_grading.ipynb").read_text())["cells"]
                   if c["cell_type"] == "markdown")
    return re.search(r"```python\n(# nbgrader_config\.py\n.*?)```", text, re.S).group(1)


def nbgrader(course: Path, *args, env=None):
    p = run(["nbgrader", *args], cwd=course, check=False, timeout=900, env=env or {})
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout + p.stderr


def sources(p: Path) -> list:
    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(p.read_text())["cells"]]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    "The documented course folder: nbgrader_config.py, source/hw5/ holding the student edition's chapters, released."
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    (course / "source" / "hw5").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(documented_config())
    for p in chapter_notebooks(ROOT / "nbs"): shutil.copy(p, course / "source" / "hw5" / p.name)
    log = nbgrader(course, "generate_assignment", "hw5")
    return course, log


def test_generate_assignment_writes_the_student_edition(course, tmp_path):
    "The same notebooks as hw5-release, cell for cell; no solution code, no package; the config is recognised."
    course, log = course
    assert "WARNING" not in log and "not recognized" not in log, log
    released = course / "release" / "hw5"
    assert sorted(p.name for p in released.rglob("*") if p.is_file()) == [p.name for p in chapter_notebooks(ROOT / "nbs")]
    run(["hw5-release", "--out", tmp_path / "release"])
    mine = tmp_path / "release" / "nbs"
    for p in sorted(released.glob("*.ipynb")):
        assert sources(p) == sources(mine / p.name), p.name
        for _, src in sources(p):
            assert "HIDDEN TESTS" not in src
            for body in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", src, re.S):
                assert [l.strip() for l in body.strip().split("\n")] == ["# YOUR CODE HERE", "raise NotImplementedError()"], (p.name, body)


@pytest.fixture(scope="module")
def autograded(course, tmp_path_factory):
    "alice hands in the course's own 01_forward, bob the released one untouched; autograded with IN_TEST=1."
    course, _ = course
    for student, src in (("alice", "source"), ("bob", "release")):
        (course / "submitted" / student / "hw5").mkdir(parents=True)
        shutil.copy(course / src / "hw5" / f"{CHAPTER}.ipynb", course / "submitted" / student / "hw5")
    env = {"IN_TEST": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HW5_CACHE": str(tmp_path_factory.mktemp("cache"))}
    log = nbgrader(course, "autograde", "hw5", env=env)
    return course, log


def scores(course: Path, student: str) -> dict:
    with api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(CHAPTER, "hw5", student)
        return {g.name: (g.score, g.max_score) for g in nb.grades}


def test_autograde_gives_the_reference_full_marks_and_the_release_zero(autograded):
    course, log = autograded
    warnings = [l for l in log.splitlines() if "WARNING" in l and "Kernel is running over TCP" not in l]
    # what the chapter says nbgrader 0.9.6 logs: the chapters not handed in, the checksums of cells with hidden tests
    assert all("No submitted file" in l or ("checksum" in l and "has changed" in l) for l in warnings), warnings
    points = {p.name.replace(".", "_"): float(p.points) for p in PARTS if p.chapter == CHAPTER}
    assert scores(course, "alice") == {g: (pts, pts) for g, pts in points.items()}, log
    assert scores(course, "bob") == {g: (0.0, pts) for g, pts in points.items()}, log
    for student in ("alice", "bob"):               # every cell ran: nothing stopped the notebook, no timeout
        cells = json.loads((course / "autograded" / student / "hw5" / f"{CHAPTER}.ipynb").read_text())["cells"]
        assert all(c["execution_count"] for c in cells if c["cell_type"] == "code"), student


def test_generate_feedback_writes_html_per_notebook(autograded):
    course, _ = autograded
    nbgrader(course, "generate_feedback", "hw5")
    alice = (course / "feedback" / "alice" / "hw5" / f"{CHAPTER}.html").read_text()
    bob = (course / "feedback" / "bob" / "hw5" / f"{CHAPTER}.html").read_text()
    total = float(sum(p.points for p in PARTS if p.chapter == CHAPTER))        # 17: q_sample, q_posterior, cosine
    assert f"Score: {total} / {total}" in alice and f"Score: 0.0 / {total}" in bob

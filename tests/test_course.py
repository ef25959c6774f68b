"""The student's week with nothing written yet: the release's chapters run to their last cell through a kernel (Run All
goes on past unwritten parts), `hw5-check` reports every part in one table, and grade ids are unique across the course."""
import json, os, re, shutil, sys
from pathlib import Path
import nbformat
import pytest
from nbclient import NotebookClient
from conftest import ROOT, BIN, run
from hw5_diffusion.course import PARTS, PART

STUBBED = ["01_forward", "02_unet", "03_ddpm", "04_ddim", "05_checkpoints", "06_training", "07_evaluation", "08_latent",
           "09_cfg", "10_advanced"]


def notebooks(nbs: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(nbs.glob("[0-9][0-9]_*.ipynb"))}


def nbgrader_cells(nb: dict):
    return [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader")]


def test_grade_ids_are_unique_across_the_course():
    "nbgrader's generate_assignment rejects a course whose cells share a grade id."
    ids = [c["metadata"]["nbgrader"]["grade_id"] for nb in notebooks(ROOT / "nbs").values() for c in nbgrader_cells(nb)]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    assert not dup, f"grade ids used twice: {dup}"


def test_every_part_has_one_graded_cell_that_reports_through_check():
    "Each part: one graded cell, in its chapter, worth its points, its checks inside `with check(part)`."
    found = {}
    for name, nb in notebooks(ROOT / "nbs").items():
        for c in nbgrader_cells(nb):
            m = c["metadata"]["nbgrader"]
            if not m.get("grade") or m.get("solution"): continue
            part = re.search(r'with check\("([\w.]+)"\):', "".join(c["source"])).group(1)
            assert part not in found, f"{part} has two graded cells"
            found[part] = (name, m["points"])
    assert found == {p.name: (p.chapter, p.points) for p in PARTS}


def test_core_parts_come_before_advanced_ones_in_each_chapter():
    "Within a chapter, an advanced part's graded cell comes after every core part's."
    for name, nb in notebooks(ROOT / "nbs").items():
        order = [re.search(r'with check\("([\w.]+)"\)', "".join(c["source"])).group(1) for c in nbgrader_cells(nb)
                 if c["metadata"]["nbgrader"].get("grade") and not c["metadata"]["nbgrader"].get("solution")]
        cats = [PART[p].category == "advanced" for p in order]
        assert cats == sorted(cats), f"{name}: {order}"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    "The student edition, its package exported by nbdev there, as a student's `nbdev_export` builds it."
    out = tmp_path_factory.mktemp("course") / "release"
    run(["hw5-release", "--out", out])
    run([BIN / "nbdev_export"], cwd=out)
    assert "raise NotImplementedError()" in (out / "hw5_diffusion" / "forward.py").read_text()
    return out


def student_env(release: Path, tmp_path: Path) -> dict:
    "The student's package first on the path, the chapters' small sizes, a cache of the test's own."
    return {"PYTHONPATH": str(release), "IN_TEST": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "HW5_CACHE": str(tmp_path / "cache")}


def test_nothing_written_runs_every_chapter_to_its_last_cell(release, tmp_path, monkeypatch):
    """Run All, as JupyterLab runs it (stop at the first error), on each chapter that needs a part: every code cell
    runs, and the cells that need an unwritten part say so in one line."""
    for k, v in student_env(release, tmp_path).items(): monkeypatch.setenv(k, v)
    report = {}
    for name in STUBBED:
        path = release / "nbs" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        code = [c for c in nb.cells if c.cell_type == "code"]
        ran = sum(c.get("execution_count") is not None for c in code)
        text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
        report[name] = (ran, len(code), text.count("is not written yet: this cell needs it; skipped"), text.count("✗ part "))
    print(report)
    assert all(ran == n for ran, n, _, _ in report.values()), report
    graded = {p.chapter for p in PARTS}
    assert all((skips > 0) == (name in graded or name == "10_advanced") for name, (_, _, skips, _) in report.items()), report
    assert {name: fails for name, (_, _, _, fails) in report.items() if fails} == \
        {ch: sum(p.chapter == ch for p in PARTS) for ch in graded}, report


def hw5_check(release: Path, tmp_path: Path, *args):
    return run(["hw5-check", *args], check=False, cwd=release, env=student_env(release, tmp_path))


def test_hw5_check_with_nothing_written(release, tmp_path):
    "Every part listed as not written, in one table, no traceback, exit status 1."
    p = hw5_check(release, tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert [l.split()[0] for l in lines] == ["part", *PART, "total"]
    for part in PARTS:
        row = next(l for l in lines if l.startswith(part.name + " "))
        assert row.split()[1:3] == [str(part.points), "no"] and "not written yet" in row, row
    assert lines[-1].split()[1] == "0/100"


def solve_chapter(release: Path, mine: Path, chapter: str) -> Path:
    "A copy of the release in which the student wrote `chapter`'s parts (the reference's solution cells), exported."
    shutil.copytree(release, mine, ignore=shutil.ignore_patterns("__pycache__"))
    ref = {c["id"]: c for c in json.loads((ROOT / "nbs" / f"{chapter}.ipynb").read_text())["cells"]}
    nb = json.loads((mine / "nbs" / f"{chapter}.ipynb").read_text())
    nb["cells"] = [ref[c["id"]] if c.get("metadata", {}).get("nbgrader", {}).get("solution") else c for c in nb["cells"]]
    (mine / "nbs" / f"{chapter}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    run([BIN / "nbdev_export"], cwd=mine)
    return mine


def test_hw5_check_after_solving_chapter_01(release, tmp_path):
    "A student who wrote 01_forward's parts (the reference's cells, put into their notebook) sees those three pass."
    mine = solve_chapter(release, tmp_path / "student", "01_forward")
    p = hw5_check(mine, tmp_path, "01", "ddpm.loss")
    rows = {l.split()[0]: l for l in p.stdout.splitlines()}
    assert p.returncode == 1
    assert [rows[n].split()[2] for n in ("ddpm.q_sample", "ddpm.q_posterior", "advanced.cosine_schedule", "ddpm.loss")] == ["yes"] * 3 + ["no"]
    assert rows["total"].split()[1] == "17/21"


def test_hw5_check_with_the_reference_solutions(tmp_path):
    "This repository's own package: every part passes, exit status 0."
    p = run(["hw5-check"], check=False, cwd=ROOT, env={"OMP_NUM_THREADS": "1", "HW5_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stdout + p.stderr
    assert not p.stdout.startswith("note:"), p.stdout          # the package is exported from these notebooks
    rows = {l.split()[0]: l.split() for l in p.stdout.splitlines()}
    assert all(rows[part.name][2] == "yes" for part in PARTS), p.stdout
    assert rows["total"][1] == "100/100"


def test_hw5_check_bad_part_is_one_line_and_exit_2(tmp_path):
    p = run(["hw5-check", "ddpm.qsample"], check=False, cwd=ROOT)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert "no part or chapter 'ddpm.qsample'" in p.stderr


def test_a_real_error_still_stops_run_all(tmp_path):
    "In a kernel, a cell that needs an unwritten part skips, and a later real error keeps its traceback and stops Run All."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in [
        "from hw5_diffusion.course import skip_unwritten, check\nskip_unwritten(get_ipython())",
        "def guide(c, u, s):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
        "eps = guide(1, 0, 2)", "print(eps)",
        "try: guide(1, 0, 2)\nexcept Exception: get_ipython().showtraceback()   # as a widget's callback (interact) shows its error",
        "with check('cfg.guidance'):\n    assert guide(1, 0, 2) == 2",
        "def mine():\n    return {}['missing']\nmine()", "print('not reached')"]])
    with pytest.raises(Exception) as e:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = [[o for o in c.outputs] for c in nb.cells]
    assert out[2][0]["text"] == out[3][0]["text"] == out[4][0]["text"] == "part cfg.guidance (5 points) is not written yet: this cell needs it; skipped\n"
    assert len(out[4]) == 1
    assert (out[5][0]["name"], out[5][0]["text"]) == ("stderr", "✗ part cfg.guidance (5 points): not written yet\n")
    assert out[6][0]["ename"] == "KeyError" and any("line 3" in l for l in out[6][0]["traceback"])
    assert out[7] == [] and "KeyError" in str(e.value)


def test_release_settings_install_hw5_check_and_not_the_instructors_commands(release):
    "The student's `pip install -e .` gets hw5-check, not hw5-grade/hw5-release, and every script's module is there."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(release / "settings.ini")
    scripts = dict(l.split("=", 1) for l in cfg["DEFAULT"]["console_scripts"].split())
    assert "hw5-check" in scripts and not {"hw5-grade", "hw5-release"} & set(scripts), scripts
    assert "nbgrader" not in cfg["DEFAULT"]["dev_requirements"]
    for name, target in scripts.items():                  # the module each script imports is in the student's package
        assert (release / (target.split(":")[0].replace(".", "/") + ".py")).is_file(), (name, target)


def test_release_readme_tells_the_week(release):
    "Set-up, every chapter in order with its time, the size setting, hw5-check, what to hand in, what is graded."
    readme = (release / "README.md").read_text()
    rows = [l.split("|")[1].strip() for l in readme.splitlines() if l.startswith("| `")]
    week = [n for r in rows for n in re.findall(r"`(\d\d_\w+)`", r)]
    assert sorted(week) == sorted(p.stem for p in (release / "nbs").glob("*.ipynb")), week
    assert week == sorted(week)                           # in chapter order
    for text in ("pip install -e", "nbdev_export", "# Sizes, the one setting of this chapter", "IN_TEST=1",
                 "hw5-check 01_forward", "Hand in your `nbs/` folder", "Only the code inside the solution regions is graded",
                 "is not written yet: this cell needs it; skipped", "On a GPU: not measured"):
        assert text in readme, text
    for r in (l for l in readme.splitlines() if re.match(r"\| `\d\d_\w+` \|", l)):   # every chapter measured
        full, small = [c.strip() for c in r.split("|")[3:5]]
        assert "not measured" not in r and re.search(r"\d (s|min)\b", f"{full} {small}"), r


def test_grading_chapter_gives_every_chapters_run_all_time():
    """Every notebook in nbs/ with code, the grader's own included, has its Run All time (or why not) in CHAPTER_TIMES,
    in chapter order, and the grading page's Markdown table is `times_table()`: a new chapter without a time fails."""
    from hw5_diffusion.grading import CHAPTER_TIMES, times_table
    nbs = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "nbs").glob("*.ipynb"))}
    chapters = [name for name, nb in nbs.items() if any(c["cell_type"] == "code" for c in nb["cells"])]
    assert list(CHAPTER_TIMES) == chapters and "19_launch" in chapters
    for name, (full, small, note) in CHAPTER_TIMES.items():
        assert (full or 0) > 0 or "not run here" in note, name          # measured, or says why not
        assert small is None or small > 0, name
        assert f"| `{name}` | " in times_table(), name
    page = ["".join(c["source"]) for c in nbs["14_grading"]["cells"] if c["cell_type"] == "markdown"]
    assert any(times_table() in s for s in page), "the grading page's table is not times_table(): paste it again"


def test_release_readme_nbdev_test_command_runs_the_chapter(release, tmp_path):
    "The README's nbdev_test line, run where the README says (the release folder), tests the chapter: not 'No files'."
    line = next(l for l in (release / "README.md").read_text().splitlines() if l.startswith("nbdev_test "))
    cmd = line.split("#")[0].split()
    p = run([BIN / cmd[0], *cmd[1:]], check=False, cwd=release, env=student_env(release, tmp_path))
    assert p.returncode == 0 and "No files were eligible" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert "Success" in p.stdout + p.stderr, p.stdout + p.stderr

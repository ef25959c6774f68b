"""The student's week in a real JupyterLab: a fresh student edition, its package built by nbdev_export, served by
`jupyter lab` and opened in headless Chromium (Debian's, through Playwright, as the docs check does). Run > Run All
Cells on stubbed chapters reaches the last cell, and nothing on the page is an error: the unwritten parts say so in
one line. Then a student who solved 01_forward sees its parts pass in hw5-check and scores exactly their points."""
import json, os, secrets, shutil, signal, socket, subprocess, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT, BIN, run
from test_docs import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from test_course import student_env, solve_chapter
from hw5_diffusion.course import PARTS

CHAPTERS = ["01_forward", "04_ddim", "09_cfg"]   # the first chapter, two with an explorer (interact), one whose later cells need a part
SKIP_LINE = "is not written yet: this cell needs it; skipped"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("course") / "release"
    run(["hw5-release", "--out", out])
    run([BIN / "nbdev_export"], cwd=out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(release, tmp_path_factory):
    "`jupyter lab` on 127.0.0.1 with a token, serving the release's nbs/; its kernels import the student's package."
    home = tmp_path_factory.mktemp("jupyter")
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)           # every cell in the page, on screen or not: the test reads them all
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, **student_env(release, home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython"),
           "MPLCONFIGDIR": str(home / "mpl")}
    port, token = free_port(), secrets.token_hex(16)
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen([BIN / "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={release / 'nbs'}",
                             "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0", "--allow-root"],
                            env=env, cwd=release, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):                       # up to two minutes on a busy machine: then the log says why
            if proc.poll() is not None: break
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5); break
            except OSError: time.sleep(0.5)
        assert proc.poll() is None, (home / "lab.log").read_text()
        yield url, token
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)    # the server and the kernels it started (its session)
            proc.wait(timeout=30)
        except ProcessLookupError: pass
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()


def notebook_js(chapter: str, body: str) -> str:
    "A page function over the chapter's notebook panel `w` (JupyterLab exposed as window.jupyterapp)."
    return ("() => { if (!window.jupyterapp?.shell) return null;   /* the page is still loading */\n"
            "const w = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context?.path === "
            f"'{chapter}.ipynb'); if (!w) return null; {body} }}")


@needs_chromium
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_run_all_in_jupyterlab_reaches_the_last_cell(lab, chapter):
    from playwright.sync_api import sync_playwright
    url, token = lab
    code = "const cells = Array.from(w.content.model.cells).filter(c => c.type === 'code'); "
    idle = "w.sessionContext.session?.kernel?.status === 'idle'"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/lab/tree/{chapter}.ipynb?token={token}")
            page.wait_for_function(notebook_js(chapter, f"return {idle} && w.content.widgets.length > 0;"), timeout=120_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            # Run All has finished when the kernel is idle and every code cell has its execution count
            page.wait_for_function(notebook_js(chapter, code + f"return {idle} && cells.every(c => c.executionCount);"), timeout=480_000)
            cells = page.evaluate(notebook_js(chapter, code + "return cells.map(c => ({count: c.executionCount, outputs: c.outputs.toJSON()}));"))
            panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
            text = "\n".join(panel.locator(".jp-OutputArea").all_inner_texts())   # outputs, widgets' included
        finally:
            browser.close()
    assert cells and all(c["count"] for c in cells), cells
    assert len(prompts) == len(cells) and all(p.strip() not in ("[ ]:", "[*]:") for p in prompts), prompts   # the page too
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, errors
    assert "Traceback" not in text and "Error" not in text, text
    stderr = [l for c in cells for o in c["outputs"] if o.get("name") == "stderr" for l in "".join(o["text"]).splitlines()]
    assert all(l.startswith("✗ part ") for l in stderr if "Error" in l or "error" in l), stderr
    skips = sum("".join(o.get("text", "")).count(SKIP_LINE) for c in cells for o in c["outputs"])
    fails = sum("".join(o.get("text", "")).count("✗ part ") for c in cells for o in c["outputs"])
    assert skips > 0 and fails == sum(p.chapter == chapter for p in PARTS), (skips, fails)
    assert SKIP_LINE in text and "✗ part " in text           # what the student sees on the page


def test_a_student_who_solved_01_passes_its_parts_and_scores_their_points(release, tmp_path):
    "hw5-check says yes for exactly 01_forward's parts; hw5-grade gives exactly their points (4 + 5 + 8 = 17)."
    mine = solve_chapter(release, tmp_path / "student", "01_forward")
    p = run(["hw5-check"], check=False, cwd=mine, env=student_env(mine, tmp_path))
    rows = {l.split()[0]: l.split() for l in p.stdout.splitlines()}
    solved = {part.name for part in PARTS if part.chapter == "01_forward"}
    assert p.returncode == 1 and {n for n, r in rows.items() if n in {q.name for q in PARTS} and r[2] == "yes"} == solved, p.stdout
    points = sum(part.points for part in PARTS if part.name in solved)
    assert rows["total"][1] == f"{points}/100"
    run(["hw5-grade", mine / "nbs", "--out", tmp_path / "grades"], env={"OMP_NUM_THREADS": "1", "HW5_CACHE": str(tmp_path / "cache")})
    grades = json.loads((tmp_path / "grades" / "grades.json").read_text())
    assert grades["total"] == points == 17 and grades["max"] == 100
    assert {n for n, g in grades["parts"].items() if g["score"] == g["max"]} == solved
    assert all(g["score"] == 0 for n, g in grades["parts"].items() if n not in solved)

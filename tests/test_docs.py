"""The docs site (`make docs`): built offline from nbdev's processed notebooks, then opened page by page in
headless Chromium (Debian's, through Playwright) and checked as a reader would see it. Also: README.md is what
nbs/index.ipynb gives, the nbdev/Quarto configuration stays valid, and `make figures` keeps real, small outputs."""
import base64, functools, html, html.parser, http.server, importlib, inspect, io, json, os, re, shutil, sys, threading
import urllib.error, urllib.request
from pathlib import Path
import pytest, yaml
from PIL import Image
from conftest import ROOT, run

TOOLS = ROOT / "nbs" / "_docs_tools"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (/usr/bin/chromium): `make test` "
                                    "installs Debian's chromium when it runs as root with apt-get; the browser checks need it")


# ---------------------------------------------------------------- what the sources say the site must have
def _directives(src: str) -> dict:
    "The `#|` options at the top of a code cell (`hide`, `echo: false`, `default_exp data`, ...)."
    opts = {}
    for line in src.split("\n"):
        if not line.startswith("#|"): break
        k, _, v = line[2:].strip().replace(":", " ", 1).partition(" ")
        opts[k.strip()] = v.strip().lower()
    return opts


def notebook_pages(nbs: Path) -> list:
    "(notebook, page, module, images shown) for every notebook in nbs/, in nbdev's order (index, then by name)."
    res = []
    for fn in sorted(nbs.glob("*.ipynb"), key=lambda f: (f.stem != "index", f.name)):
        cells = json.loads(fn.read_text())["cells"]
        mod, images = None, 0
        for c in cells:
            if c["cell_type"] != "code": continue
            d = _directives("".join(c["source"]))
            if "default_exp" in d: mod = d["default_exp"]
            if "hide" in d or d.get("include") == "false" or d.get("output") == "false": continue
            images += sum(any(k.startswith("image/") for k in o.get("data", {})) for o in c.get("outputs", []))
        page = "index.html" if fn.stem == "index" else f"{mod or fn.stem}.html"
        res.append((fn.name, page, mod, images))
    return res


_WIDGET = re.compile(r"\binteract\b")


def widget_pages(nbs: Path) -> dict:
    "page -> how many cells on it build an `ipywidgets.interact` explorer (live in JupyterLab, a picture on the site)."
    res = {}
    for nb, page, _, _ in notebook_pages(nbs):
        for c in json.loads((nbs / nb).read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] == "code" and "hide" not in _directives(src) and _WIDGET.search(src):
                res[page] = res.get(page, 0) + 1
    return res


def expected_pages(root: Path) -> list:
    "Every page the navigation must list, in order: the chapters, the API reference, the results (when present)."
    pages = [p for _, p, _, _ in notebook_pages(root / "nbs") if p != "index.html"] + ["api.html"]
    return pages + (["tables.html"] if list((root / "results").glob("*.md")) else [])


def _stale(site: Path, root: Path) -> bool:
    if not (site / "index.html").exists(): return True
    tools = [f for f in TOOLS.rglob("*") if "__pycache__" not in f.parts]
    srcs = [*root.glob("nbs/*.ipynb"), *tools, *root.glob("results/*"), root / "settings.ini"]
    return max(f.stat().st_mtime for f in srcs if f.is_file()) > (site / "index.html").stat().st_mtime


def build_site(root: Path) -> Path:
    "`make docs` for the project at `root` (run from there: nbdev reads its settings.ini)."
    run([sys.executable, TOOLS / "build.py"], cwd=root, timeout=900)
    return root / "_docs"


@pytest.fixture(scope="session")
def site():
    "The site `make docs` built; rebuilt here when it is missing or older than its sources (pytest run alone)."
    return build_site(ROOT) if _stale(ROOT / "_docs", ROOT) else ROOT / "_docs"


class _Html(html.parser.HTMLParser):
    "Element ids, link targets and image sources of one page."
    def __init__(self, text):
        super().__init__(); self.ids, self.links, self.imgs = set(), [], []
        self.feed(text)
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("href"): self.links.append(a["href"])
        if tag == "img": self.imgs.append(a.get("src"))


def _text(html_text: str) -> str:
    "The visible text of a page, whitespace collapsed."
    t = re.sub(r"<(script|style)\b.*?</\1>", " ", html_text, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", t)))


_SMART = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                        "\u2026": "...", "`": None, "*": None, "$": None, "\\": None})
def _bare(s: str) -> str:
    "Text compared without whitespace, markup and Sphinx's smart quotes and dashes (`--` and `–` both become `-`)."
    return re.sub(r"\s|-+", lambda m: "-" if m[0][0] == "-" else "", s.translate(_SMART))


# ---------------------------------------------------------------- README and configuration
def test_readme_is_generated_from_index():
    run([sys.executable, TOOLS / "readme.py", "--check"], cwd=ROOT)


def test_readme_check_fails_when_they_differ(tmp_path):
    shutil.copy(ROOT / "settings.ini", tmp_path)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs", ignore=shutil.ignore_patterns("*.ipynb", "_*"))
    shutil.copy(ROOT / "nbs" / "index.ipynb", tmp_path / "nbs")
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text().replace("two commands", "three commands"))
    p = run([sys.executable, TOOLS / "readme.py", "--check"], cwd=tmp_path, check=False)
    assert p.returncode == 1 and "README.md differs from what nbs/index.ipynb gives" in p.stderr, p.stderr
    run([sys.executable, TOOLS / "readme.py"], cwd=tmp_path)
    assert (tmp_path / "README.md").read_text() == (ROOT / "README.md").read_text()


def test_quarto_configuration_is_valid(site):
    "What `nbdev_docs` needs besides Quarto: _quarto.yml, the files it names, a sidebar with every notebook in order."
    nbs = ROOT / "nbs"
    q = yaml.safe_load((nbs / "_quarto.yml").read_text())
    assert q["project"]["type"] == "website" and q["website"]["navbar"]["search"] is True
    assert (nbs / q["format"]["html"]["css"]).is_file()
    assert q["metadata-files"] == ["nbdev.yml", "sidebar.yml"]
    ny = yaml.safe_load((nbs / "nbdev.yml").read_text())  # written by nbdev's refresh_quarto_yml during the build
    assert ny["project"]["output-dir"] == "_docs" and ny["website"]["title"] == "hw5_diffusion"
    sidebar = yaml.safe_load((nbs / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    assert sidebar == [n for n, *_ in notebook_pages(nbs)]


# ---------------------------------------------------------------- the built pages, read as files
def test_every_notebook_has_a_page_in_chapter_order(site):
    ix = _Html((site / "index.html").read_text())
    nav = [h for h in ix.links if re.fullmatch(r"[\w-]+\.html", h) and h not in ("index.html", "genindex.html", "search.html")]
    want = expected_pages(ROOT)
    assert list(dict.fromkeys(nav)) == want, "the navigation must list the chapters in order, then API, results"
    for p in want: assert (site / p).is_file(), p
    # the home page is index.ipynb: its title, the two commands and a sample grid picture
    t = _text((site / "index.html").read_text())
    assert "hw5_diffusion" in t and "make demo" in t and "make test" in t
    assert any("sample" in (s or "") for s in ix.imgs), f"no sample grid picture on the home page: {ix.imgs}"


def test_hidden_cells_stay_hidden(site):
    "`#| hide` cells (and nbdev's `#| export` markers) do not reach the pages."
    for nb, page, _, _ in notebook_pages(ROOT / "nbs"):
        t = _text((site / page).read_text())
        assert "#| export" not in t and "#| hide" not in t, page
        for c in json.loads((ROOT / "nbs" / nb).read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] == "code" and "hide" in _directives(src):
                body = [l for l in src.split("\n") if l.strip() and not l.startswith("#|")]
                if body and len(body[0]) > 25: assert re.sub(r"\s+", " ", body[0].strip()) not in t, (page, body[0])


def exported(m) -> list:
    "The functions and classes in a module's `__all__`: what its chapter and the API reference document."
    return [n for n in m.__all__ if inspect.isfunction(getattr(m, n)) or inspect.isclass(getattr(m, n))]


def _api_entry(api: str, full_name: str) -> str:
    "The HTML of the Python-domain entry `full_name` on the API page up to the next entry (a class: to its first method)."
    m = re.search(rf'<dt class="sig sig-object py" id="{re.escape(full_name)}">.*?(?=<dt class="sig sig-object py"|</section>)', api, re.S)
    return m[0] if m else ""


def test_api_entries_for_every_exported_function_and_class(site):
    """Each chapter page shows every exported function and class (nbdev's show_doc: signature and docstring); the
    API reference has a Python-domain entry for each: signature, docstring, parameter table, link to the chapter."""
    api = (site / "api.html").read_text()
    n = 0
    for _, page, mod, _ in notebook_pages(ROOT / "nbs"):
        if not mod: continue
        m = importlib.import_module(f"hw5_diffusion.{mod}")
        h = (site / page).read_text(); ids, text = _Html(h).ids, _text(h)
        src = inspect.getsource(m)
        for name in exported(m):
            obj = getattr(m, name)
            doc = _bare((inspect.getdoc(obj) or "").split("\n\n")[0])[:40]
            # nbdev documents what `def`/`class` define in exported cells; the API page lists namedtuples too
            defined = re.search(rf"^(def|class) {name}\b", src, re.M)
            if not defined: doc = ""  # a namedtuple's docstring is generated, and show_doc leaves it out
            if defined:
                assert name.lower() in ids, f"{page}: no show_doc entry (anchor #{name.lower()}) for {mod}.{name}"
                assert f"def{name}(" in re.sub(r"\s", "", text), f"{page}: no signature for {mod}.{name}"
                assert not doc or doc in _bare(text), f"{page}: no docstring for {mod}.{name}: {doc!r}"
            entry = _api_entry(api, f"{m.__name__}.{name}")
            assert entry, f"api.html: no Python-domain entry #{m.__name__}.{name}"
            t = _text(entry)
            # Sphinx leaves the brackets off a class whose constructor takes no arguments
            assert re.match(rf"(class)?{name}(\(|\[source\])", re.sub(r"\s", "", t)), f"api.html: no signature for {mod}.{name}"
            assert not doc or doc in _bare(t), f"api.html: no docstring for {mod}.{name}: {doc!r}"
            assert f'href="{page}' in entry and "explained in" in t, f"api.html: {mod}.{name} does not link to {page}"
            params = [p for p in inspect.signature(obj).parameters if p != "self"] if inspect.isfunction(obj) else []
            assert all(f"<code" in entry and f">{p}<" in entry for p in params), f"api.html: no parameter table for {name}"
            n += 1
    assert n >= 10, n


def test_entries_follow_the_source(site):
    """Chapter pages and the API reference list a module's functions and classes in the order the source defines
    them (nbdev inserts the show_doc entries of one cell reversed; build.py puts them back)."""
    api = (site / "api.html").read_text()
    for _, page, mod, _ in notebook_pages(ROOT / "nbs"):
        if not mod: continue
        m = importlib.import_module(f"hw5_diffusion.{mod}")
        defined = [n for n in exported(m) if getattr(m, n).__module__ == m.__name__ and re.search(
            rf"^(def|class) {n}\b", inspect.getsource(m), re.M)]
        defined.sort(key=lambda n: inspect.getsourcelines(getattr(m, n))[1])
        for where, h, ids in ((page, (site / page).read_text(), [n.lower() for n in defined]),
                              ("api.html", api, [f"{m.__name__}.{n}" for n in defined])):
            at = [h.find(f'id="{i}"') for i in ids]
            assert -1 not in at and at == sorted(at), f"{where}: {mod} not in source order: {[n for _, n in sorted(zip(at, defined))]}"


def test_objects_inventory_lists_the_api(site):
    "objects.inv (what intersphinx reads) has a py:function or py:class entry for each exported function and class."
    p = run([sys.executable, "-m", "sphinx.ext.intersphinx", site / "objects.inv"], cwd=ROOT)
    inv, kind = {}, None
    for line in p.stdout.splitlines():
        if not line.startswith(" "): kind = line.strip(); continue
        name, _, uri = line.strip().rpartition(": ")
        inv[(kind, name.split()[0])] = uri.strip()
    for _, _, mod, _ in notebook_pages(ROOT / "nbs"):
        if not mod: continue
        m = importlib.import_module(f"hw5_diffusion.{mod}")
        assert inv.get(("py:module", m.__name__)), f"objects.inv: no py:module {m.__name__}"
        for name in exported(m)[::3]:  # a sample of each module's exports, first included
            kind = "py:class" if inspect.isclass(getattr(m, name)) else "py:function"
            assert inv.get((kind, f"{m.__name__}.{name}")) == f"api.html#{m.__name__}.{name}", (kind, m.__name__, name)


def test_results_tables_are_included(site):
    tables = sorted((ROOT / "results").glob("*.md"))
    if not tables:
        assert not (site / "tables.html").exists(); return
    t = re.sub(r"\s", "", _text((site / "tables.html").read_text()))
    for f in tables:
        rows = [l for l in f.read_text().splitlines() if l.startswith("|") and not set(l) <= set("|-: ")]
        cells = [re.sub(r"[\s`*]", "", c) for r in rows for c in r.strip().strip("|").split("|")]
        missing = [c for c in cells if c and "$" not in c and c not in t]
        assert cells and not missing, f"{f.name}: table cells not on tables.html: {missing[:5]}"


# ---------------------------------------------------------------- in the browser
class _Server:
    "`root` served on 127.0.0.1 (a free port) for the duration of a `with` block."
    def __init__(self, root): self.root = root
    def __enter__(self):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a): pass
        h = functools.partial(Quiet, directory=str(self.root))
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.srv.server_port}/"
    def __exit__(self, *a): self.srv.shutdown(); self.srv.server_close()


_RAW_TEX = re.compile(r"\$\$?[^$\n]{0,200}?[\\_^{}][^$\n]{0,200}?\$")
_JS_PAGE = """() => {
  const imgs = Array.from(document.images).map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
                                                      output: !!i.closest('.cell_output')}));
  const maths = Array.from(document.querySelectorAll('span.math, div.math'));
  const body = document.querySelector('article') || document.body;
  const c = body.cloneNode(true);
  c.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  // wider than its box: a display equation must scroll inside it, a signature (chapter entry or API entry) must wrap
  const wide = e => e.scrollWidth > e.clientWidth + 1;
  const cut = Array.from(document.querySelectorAll('div.math')).filter(m => wide(m) && !/auto|scroll/.test(getComputedStyle(m).overflowX))
    .map(m => 'equation: ' + m.textContent.slice(0, 60));
  const sigs = Array.from(document.querySelectorAll('p.nbdev-entry + div.highlight-python pre, dt.sig')).filter(wide)
    .map(e => 'signature: ' + e.textContent.slice(0, 60));
  return {imgs, nmath: maths.length, unrendered: maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
          text: c.textContent, links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href), overflow: cut.concat(sigs)};
}"""


def check_site(site: Path, pages: list, figures: dict, shots: dict = None, partial: bool = False) -> dict:
    """Open `pages` (and every internal page they link to) in headless Chromium; return the problems found.
    `figures`: page -> the number of pictures its notebook stores; `shots`: page -> screenshot file;
    `partial`: a site built from some of the notebooks, whose links to the other chapters are not followed."""
    from playwright.sync_api import sync_playwright
    problems, seen, todo, fetched = {}, set(), list(pages), {}
    bad = lambda page, what: problems.setdefault(page, []).append(what)
    with _Server(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        cur = {"name": None}
        def route(r):  # the site must work offline: anything not on this server is a failure
            if r.request.url.startswith(base) or r.request.url.startswith("data:"): r.continue_()
            else: bad(cur["name"], f"request outside the site: {r.request.url}"); r.abort()
        page.route("**/*", route)
        page.on("pageerror", lambda e: bad(cur["name"], f"JavaScript error: {e}"))
        page.on("console", lambda m: m.type == "error" and bad(cur["name"], f"console error: {m.text}"))
        page.on("response", lambda r: r.status >= 400 and bad(cur["name"], f"HTTP {r.status}: {r.url}"))
        while todo:
            name = todo.pop(0)
            if name in seen: continue
            seen.add(name); cur["name"] = name
            resp = page.goto(base + name, wait_until="load")
            if resp is None or resp.status != 200:
                bad(name, f"page does not load: {resp and resp.status}"); continue
            page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
            info = page.evaluate(_JS_PAGE)
            for i in info["imgs"]:
                if not i["ok"]: bad(name, f"image does not load: {i['src']}")
            if info["unrendered"]: bad(name, f"equations not typeset: {info['unrendered'][:3]}")
            if info["overflow"]: bad(name, f"cut off at the column's edge: {info['overflow'][:3]}")
            if m := _RAW_TEX.search(info["text"]): bad(name, f"raw TeX left in the text: {m.group(0)[:80]!r}")
            shown = sum(i["ok"] and i["output"] for i in info["imgs"])
            if shown < figures.get(name, 0): bad(name, f"{shown} of its notebook's {figures[name]} figures shown")
            for href in info["links"]:
                if not href.startswith(base): continue
                target, _, frag = href[len(base):].partition("#")
                target = target.split("?")[0] or "index.html"
                if target not in fetched:
                    try: fetched[target] = _Html(urllib.request.urlopen(base + target).read().decode()).ids
                    except urllib.error.HTTPError: fetched[target] = None
                if fetched[target] is None:
                    if not (partial and target.endswith(".html")): bad(name, f"broken link: {href[len(base):]}")
                elif frag and frag not in fetched[target]: bad(name, f"broken link (no #{frag} on {target}): {href[len(base):]}")
                elif not partial and target.endswith(".html") and target not in seen and not target.startswith("_"):
                    todo.append(target)
            if shots and name in shots:
                shots[name].parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots[name]), full_page=True)
        browser.close()
    return {"problems": problems, "seen": seen}


@needs_chromium
def test_site_in_browser(site):
    pages = ["index.html", *expected_pages(ROOT)]
    figures = {p: k for _, p, _, k in notebook_pages(ROOT / "nbs")}
    chapter = next(p for p in ("forward.html", *pages[1:]) if p in pages)
    shots = {"index.html": site / "screenshots" / "home.png", chapter: site / "screenshots" / f"chapter-{chapter[:-5]}.png"}
    r = check_site(site, pages, figures, shots)
    assert not r["problems"], json.dumps(r["problems"], indent=1)[:6000]
    assert set(pages) <= r["seen"]
    assert all(Image.open(f).size[0] == 1280 for f in shots.values())
    print(f"checked {len(r['seen'])} pages; figures expected per page: {figures}")


@needs_chromium
def test_widget_cells_show_their_starting_picture(site):
    """A widget cell (an `interact` explorer) shows, in its output on the page, the picture its function draws at the
    widgets' starting values: `make figures` stores it, the page cannot run the widget."""
    from playwright.sync_api import sync_playwright
    want = widget_pages(ROOT / "nbs")
    assert {"forward.html", "ddim.html"} <= want.keys(), want
    got = {}
    with _Server(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name in want:
            page.goto(base + name, wait_until="load")
            # per widget cell, the pictures that loaded in its output area
            got[name] = page.evaluate("""() => Array.from(document.querySelectorAll('div.cell'))
              .filter(c => /\\binteract\\b/.test(c.querySelector('.cell_input')?.textContent || ''))
              .map(c => Array.from(c.querySelectorAll('.cell_output img')).filter(i => i.complete && i.naturalWidth > 0).length)""")
        browser.close()
    for name, n in want.items():
        assert len(got[name]) == n and all(got[name]), f"{name}: pictures under its {n} widget cell(s): {got[name]}"


@needs_chromium
def test_search_finds_a_function(site):
    from playwright.sync_api import sync_playwright
    with _Server(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(base + "search.html?q=NoiseSchedule")
        page.wait_for_selector("#search-results ul.search li a", timeout=30000)
        hits = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.getAttribute('href'))")
        browser.close()
    assert any(h.startswith("forward.html") for h in hits), hits


@needs_chromium
def test_search_lands_on_an_api_entry(site):
    "A reader types a method's name into the search box: the first hit is its API entry, with its parameter table."
    from playwright.sync_api import sync_playwright
    with _Server(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "index.html")
        page.fill("input.sidebar-search", "q_sample"); page.keyboard.press("Enter")
        first = page.wait_for_selector("#search-results ul.search li a", timeout=30000)
        href = first.get_attribute("href")
        first.click(); page.wait_for_load_state("load")
        target = page.evaluate("() => decodeURIComponent(location.hash.slice(1))")
        # furo scrolls smoothly: wait until the entry has come into view
        page.wait_for_function("""id => { const r = document.getElementById(id).getBoundingClientRect();
                                          return r.top >= 0 && r.bottom <= innerHeight; }""", arg=target, timeout=10000)
        entry = page.evaluate("""id => { const dt = document.getElementById(id), r = dt.getBoundingClientRect();
          const table = dt.parentElement.querySelector(':scope > dd > table, :scope > dd > div > table');
          return {page: location.pathname, top: r.top, bottom: r.bottom, height: innerHeight, sig: dt.textContent,
                  head: table && Array.from(table.querySelectorAll('th')).map(th => th.textContent.trim()),
                  rows: table && Array.from(table.querySelectorAll('tbody tr td:first-child')).map(td => td.textContent.trim())};
        }""", target)
        browser.close()
    assert href.startswith("api.html#") and target.endswith(".q_sample"), (href, target)
    mod, cls, meth = target.rsplit(".", 2)
    obj = getattr(getattr(importlib.import_module(mod), cls), meth)
    assert entry["page"].endswith("/api.html") and 0 <= entry["top"] < entry["bottom"] <= entry["height"], entry
    assert "q_sample(" in entry["sig"] and entry["head"][:3] == ["Parameter", "Type", "Default"], entry
    sig = inspect.signature(obj)
    returns = ["returns"] if sig.return_annotation is not sig.empty else []
    assert entry["rows"] == [p for p in sig.parameters if p != "self"] + returns, entry


# ---------------------------------------------------------------- `make figures`, shown on one chapter
def test_figures_of_a_real_run_reach_the_page(tmp_path):
    """Run 01_forward in full with `make figures`' script in a copy of the project: its picture is stored small,
    the notebook stays nbdev-clean, and the page built from it shows the picture in the browser."""
    for f in ("settings.ini",): shutil.copy(ROOT / f, tmp_path)
    (tmp_path / "nbs").mkdir()
    for f in ("index.ipynb", "01_forward.ipynb", "_quarto.yml", "styles.css"): shutil.copy(ROOT / "nbs" / f, tmp_path / "nbs")
    if (ROOT / "nbs" / "images").is_dir(): shutil.copytree(ROOT / "nbs" / "images", tmp_path / "nbs" / "images")
    nb = tmp_path / "nbs" / "01_forward.ipynb"
    cells = json.loads(nb.read_text())
    widget = [c for c in cells["cells"] if c["cell_type"] == "code" and _WIDGET.search("".join(c["source"]))]
    assert len(widget) == 1, "01_forward has one widget cell"
    widget[0]["outputs"] = []  # its picture must come from this run, not from the copy
    nb.write_text(json.dumps(cells, indent=1, ensure_ascii=False) + "\n")
    p = run([sys.executable, TOOLS / "figures.py", nb, "--max-px", "700"], cwd=tmp_path, timeout=900,
            env={"OMP_NUM_THREADS": "1", "IN_TEST": "1"})
    print(p.stdout)
    cells = json.loads(nb.read_text())["cells"]
    pngs = [o["data"]["image/png"] for c in cells if c["cell_type"] == "code" for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert pngs, "01_forward stored no picture"
    widget = next(c for c in cells if c["cell_type"] == "code" and _WIDGET.search("".join(c["source"])))
    outs = [sorted(o.get("data", [o["output_type"]])) for o in widget["outputs"]]
    assert outs == [["image/png", "text/plain"]], f"the widget cell stores its starting picture, once, and nothing else: {outs}"
    for b in pngs:
        raw = base64.b64decode(b)
        assert Image.open(io.BytesIO(raw)).size[0] <= 700 and len(raw) <= 200_000
    assert not any(c.get("execution_count") for c in cells if c["cell_type"] == "code")
    before = nb.read_bytes()
    run(["nbdev_clean", "--fname", nb], cwd=tmp_path)
    assert nb.read_bytes() == before, "the notebook is not nbdev-clean after `make figures`"
    if CHROMIUM is None: pytest.skip(needs_chromium.kwargs["reason"])
    shot = ROOT / "_docs" / "screenshots" / "chapter-forward-after-make-figures.png"
    r = check_site(build_site(tmp_path), ["forward.html"], {"forward.html": len(pngs)}, {"forward.html": shot}, partial=True)
    assert not r["problems"], json.dumps(r["problems"], indent=1)[:4000]


@needs_chromium
def test_browser_check_catches_broken_pages(tmp_path):
    "The checker itself: a page with each kind of fault gets each one reported."
    png = io.BytesIO(); Image.new("L", (4, 4)).save(png, "PNG")
    (tmp_path / "ok.png").write_bytes(png.getvalue())
    (tmp_path / "index.html").write_text("""<html><body><article>
      <p>The mean is $\\sqrt{\\bar\\alpha_t} x_0$, left raw.</p>
      <a href="missing.html">gone</a> <a href="other.html#nowhere">no anchor</a>
      <img src="nope.png"> <div class="cell_output"><img src="ok.png"></div>
      <img src="https://cdn.example.invalid/x.png">
      <div class="math" style="width: 100px; white-space: nowrap; overflow: visible">a very long equation that runs past its box</div>
      <p class="nbdev-entry"></p><div class="highlight-python"><pre style="width: 100px">def f(a_long_argument:int=1, another_one:str='x'):</pre></div>
      <script>undefinedFunction()</script></article></body></html>""")
    (tmp_path / "other.html").write_text("<html><body><p id='here'>other</p></body></html>")
    got = "\n".join(check_site(tmp_path, ["index.html"], {"index.html": 2})["problems"]["index.html"])
    for want in ("raw TeX left in the text", "broken link: missing.html", "no #nowhere on other.html",
                 "image does not load: nope.png", "request outside the site: https://cdn.example.invalid",
                 "JavaScript error", "1 of its notebook's 2 figures shown", "cut off at the column's edge: ['equation: a very long",
                 "signature: def f(a_long"):
        assert want in got, (want, got)


def test_readme_from_a_notebook_with_code(tmp_path):
    "Hidden cells stay out, `echo: false` shows only the output, pictures in nbs/ keep working from the root."
    sys.path.insert(0, str(TOOLS))
    from readme import readme_text
    cell = lambda src, out=(): {"cell_type": "code", "source": src, "metadata": {}, "outputs": list(out)}
    nb = {"cells": [{"cell_type": "markdown", "source": "# t\n\n> d\n\n![grid](images/g.png) [site](https://x.y/z.png)"},
                    cell("#| hide\nsecret()"),
                    cell("#| echo: false\nprint(1)", [{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
                    cell("#| eval: false\nshow()"), cell("2 + 2", [{"output_type": "execute_result", "data": {"text/plain": "4"}}])]}
    (tmp_path / "i.ipynb").write_text(json.dumps(nb))
    assert readme_text(tmp_path / "i.ipynb", "nbs") == (
        "# t\n\n> d\n\n![grid](nbs/images/g.png) [site](https://x.y/z.png)\n\n```\n1\n```\n\n```python\nshow()\n```\n\n"
        "```python\n2 + 2\n```\n\n```\n4\n```\n")

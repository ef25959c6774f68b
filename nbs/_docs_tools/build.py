"""`make docs`: the documentation site in `_docs/`, built offline.

nbdev processes the notebooks exactly as `nbdev_docs` does (`proc_nbs` into `_proc/`: `#| hide` cells gone,
a `show_doc` entry with signature and docstring for every exported function and class, doc links). Quarto,
which renders them for `nbdev_docs`, cannot be installed from a package registry, so Sphinx with MyST-NB
renders the processed notebooks instead: it shows the outputs stored in the notebooks without running them,
parses `$...$` math and the `show_doc` markdown, and has offline search. MathJax is served from the site
itself (the `sphinx-mathjax-offline` package), so no page loads anything from the internet. The API reference
is written here as Sphinx Python-domain entries, one per exported function, class and documented method of the
modules the notebooks export (`#| default_exp`), so `objects.inv` and the site search know each of them.

Usage: python nbs/_docs_tools/build.py   (from anywhere inside the repository)"""
import importlib, inspect, json, re, shutil, sys, time
from pathlib import Path
import yaml
from nbdev.config import get_config

HERE = Path(__file__).resolve().parent
# cell options: Quarto's (`#| echo: false`, left in the processed notebooks by nbdev) and nbdev's (`#| hide`)
_OPT = re.compile(r"^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_SRC_LINK = re.compile(r"\[source\]\((?P<url>[^)\s]+)\)\{[^}]*\}")
_LINE = re.compile(r"#L(\d+)$")
_CALLOUT = re.compile(r"^:::\s*\{\.callout-(note|tip|warning|important|caution)[^}]*\}\s*$", re.M)


def sidebar_order(nbs: Path) -> list:
    "Notebook paths (relative to `nbs`) in nbdev's sidebar order, the order of the chapters."
    from nbdev.quarto import nbdev_sidebar
    nbdev_sidebar.__wrapped__(path=nbs)
    def flat(items):
        for o in items:
            if isinstance(o, dict): yield from flat(o.get("contents", []))
            else: yield o
    return list(flat(yaml.safe_load((nbs / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]))


def split_options(src: str):
    "The `#| key: value` (or `#| flag`) lines at the top of a cell, as a dict, and the rest of the source."
    lines, opts = src.splitlines(), {}
    while lines and (m := _OPT.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip("'\"").lower() or True
        lines.pop(0)
    return opts, "\n".join(lines)


def anchor_id(name: str) -> str:
    "The fragment nbdev's doc links use for a symbol (`forward.html#noiseschedule.q_sample`)."
    return name.lower()


def showdoc_markdown(md: str) -> str:
    "nbdev's `show_doc` markdown (written for Quarto) as MyST: the source link as HTML, nbdev's anchor kept."
    from docutils.nodes import make_id
    md = md.strip()
    if md.startswith("---"): md = md[3:].lstrip()
    link = ""
    if m := _SRC_LINK.search(md):
        link = f'<a class="nbdev-source" href="{m["url"]}">source</a>'
        md = (md[:m.start()] + md[m.end():]).strip()
    head, _, rest = md.partition("\n")
    if not head.startswith("#"): return "\n\n".join(o for o in (link, md) if o)
    name = head.lstrip("#").strip()
    # docutils makes its own id from the heading; add nbdev's when it differs (`DDPMScheduler.step`, `_Parser`)
    span = f'<span id="{anchor_id(name)}"></span>' if make_id(name) != anchor_id(name) else ""
    extra = f'<p class="nbdev-entry">{span}{link}</p>' if span or link else ""
    return "\n\n".join(o for o in (head, extra, rest.strip()) if o)


def quarto_markdown(md: str) -> str:
    "Quarto callouts (`::: {.callout-note}`) as MyST admonitions; everything else is already MyST."
    return _CALLOUT.sub(lambda m: f":::{{{m[1]}}}", md)


def frontmatter(nb: dict) -> dict:
    "The YAML front matter nbdev writes as the first raw cell of a processed notebook."
    c = nb["cells"][0] if nb["cells"] else None
    if c and c["cell_type"] == "raw" and "".join(c["source"]).startswith("---"):
        return yaml.safe_load("".join(c["source"]).strip().strip("-")) or {}
    return {}


def defined_at(cell: dict):
    "(source file, line) of the object a `show_doc` cell documents, read from its source link; None for other cells."
    for o in cell.get("outputs", []):
        if (m := _SRC_LINK.search("".join(o.get("data", {}).get("text/markdown", "")))) and (l := _LINE.search(m["url"])):
            return m["url"][:l.start()], int(l[1])


def in_source_order(cells: list) -> list:
    """nbdev's `add_show_docs` inserts the `show_doc` cells of an exported cell one at a time right after it, each
    in front of the one before, so a cell's entries come out reversed: sort each run of them back into source order."""
    out, run = [], []
    for c in [*cells, None]:
        if c is not None and (at := defined_at(c)): run.append((at, c)); continue
        out += [c for _, c in sorted(run, key=lambda o: o[0])]; run = []
        if c is not None: out.append(c)
    return out


def convert(nb: dict) -> tuple:
    """A processed notebook as MyST-NB reads it: title cell, Quarto cell options as MyST-NB tags.
    Returns (front matter, notebook, the names that have a `show_doc` entry)."""
    fm, cells, shown = frontmatter(nb), [], set()
    nb = dict(nb, cells=in_source_order(nb["cells"]))
    title = fm.get("title")
    if title:
        desc = f"\n\n> {fm['description'].strip()}" if fm.get("description") else ""
        cells.append({"cell_type": "markdown", "metadata": {}, "source": f"# {title}{desc}"})
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "raw": continue  # front matter (done above) or raw output meant for Quarto only
        if c["cell_type"] == "markdown":
            cells.append({"cell_type": "markdown", "metadata": {}, "source": quarto_markdown(src)})
            continue
        opts, code = split_options(src)
        if opts.get("include") == "false": continue
        echo, asis = opts.get("echo") != "false", opts.get("output") == "asis"
        tags = [t for t, on in (("remove-input", not echo), ("remove-output", opts.get("output") == "false")) if on]
        outputs = c.get("outputs", [])
        if asis:  # Quarto splices this output into the page as markdown (show_doc): so do we
            md = ["".join(o["data"]["text/markdown"]) for o in outputs if "text/markdown" in o.get("data", {})]
            if echo: cells.append(dict(c, source=code, outputs=[], metadata={}))
            cells += [{"cell_type": "markdown", "metadata": {}, "source": showdoc_markdown(m)} for m in md]
            shown |= {h.lstrip("#").strip() for m in md for h in m.splitlines() if h.startswith("#")}
            continue
        if not echo and not outputs: continue
        cells.append(dict(c, source=code, metadata={"tags": tags} if tags else {}))
    for c in cells:
        if c["cell_type"] == "code": c.setdefault("execution_count", None); c.setdefault("outputs", [])
        c.pop("id", None)
    meta = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}}
    return fm, {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 4}, shown


def default_exp(nb: Path):
    "The module a notebook exports to (its `#| default_exp`), as `nbdev_export` reads it; None for a notebook without."
    from execnb.nbio import read_nb
    from nbdev.process import extract_directives
    for c in read_nb(nb).cells:
        if c.cell_type == "code" and (d := extract_directives(c, remove=False).get("default_exp")): return d[0]


def module_pages(pages: list) -> list:
    "(module name, docname, title, names with a show_doc entry) for every chapter that exports a module, in order."
    lib = get_config().lib_name
    return [(f"{lib}.{mod}", doc, fm.get("title", doc), sorted(shown)) for doc, fm, shown, mod in pages if mod]


def _code(v: str) -> str:
    "`v` as inline code in a markdown table cell."
    return f"`{v}`".replace("|", "\\|")


def param_table(f, sig: inspect.Signature) -> str:
    "The parameters of `sig` (and its return value, when annotated or commented) as a markdown table."
    from fastcore.docments import docments
    try: notes = docments(f, full=True)
    except (OSError, TypeError): notes = {}  # no source to read comments from: a namedtuple, an inherited constructor
    note = lambda n: (notes.get(n, {}).get("docment") or "").replace("|", "\\|").replace("\n", " ")
    rows = [(_code({p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name),
             "" if p.annotation is p.empty else _code(inspect.formatannotation(p.annotation)),
             "" if p.default is p.empty else _code(repr(p.default)), note(p.name)) for p in sig.parameters.values()]
    if sig.return_annotation is not sig.empty or note("return"):
        ret = sig.return_annotation
        rows.append(("**returns**", "" if ret is sig.empty else _code(inspect.formatannotation(ret)), "", note("return")))
    if not rows: return ""
    cols = 4 if any(r[3] for r in rows) else 3  # a Details column only where a parameter has a comment
    head = ["Parameter", "Type", "Default", "Details"][:cols]
    return "\n".join("| " + " | ".join(r[:cols]) + " |" for r in [head, ["---"] * cols, *rows])


def py_entry(kind: str, name: str, f, sig, doc: str, options=(), extra=(), depth: int = 0) -> str:
    """A Sphinx Python-domain entry in MyST: `kind` (function, class, method) `name` with `sig`, the docstring `doc`,
    the parameter table of `f`, then `extra` (markdown, or nested entries one `depth` further in)."""
    from nbdev.doclinks import NbdevLookup
    fence = ":" * (4 - depth)  # an enclosing colon fence needs more colons than the ones inside it
    body = [NbdevLookup().link_line(doc) if doc else "", param_table(f, sig), *extra]
    return "\n".join([f"{fence}{{py:{kind}}} {name}{' '.join(str(sig).split())}", *options, "", "\n\n".join(b for b in body if b), fence])


def _signature(f, bound: bool = False) -> inspect.Signature:
    "The signature of `f` (of a class: its constructor's), less its first parameter when `bound` (`self`, `cls`)."
    if inspect.isclass(f):
        try: return inspect.signature(f)
        except ValueError: f, bound = f.__init__, True  # a builtin's constructor (an exception's): `(self, /, *args, **kwargs)`
    sig = inspect.signature(f)
    return sig.replace(parameters=list(sig.parameters.values())[1:]) if bound else sig


def api_entry(obj, name: str, explained) -> str:
    """The entry of an exported function or class (with its documented public methods, as the class defines or patches
    them); `explained(*names)` links to the chapter, at the entry of the first of `names` it has."""
    doc = inspect.cleandoc(obj.__doc__ or "")  # not getdoc: a class without a docstring would show its base's
    if not inspect.isclass(obj): return py_entry("function", name, obj, _signature(obj), doc, extra=[explained(name)])
    methods = []
    for meth, v in vars(obj).items():
        f = getattr(v, "__func__", v)
        if meth.startswith("_") or not inspect.isfunction(f) or not f.__doc__: continue
        kind = {staticmethod: [":staticmethod:"], classmethod: [":classmethod:"]}.get(type(v), [])
        methods.append(py_entry("method", meth, f, _signature(f, bound=not isinstance(v, staticmethod)),
                                inspect.cleandoc(f.__doc__), kind, [explained(f"{name}.{meth}", name)], depth=1))
    return py_entry("class", name, obj, _signature(obj), doc, extra=[explained(name), *methods])


def api_page(mods: list) -> str:
    """The API reference: a Sphinx Python-domain entry (signature, docstring, parameter table, a link to the chapter)
    for every exported function and class and their public methods, by module in chapter order, in source order."""
    cfg = get_config()
    host = f"{cfg.doc_host}{cfg.doc_baseurl}/"
    out = ["# API reference", "",
           "Every exported function and class, module by module in chapter order; each entry links to the "
           "chapter that explains it."]
    for mod, doc, title, shown in mods:
        m = importlib.import_module(mod)
        def explained(*names):
            anchor = next((f"#{anchor_id(n)}" for n in names if n in shown), "")
            return f"[explained in {title}]({host}{doc}.html{anchor})"
        out += ["", f"## `{mod}`", "", f":::{{py:module}} {mod}\n:::", "", f"From the chapter [{title}]({host}{doc}.html)."]
        for name in getattr(m, "__all__", []):  # nbdev writes `__all__` in the order the notebook defines them
            obj = getattr(m, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)): continue
            out += ["", api_entry(obj, name, explained)]
    return "\n".join(out) + "\n"


def results_page(results: Path) -> str | None:
    "The evaluation tables written by `make tables` (results/*.md), or None when there are none yet."
    tables = sorted(results.glob("*.md")) if results.is_dir() else []
    if not tables: return None
    out = ["# Results tables", "", "The tables written by `make tables` (`hw5-tables`, the results chapter) from the evaluation runs (`results/`)."]
    for t in tables:
        body = t.read_text().strip()
        if not body.startswith("#"): out += ["", f"## {t.stem}"]
        out += ["", re.sub(r"^#(?=#* )", "##", body, flags=re.M)]  # each file's headings one level down
    return "\n".join(out) + "\n"


def rewrite_doc_links(out: Path, host: str):
    "nbdev's doc links point at the published site (`doc_host`): point them at the page next to them."
    for f in out.rglob("*.html"):
        s = f.read_text(encoding="utf-8")
        t = s.replace(f'href="{host}', 'href="')
        if t != s: f.write_text(t, encoding="utf-8")


def build(out: Path = None, n_workers: int = 2, quiet: bool = False) -> Path:
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    t0 = time.time()
    cfg = get_config()
    root, nbs = cfg.config_path, cfg.nbs_path
    out = Path(out or cfg.doc_path)
    refresh_quarto_yml()                        # nbs/nbdev.yml, as nbdev_docs writes it
    order = sidebar_order(nbs)                  # nbs/sidebar.yml, as nbdev_docs writes it
    mtimes = {n: (nbs / n).stat().st_mtime for n in order}
    for n in order:  # nbdev's cache trusts its folder's time: a notebook saved during the last build looks done
        if (p := root / "_proc" / n).exists() and p.stat().st_mtime < mtimes[n]: p.unlink()
    proc = proc_nbs(nbs, n_workers=n_workers)   # _proc/, exactly what Quarto would render
    # a notebook nbdev failed on keeps no (or its old) processed copy: stop rather than publish a stale page
    failed = [n for n in order if not (proc / n).exists() or (proc / n).stat().st_mtime < mtimes[n]]
    if failed: sys.exit(f"make docs: nbdev could not process {', '.join(failed)} (its error is above)")
    t1 = time.time()
    src, work = proc / "_sphinx" / "src", proc / "_sphinx"
    shutil.rmtree(src, ignore_errors=True); src.mkdir(parents=True)
    for f in proc.rglob("*"):                   # pictures and other files the notebooks link to
        rel = f.relative_to(proc)
        if f.is_file() and rel.parts[0] != "_sphinx" and f.suffix not in (".ipynb", ".yml", ".css"):
            (src / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, src / rel)
    pages = []
    for name in order:
        if not name.endswith(".ipynb"): continue
        fm, nb, shown = convert(json.loads((proc / name).read_text(encoding="utf-8")))
        doc = "index" if Path(name).stem == Path(cfg.readme_nb).stem else Path(fm.get("output-file", name)).stem
        pages.append((doc, fm, shown, default_exp(nbs / name)))
        if doc == "index": index_nb = nb
        else: (src / f"{doc}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    toc = [doc for doc, *_ in pages if doc != "index"]
    mods = module_pages(pages)
    (src / "api.md").write_text(api_page(mods), encoding="utf-8"); toc.append("api")
    res = results_page(root / "results")
    if res:
        # tables.html: the results chapter (12_results) has results.html
        (src / "tables.md").write_text(res, encoding="utf-8"); toc.append("tables")
        for f in (root / "results").iterdir():
            if f.is_file() and f.suffix != ".md": shutil.copy2(f, src / f.name)
    # the navigation, in chapter order, hangs off the home page
    index_nb["cells"].append({"cell_type": "markdown", "metadata": {},
                              "source": "```{toctree}\n:hidden:\n:maxdepth: 2\n\n" + "\n".join(toc) + "\n```"})
    (src / "index.ipynb").write_text(json.dumps(index_nb, indent=1, ensure_ascii=False), encoding="utf-8")
    (work / "pages.json").write_text(json.dumps({"pages": ["index", *toc], "modules": mods}, indent=1))

    from sphinx.cmd.build import build_main
    html = work / "html"  # MyST-NB writes next to Sphinx's output folder: keep both inside _proc/
    args = ["-b", "html", "-c", str(HERE), "-d", str(work / "doctrees"), "-E", str(src), str(html)]
    if build_main(args + (["-q"] if quiet else [])) != 0: sys.exit("make docs: sphinx-build failed")
    rewrite_doc_links(html, f"{cfg.doc_host}{cfg.doc_baseurl}/")
    shutil.rmtree(out, ignore_errors=True); shutil.move(html, out)
    print(f"docs: {len(toc) + 1} pages in {out} (nbdev processing {t1 - t0:.0f} s, Sphinx {time.time() - t1:.0f} s)")
    return out


if __name__ == "__main__":
    build()

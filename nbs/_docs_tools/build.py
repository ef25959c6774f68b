"""`make docs`: the documentation site in `_docs/`, built offline.

nbdev processes the notebooks exactly as `nbdev_docs` does (`proc_nbs` into `_proc/`: `#| hide` cells gone,
a `show_doc` entry with signature and docstring for every exported function and class, doc links). Quarto,
which renders them for `nbdev_docs`, cannot be installed from a package registry, so Sphinx with MyST-NB
renders the processed notebooks instead: it shows the outputs stored in the notebooks without running them,
parses `$...$` math and the `show_doc` markdown, and has offline search. MathJax is served from the site
itself (the `sphinx-mathjax-offline` package), so no page loads anything from the internet.

Usage: python nbs/_docs_tools/build.py   (from anywhere inside the repository)"""
import json, re, shutil, sys, time
from pathlib import Path
import yaml
from nbdev.config import get_config

HERE = Path(__file__).resolve().parent
# cell options: Quarto's (`#| echo: false`, left in the processed notebooks by nbdev) and nbdev's (`#| hide`)
_OPT = re.compile(r"^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_SRC_LINK = re.compile(r"\[source\]\((?P<url>[^)\s]+)\)\{[^}]*\}")
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


def convert(nb: dict) -> tuple:
    """A processed notebook as MyST-NB reads it: title cell, Quarto cell options as MyST-NB tags.
    Returns (front matter, notebook, the names that have a `show_doc` entry)."""
    fm, cells, shown = frontmatter(nb), [], set()
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


def module_pages(pages: list) -> list:
    "(module name, docname, title, names with a show_doc entry) for every chapter that exports a module, in order."
    cfg = get_config()
    return [(f"{cfg.lib_name}.{fm['output-file'].rsplit('.', 1)[0]}", doc, fm.get("title", doc), sorted(shown))
            for doc, fm, shown in pages if fm.get("output-file") and doc != "index"]


def api_page(mods: list) -> str:
    "The API reference: `show_doc` of every exported function and class (and their public methods), by module."
    import importlib, inspect
    from nbdev.showdoc import show_doc
    cfg = get_config()
    host = f"{cfg.doc_host}{cfg.doc_baseurl}/"
    out = ["# API reference", "",
           "Every exported function and class, module by module in chapter order; each entry links to the "
           "chapter that explains it."]
    for mod, doc, title, shown in mods:
        m = importlib.import_module(mod)
        out += ["", f"## `{mod}`", "", f"From the chapter [{title}]({host}{doc}.html)."]
        for name in getattr(m, "__all__", []):
            obj = getattr(m, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)): continue
            out += ["", showdoc_markdown(show_doc(obj, name=name)._repr_markdown_())]
            anchor = f"#{anchor_id(name)}" if name in shown else ""
            out += ["", f"[explained in {title}]({host}{doc}.html{anchor})"]
            if inspect.isclass(obj):  # its documented public methods, as the class defines (or patches) them
                for meth, f in vars(obj).items():
                    f = getattr(f, "__func__", f)
                    if meth.startswith("_") or not inspect.isfunction(f) or not f.__doc__: continue
                    md = show_doc(getattr(obj, meth), name=f"{name}.{meth}", title_level=4)._repr_markdown_()
                    out += ["", showdoc_markdown(md)]
    return "\n".join(out) + "\n"


def results_page(results: Path) -> str | None:
    "The evaluation tables written by `make tables` (results/*.md), or None when there are none yet."
    tables = sorted(results.glob("*.md")) if results.is_dir() else []
    if not tables: return None
    out = ["# Results", "", "The tables written by `make tables` from the evaluation runs (`results/`)."]
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
        pages.append((doc, fm, shown))
        if doc == "index": index_nb = nb
        else: (src / f"{doc}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    toc = [doc for doc, *_ in pages if doc != "index"]
    mods = module_pages(pages)
    (src / "api.md").write_text(api_page(mods), encoding="utf-8"); toc.append("api")
    res = results_page(root / "results")
    if res:
        (src / "results.md").write_text(res, encoding="utf-8"); toc.append("results")
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

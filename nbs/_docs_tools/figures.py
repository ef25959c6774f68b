"""`make figures`: run chapter notebooks in place with their full configuration and keep small outputs,
so that the docs site (and GitHub) show the pictures of a real run.

Each notebook runs top to bottom in nbdev's own executor (execnb), without `IN_TEST`, skipping the cells
`nbdev_test` skips (`#| eval: false`, and the `tst_flags` cells unless named with `--flags`; `slow` runs by
default, `cuda` where a GPU is present). A widget cell (an `#| eval: false` cell with an `ipywidgets.interact`
explorer) runs too, its function called once at the widgets' starting values: what it draws is stored as the
cell's output, so the site shows the explorer's first state and JupyterLab shows it until the cell is run.
Pictures wider than `--max-px` are scaled down and every PNG is re-encoded (a 256-colour palette when that is
still over `--max-kb`); progress bars keep their last state and long text outputs are cut. Then `nbdev_clean`
tidies the notebook as for a commit.

Without NOTEBOOK it runs every notebook in nbs/ and also copies the sample grid of the last `make demo`
(outputs/demo/samples.png), shrunk the same way, to nbs/images/demo_samples.png for the home page.
Regenerating a notebook from its source drops its outputs again: run this when the notebooks are final.

Usage: python nbs/_docs_tools/figures.py [NOTEBOOK ...] [--flags "slow cuda"] [--max-px 900] [--max-kb 120]"""
import argparse, base64, io, os, re, sys, time
from unittest import mock
from pathlib import Path
from PIL import Image

MAX_TEXT_LINES = 60
_WIDGET = re.compile(r"\binteract\b")


def static_interact(__interact_f=None, **kwargs):
    """`ipywidgets.interact` for a run with no front end: the same controls are built, so abbreviations and starting
    values mean what they mean in JupyterLab, and the function is called once at their values, as the live widget
    first is. Used as `interact(f, ...)`, or as a decorator with or without arguments; returns the function."""
    import ipywidgets
    from IPython.display import display
    def show(f):
        # manual: the widget does not call `f` itself, inside an Output widget that a stored notebook keeps as widget
        # state rather than a picture; `_kwarg` is the parameter each control feeds, as ipywidgets' own update reads it
        w = ipywidgets.interactive(f, {"manual": True}, **kwargs)
        if (r := f(**{c._kwarg: c.get_interact_value() for c in w.kwargs_widgets})) is not None: display(r)
        return f
    return show if __interact_f is None else show(__interact_f)


def default_flags() -> str:
    import torch
    return "slow cuda" if torch.cuda.is_available() else "slow"


def shrink_png(b64: str, max_px: int, max_kb: int) -> str:
    "A base64 PNG scaled to at most `max_px` wide, re-encoded, and palettised if still over `max_kb`."
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    if im.width > max_px: im = im.resize((max_px, round(im.height * max_px / im.width)), Image.LANCZOS)
    def enc(img):
        buf = io.BytesIO(); img.save(buf, "PNG", optimize=True); return buf.getvalue()
    data = enc(im)
    if len(data) > max_kb * 1024:
        data = min(data, enc(im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)), key=len)
    return base64.b64encode(data).decode()


def collapse_progress(text: str) -> str:
    "Terminal text as it finally looks: each `\\r`-rewritten line keeps its last state; long text is cut."
    lines = [l.rsplit("\r", 1)[-1] if "\r" in l.rstrip("\r") else l.rstrip("\r") for l in text.split("\n")]
    if len(lines) > MAX_TEXT_LINES:
        lines = lines[:MAX_TEXT_LINES // 2] + [f"... ({len(lines) - MAX_TEXT_LINES} lines cut)"] + lines[-MAX_TEXT_LINES // 2:]
    return "\n".join(lines)


def small_outputs(outputs: list, max_px: int, max_kb: int) -> list:
    res = []
    for o in outputs:
        if o.get("output_type") == "stream":
            o["text"] = collapse_progress("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
        data = o.get("data")
        if data is not None:
            for k in [k for k in data if k.startswith("application/vnd.jupyter.widget")]: del data[k]
            if not data: continue
            if "image/png" in data:
                png = data["image/png"]
                data["image/png"] = shrink_png("".join(png) if isinstance(png, list) else png, max_px, max_kb)
                o.get("metadata", {}).pop("image/png", None)  # retina sizes no longer apply
            if "text/plain" in data and len(data) > 1: data["text/plain"] = data["text/plain"][:2000]
        res.append(o)
    return res


def run_notebook(fn: Path, flags: set, max_px: int, max_kb: int) -> dict:
    "Execute `fn` in place (full configuration) and keep its outputs small; returns what it did."
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import extract_directives
    skip = set(get_config().get("tst_flags", "").split()) - flags

    def _skip(cell):
        if cell.cell_type != "code": return True
        d = extract_directives(cell, remove=False)
        off = d.get("eval:", [""])[0].lower() == "false" and not _WIDGET.search(cell.source)
        return off or bool(skip & d.keys())

    nb = read_nb(fn)
    os.environ.pop("IN_TEST", None)  # the full configuration: the point is the real pictures
    t0 = time.time()
    shell = CaptureShell(fn, mpl_format="png")
    with working_directory(fn.parent), mock.patch("ipywidgets.interact", static_interact):
        try: shell.run_all(nb, exc_stop=True, preproc=_skip)
        except Exception:
            sys.stderr.write(shell.prettytb(fname=fn) + "\n")
            raise SystemExit(f"make figures: {fn.name} failed; it was left unchanged")
    for c in nb.cells:
        if c.cell_type == "code": c.outputs = small_outputs(c.get("outputs", []), max_px, max_kb)
    write_nb(nb, fn)
    from nbdev.clean import nbdev_clean
    nbdev_clean.__wrapped__(fname=str(fn))
    pngs = [len(base64.b64decode(o["data"]["image/png"])) for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "image/png" in o.get("data", {})]
    return dict(name=fn.name, seconds=time.time() - t0, images=len(pngs), max_png_kb=max(pngs, default=0) / 1024,
                nb_kb=fn.stat().st_size / 1024)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every notebook in nbs/)")
    p.add_argument("--flags", default=None, help="tst_flags cells to run too (default: slow, and cuda with a GPU)")
    p.add_argument("--max-px", type=int, default=900, help="widest picture kept, in pixels")
    p.add_argument("--max-kb", type=int, default=120, help="PNGs over this are palettised")
    a = p.parse_args(argv)
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    fns = [f.resolve() for f in a.notebooks] or sorted(Path(f) for f in nbglob(get_config().nbs_path))
    for f in fns:
        if not f.is_file(): p.error(f"notebook not found: {f}")
    flags = set((default_flags() if a.flags is None else a.flags).split())
    cfg = get_config()
    demo, grid = cfg.config_path / "outputs" / "demo" / "samples.png", cfg.nbs_path / "images" / "demo_samples.png"
    if not a.notebooks and demo.is_file():
        grid.parent.mkdir(exist_ok=True)
        grid.write_bytes(base64.b64decode(shrink_png(base64.b64encode(demo.read_bytes()).decode(), a.max_px, a.max_kb)))
        print(f"home page picture: {demo} -> {grid}")
    print(f"{'notebook':<28}{'seconds':>8}{'images':>8}{'largest PNG kB':>16}{'notebook kB':>13}")
    for f in fns:
        r = run_notebook(f, flags, a.max_px, a.max_kb)
        print(f"{r['name']:<28}{r['seconds']:>8.0f}{r['images']:>8}{r['max_png_kb']:>16.0f}{r['nb_kb']:>13.0f}", flush=True)


if __name__ == "__main__":
    main()

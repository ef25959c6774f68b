"""Before/after screenshots of the docs site: the top of one chapter page and one API entry, as a reader sees them.

For each site folder given (a `make docs` output, `_docs/`), it opens two pages in headless Chromium (Debian's,
through Playwright) from file:// URLs at 1280 pixels wide, waits for MathJax, and saves:

- `chapter_page_LABEL.png`: the top of the forward-process chapter (`forward.html`): title, story, first equations;
- `api_entry_LABEL.png`: the entry of `NoiseSchedule.q_sample` on `api.html`, cropped to it. The site now writes
  a Sphinx Python-domain entry (`<dt id="hw5_diffusion.forward.NoiseSchedule.q_sample">`); older sites have a
  section found by nbdev's anchor (`#noiseschedule.q_sample`). Either is found.

LABEL is `before` or `after`, from the option that named the folder. A picture over `--max-kb` is palettised.

Usage: python benchmarks/screenshots.py [--before OLD_SITE] [--after NEW_SITE] [--out nbs/images]
       e.g. git worktree add --detach /tmp/old dc63897 && (cd /tmp/old && PYTHONPATH=$PWD python nbs/_docs_tools/build.py)
            python benchmarks/screenshots.py --before /tmp/old/_docs --after _docs"""
import argparse, io, sys
from pathlib import Path
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1280
PAD = 12  # pixels kept around a cropped entry

# the element to crop to for an API entry `name` (`Class.method`), on either kind of site
_ENTRY = """name => {
  const dt = Array.from(document.querySelectorAll('dt[id]')).find(e => e.id.endsWith('.' + name));
  const el = dt ? dt.closest('dl') : document.getElementById(name.toLowerCase())?.closest('section');
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};
}"""


def small_png(png: bytes, max_kb: int) -> bytes:
    "`png` as is, or palettised (256 colours) when it is over `max_kb`."
    if len(png) <= max_kb * 1024: return png
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    return min(png, buf.getvalue(), key=len)


def shoot(site: Path, label: str, out: Path, height: int, entry: str, max_kb: int) -> list:
    "The two screenshots of `site`, saved in `out` with `label`; returns their paths."
    from playwright.sync_api import sync_playwright
    saved = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WIDTH, "height": height})
        def load(name):
            page.goto((site / name).resolve().as_uri(), wait_until="load")
            page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
            page.evaluate("() => document.fonts.ready.then(() => null)")
        def save(png, name):
            f = out / f"{name}_{label}.png"
            f.write_bytes(small_png(png, max_kb)); saved.append(f)
        load("forward.html")
        save(page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": height}), "chapter_page")
        load("api.html")
        box = page.evaluate(_ENTRY, entry)
        if box is None: sys.exit(f"{site / 'api.html'}: no entry for {entry}")
        clip = {"x": max(box["x"] - PAD, 0), "y": max(box["y"] - PAD, 0),
                "width": min(box["width"] + 2 * PAD, WIDTH), "height": box["height"] + 2 * PAD}
        save(page.screenshot(clip=clip, full_page=True), "api_entry")
        browser.close()
    return saved


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, help="the site folder of the earlier build")
    p.add_argument("--after", type=Path, help="the site folder of the current build (e.g. _docs)")
    p.add_argument("--out", type=Path, default=ROOT / "nbs" / "images", help="where the PNGs go")
    p.add_argument("--height", type=int, default=1000, help="how much of the chapter page's top is kept, in pixels")
    p.add_argument("--entry", default="NoiseSchedule.q_sample", help="the API entry to crop to")
    p.add_argument("--max-kb", type=int, default=400, help="PNGs over this are palettised")
    a = p.parse_args(argv)
    sites = [(label, d) for label, d in (("before", a.before), ("after", a.after)) if d]
    if not sites: p.error("name at least one site folder: --before and/or --after")
    for label, d in sites:
        if not (d / "forward.html").is_file() or not (d / "api.html").is_file():
            p.error(f"{d} is not a built docs site (no forward.html and api.html): run `make docs` there")
    a.out.mkdir(parents=True, exist_ok=True)
    for label, d in sites:
        for f in shoot(d, label, a.out, a.height, a.entry, a.max_kb):
            w, h = Image.open(f).size
            print(f"{label}: {f} ({w}x{h}, {f.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()

"""`make readme`: README.md generated from nbs/index.ipynb (nbdev's `readme_nb`), which is also the docs home page.

`nbdev_readme` does this with Quarto; this script needs nothing but the notebook: markdown cells as they
are, code cells as fenced code followed by their text outputs, `#| hide` cells left out, and links to files
in nbs/ (pictures) made relative to the repository root. `--check` exits 1 when README.md differs.

Usage: python nbs/_docs_tools/readme.py [--check]"""
import json, re, sys
from pathlib import Path
from nbdev.config import get_config
from build import split_options  # the same cell options as the docs pages

_LINK = re.compile(r"(!?\[[^\]]*\]\()(?!https?:|#|/|mailto:)([^)\s]+)(\))")


def _text(o: dict) -> str:
    if o["output_type"] == "stream": t = o["text"]
    else: t = o.get("data", {}).get("text/markdown") or o.get("data", {}).get("text/plain", "")
    return "".join(t).rstrip("\n") if isinstance(t, list) else t.rstrip("\n")


def readme_text(nb_path: Path, nbs_rel: str) -> str:
    "The README for the notebook at `nb_path`; `nbs_rel` is nbs/ relative to the repository root."
    blocks = []
    for c in json.loads(nb_path.read_text(encoding="utf-8"))["cells"]:
        src = "".join(c["source"]).strip("\n")
        if c["cell_type"] == "markdown":
            blocks.append(_LINK.sub(lambda m: f"{m[1]}{nbs_rel}/{m[2]}{m[3]}", src))
        elif c["cell_type"] == "code":
            opts, code = split_options(src)
            code = code.strip("\n")
            if opts.get("hide") or opts.get("include") == "false": continue
            if code and opts.get("echo") != "false": blocks.append(f"```python\n{code}\n```")
            if opts.get("output") == "false": continue
            for o in c.get("outputs", []):
                if t := _text(o):
                    blocks.append(t if o.get("data", {}).get("text/markdown") else f"```\n{t}\n```")
    return "\n\n".join(b for b in blocks if b.strip()) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cfg = get_config()
    readme = cfg.config_path / "README.md"
    text = readme_text(cfg.nbs_path / cfg.readme_nb, cfg.nbs_path.relative_to(cfg.config_path).as_posix())
    if "--check" in argv:
        if readme.read_text(encoding="utf-8") != text:
            sys.exit(f"README.md differs from what {cfg.nbs_path.name}/{cfg.readme_nb} gives: run `make readme` and commit both")
        print("README.md matches", cfg.readme_nb)
    else:
        readme.write_text(text, encoding="utf-8"); print("wrote README.md from", cfg.readme_nb)


if __name__ == "__main__":
    main()

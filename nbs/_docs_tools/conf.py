# Sphinx configuration for `make docs` (nbs/_docs_tools/build.py); the project's facts come from settings.ini.
import importlib, inspect
from nbdev.config import get_config

cfg = get_config()
project = cfg.title
author = cfg.author
copyright = cfg.copyright
version = release = cfg.version

extensions = ["myst_nb", "sphinx-mathjax-offline", "sphinx.ext.linkcode"]
root_doc = "index"
exclude_patterns = ["**.ipynb_checkpoints"]

# the notebooks keep the outputs of a real run: show them, never execute while building the docs
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
nb_ipywidgets_js = {}  # widget outputs would pull require.js from a CDN; the stored text/png outputs are shown
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None),
                              ("html", "application/vnd.jupyter.widget-state+json", None)]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_dmath_double_inline = True
# show_doc entries sit at heading level 3 under a chapter title, as in nbdev's Quarto pages
suppress_warnings = ["myst.header"]

# the API reference (api.md, written by build.py): entries sit under their module's heading, so the module prefix
# would only repeat it; a signature longer than a line puts one parameter per line
add_module_names = False
python_maximum_signature_line_length = 88
toc_object_entries_show_parents = "hide"


def linkcode_resolve(domain, info):
    "The GitHub source link of an API entry, as nbdev's `show_doc` gives (nbdev's own lookup has no line for methods)."
    from nbdev.doclinks import NbdevLookup
    if domain != "py" or not info.get("module"): return None
    obj = importlib.import_module(info["module"])
    for a in info["fullname"].split("."): obj = getattr(obj, a)
    entry = NbdevLookup()[f"{info['module']}.{info['fullname']}"]
    try: line = inspect.getsourcelines(inspect.unwrap(obj))[1]
    except (OSError, TypeError): return None  # no source: a namedtuple
    return f"{entry[2]}#L{line}" if isinstance(entry, tuple) else None

# MathJax 3.2 (CommonHTML output, its web fonts) copied into _docs/_static/mathjax by sphinx-mathjax-offline:
# the pages load nothing from the internet
html_static_path = ["static"]

html_theme = "furo"
html_title = cfg.title
html_css_files = ["custom.css"]
html_copy_source = False
html_show_sourcelink = False
html_favicon = "static/favicon.png"

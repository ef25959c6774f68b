# Sphinx configuration for `make docs` (nbs/_docs_tools/build.py); the project's facts come from settings.ini.
from nbdev.config import get_config

cfg = get_config()
project = cfg.title
author = cfg.author
copyright = cfg.copyright
version = release = cfg.version

extensions = ["myst_nb", "sphinx-mathjax-offline"]
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

# MathJax 3.2 (CommonHTML output, its web fonts) copied into _docs/_static/mathjax by sphinx-mathjax-offline:
# the pages load nothing from the internet
html_static_path = ["static"]

html_theme = "furo"
html_title = cfg.title
html_css_files = ["custom.css"]
html_copy_source = False
html_show_sourcelink = False
html_favicon = "static/favicon.png"

# Two commands do everything on a fresh clone: `make demo` and `make test`.
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# Two notebooks at a time on two cores: one BLAS thread each avoids oversubscription.
NB_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: install docs-env demo student test test-nbs test-py export cli-help clean-nbs clean tables docs test-docs browser sandbox figures readme gpu

install: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

## The main job: train a small DDPM on the built-in digits (CPU, minutes) and write outputs/demo/.
demo: install
	$(BIN)/hw5-train --data digits --out outputs/demo --overwrite
	@echo "demo outputs: $(CURDIR)/outputs/demo (samples.png, loss.png, model.safetensors, config.json)"

## The seed's results tables on the built-in digits (CPU, within an hour on 2 cores): results/digits.md, .json, plots.
## On a GPU: $(BIN)/hw5-tables --preset imagenet100-pixel --ckpt DIR --ref /data/imagenet100
tables: install
	$(BIN)/hw5-tables --preset digits --out results

## The student edition in release/: every chapter with its solutions stubbed and hidden tests removed, and what
## builds the student's package from their notebooks (nbdev_export there). Grade a student: hw5-grade FOLDER.
student: install
	$(BIN)/hw5-release --out release

## All tests: every notebook run top to bottom in a kernel, pytest (library == notebooks, clean notebooks, ...), the docs site.
test: install test-nbs test-py test-docs

## Run All on every notebook (IN_TEST=1, every cell, nbdev_test's skipped ones too), then a clean working tree.
test-nbs: install
	$(NB_ENV) $(PY) tests/run_notebooks.py --workers 2

## Two test files at a time (pytest-xdist, a file's tests stay together in one process), one BLAS thread each, as the notebooks.
test-py: install sandbox browser
	$(NB_ENV) $(BIN)/pytest -q -n 2 --dist loadfile tests --ignore=tests/test_docs.py

## The docs site (_docs/), built offline and checked page by page in headless Chromium.
test-docs: docs browser
	$(BIN)/pytest -q tests/test_docs.py

## The docs site in _docs/: nbdev's processed notebooks rendered by Sphinx + MyST-NB (Quarto-free, offline).
docs: docs-env
	$(PY) nbs/_docs_tools/build.py

## Our own .venv is created and installed as usual; an environment passed as VENV=... is checked, never installed into.
ifeq ($(VENV),.venv)
docs-env: install
else
docs-env:
	@# what the build imports, imported as it does: Sphinx loads the extensions of conf.py by importlib under those names
	@$(PY) -c "import importlib; [importlib.import_module(m) for m in ('hw5_diffusion', 'nbdev', 'sphinx', 'myst_nb', 'furo', 'sphinx-mathjax-offline')]" 2>/dev/null || { \
	  echo "make docs: $(VENV) lacks hw5_diffusion or its docs tools, and make does not install into an environment it did not create."; \
	  echo "To build the docs with it, install them yourself: $(PY) -m pip install -e '.[dev]'"; exit 1; }
endif

## Run every notebook (or NBS="nbs/01_forward.ipynb ...") in full and keep its pictures, small, for the docs.
figures: install
	$(NB_ENV) $(PY) nbs/_docs_tools/figures.py $(NBS)

## README.md from nbs/index.ipynb (a test fails when they differ).
readme: install
	$(PY) nbs/_docs_tools/readme.py

## Debian's Chromium for the browser check, where we are root with apt-get (elsewhere that check is skipped).
browser:
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium: the browser checks will be skipped"

## Debian's bubblewrap for `hw5-grade --sandbox` and its tests, where we are root with apt-get (elsewhere those tests fail: install bwrap).
sandbox:
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "could not install bubblewrap: hw5-grade --sandbox and its tests need bwrap"

## The GPU checks (a CUDA machine): every benchmark with --device cuda, and the trainer in fp16/bf16 and at 128².
gpu: install
	PATH=$(CURDIR)/$(BIN):$$PATH bash benchmarks/gpu.sh

## Developer helpers
export: install
	$(BIN)/nbdev_export
	$(MAKE) cli-help

## Every command's --help text, stored for the launcher (hw5_diffusion/cli_help.json); a test says when it is stale.
cli-help: install
	$(PY) -c "from hw5_diffusion.launch import write_help; print('wrote', write_help())"

clean-nbs: install
	$(BIN)/nbdev_clean

clean:
	rm -rf outputs _docs _proc .pytest_cache

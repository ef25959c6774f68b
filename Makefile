# Two commands do everything on a fresh clone: `make demo` and `make test`.
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# Two notebooks at a time on two cores: one BLAS thread each avoids oversubscription.
NB_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: install demo test test-nbs test-py export clean-nbs clean

install: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

## The main job: train a small DDPM on the built-in digits (CPU, minutes) and write outputs/demo/.
demo: install
	$(BIN)/hw5-train --data digits --out outputs/demo
	@echo "demo outputs: $(CURDIR)/outputs/demo (samples.png, loss.png, model.safetensors, config.json)"

## All tests: library == notebooks, clean notebooks, every notebook under nbdev_test, then pytest.
test: install test-nbs test-py

test-nbs: install
	cd nbs && $(NB_ENV) ../$(BIN)/nbdev_test --n_workers 2 --do_print

test-py: install
	$(BIN)/pytest -q tests

## Developer helpers
export: install
	$(BIN)/nbdev_export

clean-nbs: install
	$(BIN)/nbdev_clean

clean:
	rm -rf outputs _docs _proc .pytest_cache

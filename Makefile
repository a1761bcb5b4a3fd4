# Two commands do everything on a fresh machine with python3 and make:
#   make demo   create .venv if absent, install, train + evaluate + probe + plot the quickstart
#   make test   create .venv if absent, install the dev extra, run the fast test suite
#   make reproduce   train what the papers' claims need and print their verdicts (docs/results)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-slow reproduce lint bench clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m icl_regression.demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto

reproduce: $(VENV)/.installed
	$(PY) -m icl_regression.reproduce

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -n auto -m slow

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(PY) benchmarks/train_throughput.py

clean-venv:
	rm -rf $(VENV)

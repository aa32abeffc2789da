# bakeoff — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
BAKEOFF := $(VENV)/bin/bakeoff
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install install-dev demo ui test test-slow lint docs clean chromium bench bench-console

help:
	@echo "make demo      set up .venv and run recipes/quickstart.yaml on the embedded model"
	@echo "make ui        open the console (bakeoff ui) on http://localhost:8501"
	@echo "make test      set up .venv with test extras and run the default test suite"
	@echo "make test-slow run every slow (training) test"
	@echo "make lint      ruff"
	@echo "make docs      regenerate docs/recipe.schema.json and docs/recipe-reference.md from the schema"
	@echo "make bench     run every benchmark against the hand-written way and rewrite docs/benchmarks.md (~20 min)"

# torch first, pinned: 2.13.0 is the local CPU build; anything else pulls gigabytes of CUDA wheels.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BAKEOFF) run recipes/quickstart.yaml

ui: install
	$(BAKEOFF) ui

# Benchmarks: bakeoff vs hand-written transformers/peft/trl/chromadb scripts, side by side (never run by CI).
bench: install-dev
	$(PY) -m bench

bench-console: install-dev
	$(PY) bench/bench_console.py

# The console's browser test drives Debian's chromium; install it only when it is missing (needs root/apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || \
		echo "chromium could not be installed: the browser test will be skipped"

test: install-dev chromium
	$(VENV)/bin/ruff check bakeoff agents eval ui tests bench
	$(PY) -m pytest

test-slow: install-dev
	$(PY) -m pytest -m slow

lint: install-dev
	$(VENV)/bin/ruff check bakeoff agents eval ui tests bench

docs: install
	$(BAKEOFF) schema > docs/recipe.schema.json
	$(BAKEOFF) schema --markdown > docs/recipe-reference.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

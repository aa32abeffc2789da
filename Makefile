# bakeoff — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
BAKEOFF := $(VENV)/bin/bakeoff
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install install-dev demo test test-slow lint docs clean

help:
	@echo "make demo      set up .venv and run recipes/quickstart.yaml on the embedded model"
	@echo "make test      set up .venv with test extras and run the default test suite"
	@echo "make test-slow run every slow (training) test"
	@echo "make lint      ruff"
	@echo "make docs      regenerate docs/recipe.schema.json and docs/recipe-reference.md from the schema"

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

test: install-dev
	$(VENV)/bin/ruff check bakeoff agents eval ui tests
	$(PY) -m pytest

test-slow: install-dev
	$(PY) -m pytest -m slow

lint: install-dev
	$(VENV)/bin/ruff check bakeoff agents eval ui tests

docs: install
	$(BAKEOFF) schema > docs/recipe.schema.json
	$(BAKEOFF) schema --markdown > docs/recipe-reference.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

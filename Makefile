# bakeoff — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
BAKEOFF := $(VENV)/bin/bakeoff
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install install-dev llama demo ui test test-slow lint docs clean chromium golang wordnet bench bench-console lock upgrade

help:
	@echo "make demo      set up .venv and run recipes/quickstart.yaml on the embedded model"
	@echo "make ui        open the console (bakeoff ui) on http://localhost:8501"
	@echo "make test      set up .venv with test extras and llama.cpp, and run the default test suite"
	@echo "make llama     build and install llama.cpp (embedded-gguf: models, embedded judge, GGUF export)"
	@echo "make lock      record the current .venv in requirements/ (make upgrade: newest allowed versions)"
	@echo "make test-slow run every slow (training) test"
	@echo "make lint      ruff"
	@echo "make docs      regenerate docs/recipe.schema.json and docs/recipe-reference.md from the schema"
	@echo "make bench     run every benchmark against the hand-written way and rewrite docs/benchmarks.md (~20 min)"

# Installs come from the lock (requirements/, written by `make lock`): `pip install --no-deps -r` installs
# exactly the tested versions, torch==2.13.0 (the local CPU build: any other torch pulls gigabytes of CUDA wheels)
# among them. demo.txt leaves out llama.cpp (llama-cpp-python, a compile): `make llama` builds it, `make test`
# needs it. tests/test_install.py checks that the environment is the lock.
LOCK       := requirements/lock.txt
DEMO_LOCK  := requirements/demo.txt
# -qq: errors only. An exact install has nothing to warn about but this machine's pip.conf indexes that lack a
# package and setuptools' notes on package-data folders (the editable build), a screen of "WARNING" lines.
PIP_EXACT  := $(PIP) install -qq --no-deps
# A flaky network (a CI log: "Download failed after 6 attempts ... 48.5 MB/92.9 MB" for the 93 MB embedded model)
# should cost a retry, not the run: pip resumes a cut download up to PIP_RESUME_RETRIES times, retries a failed
# connection PIP_RETRIES times, and PIP_TRY runs the whole install up to 3 times (what is already installed is
# skipped on the next try). pip reads these from the environment; an older pip ignores the options it lacks.
export PIP_RETRIES ?= 10
export PIP_RESUME_RETRIES ?= 20
export PIP_TIMEOUT ?= 60
PIP_TRY_PAUSE ?= 15
PIP_TRY    = for try in 1 2 3; do $(1) && break; [ $$try = 3 ] && exit 1; \
	echo "pip failed (try $$try of 3); again in $(PIP_TRY_PAUSE) s"; sleep $(PIP_TRY_PAUSE); done

# llama.cpp, built once per flag set into a wheel cache of its own (pip's wheel cache is keyed by the sdist alone,
# so it would hand back a build made with other flags, e.g. a native one). Portable x86-64-v3 CPU flags (AVX2,
# FMA, F16C, BMI2; no AVX-512, no AMX: a native build on an AMX CPU crashes in ggml_backend_amx_mul_mat, and a
# native wheel in a shared cache breaks on an older CPU), no multimodal library (LLAVA_BUILD), and no
# llama.cpp "common" library (requirements/llama-cpp-lean.cmake): what the Python package loads, nothing else.
# Measured in docs/benchmarks.md ("Install"). LLAMA_CMAKE_ARGS=... make llama builds another flag set beside it.
LLAMA_VERSION    := $(shell sed -n 's/^llama-cpp-python==//p' $(LOCK))
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/requirements/llama-cpp-lean.cmake
WHEELHOUSE       ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bakeoff/wheels
# The cache key: version, flags (without this checkout's path) and the hook file's code (not its comments).
LLAMA_BUILD_ID   := $(shell { echo '$(LLAMA_VERSION) $(subst $(CURDIR),,$(LLAMA_CMAKE_ARGS))'; \
	grep -v '^\#' requirements/llama-cpp-lean.cmake; } | sha256sum | cut -c1-12)
LLAMA_WHEELS     := $(WHEELHOUSE)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_BUILD_ID)

$(VENV)/.installed: $(DEMO_LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call PIP_TRY,$(PIP_EXACT) $$(grep -E '^(pip|setuptools|wheel)==' $(LOCK)))  # the installer first, then the rest
	$(call PIP_TRY,$(PIP_EXACT) -r $(DEMO_LOCK))
	$(PIP_EXACT) -e .
	touch $@

# The wheel: built in a temporary folder and renamed, so an interrupted build is never taken for a finished one.
$(LLAMA_WHEELS):
	@echo "Building llama.cpp (llama-cpp-python $(LLAMA_VERSION)) once, with portable CPU flags: about 2 minutes on 2 idle cores."
	@rm -rf $@.tmp.$$$$ && mkdir -p $(WHEELHOUSE) && \
	CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' FORCE_CMAKE=1 $(PYTHON) -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
		-w $@.tmp.$$$$ llama-cpp-python==$(LLAMA_VERSION) > $@.log 2>&1 \
		|| { tail -n 40 $@.log; echo "llama.cpp build failed; full log: $@.log"; rm -rf $@.tmp.$$$$; exit 1; }; \
	mv -T $@.tmp.$$$$ $@ 2>/dev/null || rm -rf $@.tmp.$$$$

# --force-reinstall: an environment may hold a llama-cpp-python of the same version built with other flags.
$(VENV)/.installed-llama: $(VENV)/.installed $(LOCK) | $(LLAMA_WHEELS)
	$(PIP_EXACT) --force-reinstall --no-index --find-links $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

# Everything `make test` needs, and nothing else: packages the lock does not name are removed.
$(VENV)/.installed-dev: $(VENV)/.installed-llama $(LOCK)
	$(call PIP_TRY,$(PIP_EXACT) -r $(LOCK))
	$(PY) requirements/lock.py --strays | xargs -r $(PIP) uninstall -q -y
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
llama: $(VENV)/.installed-llama

demo: install
	$(BAKEOFF) run recipes/quickstart.yaml
	@test -f $(VENV)/.installed-llama || { echo "Not installed yet: llama.cpp, for embedded-gguf: models, the embedded judge's"; \
		echo "fast path and GGUF export. 'make llama' builds it (about 2 minutes, once)."; }

# The lock: `make lock` records the current .venv (after a `pip install -U ...` of your own and a green make test);
# `make upgrade` rebuilds .venv with the newest versions pyproject.toml allows and records that. Then `make test`,
# and commit requirements/ if it passes (README "Upgrading dependencies").
lock:
	$(PY) requirements/lock.py

upgrade: | $(LLAMA_WHEELS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.13.0
	$(PIP_EXACT) --no-index --find-links $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(PIP) install -q -e ".[dev]"
	$(PY) requirements/lock.py
	@echo "requirements/ now holds the newest allowed versions: run make test, and commit requirements/ if it passes."

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

# The Go-engine template test builds a small Go program with Debian's golang-go; installed when missing.
golang:
	@command -v go >/dev/null 2>&1 || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go) || \
		echo "golang-go could not be installed: the Go template test will be skipped"

# METEOR reads Debian's WordNet 3.0 (NLTK's own download needs a network); install it only when it is missing.
wordnet:
	@test -f /usr/share/wordnet/data.noun || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wordnet-base) || \
		echo "wordnet-base could not be installed: the METEOR tests will be skipped"

test: install-dev chromium golang wordnet
	$(VENV)/bin/ruff check bakeoff agents eval ui tests bench requirements
	$(PY) -m pytest

test-slow: install-dev
	$(PY) -m pytest -m slow

lint: install-dev
	$(VENV)/bin/ruff check bakeoff agents eval ui tests bench requirements

docs: install
	$(BAKEOFF) schema > docs/recipe.schema.json
	$(BAKEOFF) schema --markdown > docs/recipe-reference.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

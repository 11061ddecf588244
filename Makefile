# Stable LM 2 1.6B companion. Every target makes .venv from the full lock when it is missing or stale.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PRESET  ?= cpu
# VARIANT=cpu (default): requirements.lock, torch's CPU wheel from the folder WHEELS (see ci/lock.py);
# VARIANT=cuda: requirements-cuda.lock, PyPI's CUDA build of torch (GPU nodes: `make venv VARIANT=cuda`)
VARIANT ?= cpu
LOCK    := $(if $(filter cuda,$(VARIANT)),requirements-cuda.lock,requirements.lock)
WHEELS  ?= /opt/wheels

.PHONY: report test lab bench clean venv chromium lint lock lock-check

# Every package from the lock, hash-checked (pip refuses anything unpinned or with another hash);
# --no-deps because the lock is already the whole resolved set (pip's secure-install recipe; pip
# would otherwise ask for each `pkg[extra]` a dependency names to be pinned again); the project
# itself editable, built with the locked setuptools; then pip check proves the set is consistent.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --require-hashes --no-deps $(if $(filter cpu,$(VARIANT)),$(if $(wildcard $(WHEELS)),--find-links $(WHEELS))) -r $(LOCK)
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	$(PY) -m stablelm2.quantization.converter install  # llama.cpp's HF→GGUF converter, from the llama-cpp-python sdist
	$(PY) -m stablelm2.training.launch check-tools  # the paper's launch files through DeepSpeed, accelerate, bash; builds DeepSpeed's CPU op once
	cp $(LOCK) $(VENV)/installed.lock
	touch $(STAMP)

venv: $(STAMP)

## make report: run the chapters of the cpu preset whose inputs changed (FORCE=1: all), render
## build/report/index.html, copy figures/, check that no page shows machine paths or Python warnings
report: $(STAMP)
	$(PY) -m stablelm2 run --preset $(PRESET) $(if $(FORCE),--force); status=$$?; \
	$(PY) -m stablelm2 report --preset $(PRESET) $(if $(filter cpu,$(PRESET)),--figures figures) \
	  && $(PY) ci/check_pages.py build/report && exit $$status

## make test: lint, type check, notebook hygiene, the test suite (smoke preset), report in headless Chromium
test: $(STAMP) chromium
	$(PY) ci/lock.py check
	$(PY) -m pip check
	$(PY) -m ruff check src tests ci
	$(PY) -m mypy  # src/stablelm2, configured in pyproject.toml [tool.mypy]
	$(PY) ci/check_notebooks.py
	$(PY) -m pytest -q

## make lock: recompile requirements.lock and requirements-cuda.lock from requirements.txt (needs the index;
## keeps locked versions unless UPGRADE=1); run it after every edit of requirements.txt
lock: $(STAMP)
	$(PY) ci/lock.py compile --variant all --wheels $(WHEELS) $(if $(UPGRADE),--upgrade)

lock-check: $(STAMP)
	$(PY) ci/lock.py check

chromium:
	bash ci/ensure_chromium.sh

lint: $(STAMP)
	$(PY) -m ruff check src tests ci

## make lab: JupyterLab on notebooks/ with the project's venv as the kernel
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

## make bench: the benchmark suite → build/bench/results.json
bench: $(STAMP)
	$(PY) -m stablelm2 bench

clean:
	rm -rf build

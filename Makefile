# Stable LM 2 1.6B companion. Every target makes .venv from requirements.txt when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PRESET ?= cpu

.PHONY: report test lab bench clean venv chromium lint

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m stablelm2.quantization.converter install  # llama.cpp's HF→GGUF converter, from the llama-cpp-python sdist
	touch $(STAMP)

venv: $(STAMP)

## make report: run every chapter at the cpu preset, render build/report/index.html, copy figures/
report: $(STAMP)
	$(PY) -m stablelm2 run --preset $(PRESET); status=$$?; \
	$(PY) -m stablelm2 report --preset $(PRESET) $(if $(filter cpu,$(PRESET)),--figures figures) && exit $$status

## make test: lint, notebook hygiene, the test suite (smoke preset), report in headless Chromium
test: $(STAMP) chromium
	$(PY) -m ruff check src tests ci
	$(PY) ci/check_notebooks.py
	$(PY) -m pytest -q

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

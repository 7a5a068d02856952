# bdpl: `make main` runs the main job on the embedded default model; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-vllm main test lint
setup:
	bash scripts/setup.sh

setup-vllm:
	bash scripts/setup_vllm.sh

main: setup
	$(PY) examples/sst2_smollm2.py

lint: setup
	$(VENV)/bin/ruff check bdpl tests examples benchmarks conftest.py
	$(VENV)/bin/ruff format --check bdpl tests examples benchmarks conftest.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: setup setup-vllm lint
	$(PY) -m pytest --cov=bdpl --cov-report=term

# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv when it is missing. torch is installed only when the venv has none,
# so a GPU user who installed a CUDA build of torch into .venv first keeps it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test test-all test-min lint bench venv deepspeed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# DeepSpeed, the extra the ZeRO-2/3 tests need (tests/test_scale_accelerate.py; CI installs it,
# .ci/run). On a machine without CUDA it builds from its source release with no op compiled
# ahead (DS_BUILD_OPS=0: the CPU accelerator builds the one op it uses on first use) and needs
# torch at build time, hence --no-build-isolation (docs/scaling.md). The range is the
# pyproject extra's. (setuptools 70.1 and later build wheels without the wheel package.)
$(VENV)/.deepspeed: $(VENV)/.installed
	$(BIN)/python -c "import deepspeed" 2>/dev/null || ( \
	  $(BIN)/python -m pip install --quiet 'setuptools>=70.1' && \
	  DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet --no-build-isolation -e '.[deepspeed]')
	touch $@

deepspeed: $(VENV)/.deepspeed

demo: venv
	$(BIN)/mirg demo

test: venv
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m ''

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts || (echo "run: $(BIN)/ruff format src tests benchmarks scripts"; exit 1)

bench: venv
	$(BIN)/python benchmarks/bench_core.py

# The lowest supported versions (requirements/min.txt) in a venv of their own, .venv-min.
VENV_MIN ?= .venv-min
BIN_MIN := $(VENV_MIN)/bin

$(BIN_MIN)/python:
	$(PYTHON) -m venv $(VENV_MIN)
	$(BIN_MIN)/python -m pip install --quiet --upgrade pip

$(VENV_MIN)/.installed: $(BIN_MIN)/python pyproject.toml requirements/min.txt
	$(BIN_MIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN_MIN)/python -m pip install --quiet -e '.[test]' -c requirements/min.txt
	touch $@

test-min: $(VENV_MIN)/.installed
	$(BIN_MIN)/python -m pytest

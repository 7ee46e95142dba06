# greenprint: two commands on a fresh machine.
#   make demo   set up .venv and run a small Green AI study on bundled data, with its report
#   make test   set up .venv and run the whole suite (ruff, mypy, pytest)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# Where the pinned torch is the CPU build (this project's machines: the wheels pip is configured
# with), nothing more is needed. From PyPI, Linux's torch wheel is the CUDA build (about 3 GB of
# nvidia-* libraries and triton): there, pass TORCH_INDEX=https://download.pytorch.org/whl/cpu
# and torch alone (--no-deps) is also looked up on that index, whose 2.13.0+cpu pip prefers; its
# dependencies come from the usual indexes. Empty by default: no lookup that a machine without
# that index would wait on (pip's retries).
TORCH_INDEX ?=
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=
# the suite runs in this many pytest-xdist workers, a test file each at a time (module fixtures
# such as a study built once stay in one worker); 0 runs it in one process. Three on 2 cores:
# a fifth of the tests' time is spent waiting (subprocesses and frameworks starting, Ray's
# daemons, sleeps), which a third worker fills: 11:10 -> 9:57 on a 2-vCPU VM, CPU unchanged
PYTEST_WORKERS ?= 3

.PHONY: demo test lint typecheck pytest bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned, so that no later requirement can pull a multi-GB CUDA build; every later
# install takes the pin as a constraint, so no extra (lightning, transformers...) can replace it.
CONSTRAINTS := $(VENV)/torch-constraint.txt
$(VENV)/.torch-installed: $(BIN)/python
	$(if $(TORCH_INDEX),$(PIP) install -q --no-deps "$(TORCH_SPEC)" --extra-index-url $(TORCH_INDEX))
	$(PIP) install -q "$(TORCH_SPEC)"
	echo "$(TORCH_SPEC)" > $(CONSTRAINTS)
	@touch $@

$(VENV)/.demo-installed: $(VENV)/.torch-installed pyproject.toml
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[torch,demo,report]"
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.torch-installed pyproject.toml
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[torch,demo,report,postgres,dev]"
	@touch $@

venv: $(VENV)/.dev-installed

demo: $(VENV)/.demo-installed
	$(BIN)/greenprint demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

$(VENV)/.bench-installed: $(VENV)/.dev-installed
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[torch,demo,report,postgres,dev,bench]"
	@touch $@

# every benchmark, peers side by side; figures and their reading in BENCHMARKS.md. Two run with
# smaller settings than BENCHMARKS.md's (whose commands it gives): bench_pruner one seed of three
# (30 s, not 90 s), bench_distributed a tenth of the runs (1 minute, not 7).
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_tracking.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_fpo_llama7b.py --repeats 5
	$(BIN)/python benchmarks/bench_fpo_resnet50.py
	$(BIN)/python benchmarks/bench_fpo_zoo.py
	$(BIN)/python benchmarks/bench_analysis.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_integrations.py
	$(BIN)/python benchmarks/bench_integrations_dl.py
	$(BIN)/python benchmarks/bench_integrations_loggers.py
	$(BIN)/python benchmarks/bench_ray.py
	$(BIN)/python benchmarks/bench_distributed.py --scale 0.1
	$(BIN)/python benchmarks/bench_budget.py
	$(BIN)/python benchmarks/bench_greener.py
	$(BIN)/python benchmarks/bench_pruner.py --seeds 0
	$(BIN)/python benchmarks/bench_pruner.py --overhead

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

# augshard: `make run` installs and runs on the shipped sample; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.augshard-installed

.PHONY: install run test lint bench docs clean

install: $(STAMP)

# Idempotent: re-runs only when the dependency files change. torch is pinned through constraints.txt
# (the CPU wheel on this project's machines); the NLTK data is built offline by `augshard prepare`.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,dask,onnx]'
	$(BIN)/augshard prepare
	touch $(STAMP)

run: install
	$(BIN)/augshard run

# Two passes: the suite on two workers (its tests mostly wait on augshard's own processes), then the tests marked
# `serial` alone, as their outcome depends on timing. Extra pytest flags: make test PYTEST_ARGS='-k export'.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadscope -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m serial $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check augshard tests scripts bench
	$(BIN)/ruff format --check augshard tests scripts bench
	$(BIN)/python bench/docs.py --check

# docs/benchmarks.md is generated from bench/benchmarks.md.in and bench/results/*.json
docs: install
	$(BIN)/python bench/docs.py

clean:
	rm -rf data/processed data/cache logs

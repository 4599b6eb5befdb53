# The two commands of the quick start: `make run` serves the IdP on the embedded default
# (SQLite + in-memory store under ./var), `make test` runs the whole suite. Both create
# the virtual environment and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint check schema clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/idp serve

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests

check: $(VENV)/.installed
	$(BIN)/idp check

schema: $(VENV)/.installed
	$(BIN)/idp schema -o tessera.schema.json

clean:
	rm -rf $(VENV) var build *.egg-info src/*.egg-info

# The benchmark (BENCHMARKS.md): server on core 0, load on core 1, PostgreSQL + Redis,
# node-oidc-provider side by side. `make bench BENCH_ARGS=--quick` is the smoke run.
.PHONY: bench
bench: $(VENV)/.installed
	bench/run $(BENCH_ARGS)

# The two commands of the quick start: `make run` serves the IdP on the embedded default
# (SQLite + in-memory store under ./var), `make test` runs the whole suite. Both create
# the virtual environment and install what they need on first use (`run` only what
# serving needs; `test` adds the test tools). `make examples-test` runs the examples of
# examples/ end to end (they are left out of `make test`). `make demo`, in a second terminal, serves a
# tiny application on http://localhost:3000 that signs in with the shipped client.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test lint check schema clean examples-deps examples-test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/idp serve

demo: $(VENV)/.installed
	$(BIN)/idp demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not examples" $(PYTEST_ARGS)

# The runnable examples of examples/ (examples/README.md), each driven end to end against
# `idp serve` on both store pairs in Debian's Chromium. Node examples install from their
# committed lock files.
EXAMPLES_NODE := $(dir $(wildcard examples/*/package-lock.json))

examples-deps:
	@for dir in $(EXAMPLES_NODE); do echo "npm ci in $$dir"; (cd $$dir && npm ci --no-audit --no-fund) || exit 1; done

# examples-js: the SPA (examples/spa) is served from its production build (tsc, then vite
# build); its tests build it again once per session, so they always serve the current source.
examples-deps: examples-deps-js
.PHONY: examples-deps-js
examples-deps-js:
	cd examples/spa && (test -d node_modules || npm ci --no-audit --no-fund) && npm run build

examples-test: $(VENV)/.installed-test examples-deps
	$(BIN)/python -m pytest -q -m examples tests/examples $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests examples

check: $(VENV)/.installed
	$(BIN)/idp check

schema: $(VENV)/.installed
	$(BIN)/idp schema -o tessera.schema.json

clean:
	rm -rf $(VENV) var build *.egg-info src/*.egg-info

# The benchmark (BENCHMARKS.md): server on core 0, load on core 1, PostgreSQL + Redis,
# node-oidc-provider side by side. `make bench BENCH_ARGS=--quick` is the smoke run.
.PHONY: bench
bench: $(VENV)/.installed-test
	bench/run $(BENCH_ARGS)

# examples-next: the Next.js example (examples/nextjs) is tested from its production build
# (next build, then next start); its tests build it again once per session, so they always
# serve the current source.
examples-deps: examples-deps-next
.PHONY: examples-deps-next
examples-deps-next:
	cd examples/nextjs && (test -d node_modules || npm ci --no-audit --no-fund) && NEXT_TELEMETRY_DISABLED=1 npm run build

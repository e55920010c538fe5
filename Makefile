# replog: two commands for a newcomer.
#   make up    create .venv, install replog, run a local 3-node cluster (Ctrl-C stops it)
#   make test  create .venv, install replog with test extras, run lint and the test suite

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test test-deps lint typecheck install install-test bench clean screenshot

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

up: install
	$(BIN)/replog up

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory typecheck

# mypy (configured in pyproject.toml; strict on replog.core). The editable install maps replog to
# src/ with an import hook mypy cannot follow, so mypy reads the package through a symlink
# build/typecheck/replog -> src (build/ is ignored by git); errors name build/typecheck/replog/...
TYPECHECK_DIR := build/typecheck
typecheck: install-test
	@mkdir -p $(TYPECHECK_DIR)
	@ln -sfn ../../src $(TYPECHECK_DIR)/replog
	MYPYPATH=$(TYPECHECK_DIR) $(BIN)/mypy -p replog

test: lint test-deps
	$(BIN)/pytest

# System packages the tests use: libfaketime (a test steps a node's clock back), chromium and
# chromium-driver (tests/browser: the live page in a headless browser).
# Installed with apt-get as root (CI), or with passwordless sudo; otherwise those tests skip.
test-deps:
	@ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get install -y -q libfaketime >/dev/null 2>&1 \
	  || { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q libfaketime >/dev/null; } \
	  || echo "make: could not install libfaketime; the clock test will be skipped"; }
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
	  || { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; } \
	  || echo "make: could not install chromium; the browser tests will be skipped"; }

# make screenshot: docs/ui.png, the live page of a local cluster (a slow secondary behind) at
# 1280x800 in the same headless Chromium as tests/browser.
screenshot: install-test test-deps
	$(BIN)/python -m tools.screenshot_ui docs/ui.png

# make bench: the benchmark (about 6.5 minutes): in-memory and durable clusters in the same run,
# the restart of a node holding 1,000,000 messages, and the metrics' cost (nodes with and without
# metrics, bench/no_metrics_node.py); prints tables, writes bench/results/*.json
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache $(TYPECHECK_DIR) *.egg-info src/*.egg-info

# make chaos: a longer randomized fault campaign with the consistency checker.
#   make chaos DURATION=600 SEED=7 CHAOS_ARGS="--master-faults"
DURATION ?= 300
SEED ?= 1
CHAOS_ARGS ?=
.PHONY: chaos
chaos: install-test
	$(BIN)/python -m tools.chaos --duration $(DURATION) --seed $(SEED) $(CHAOS_ARGS)

# make sim: the deterministic simulator (tools/sim), SEEDS seeds from SIM_SEED; a failure
# prints its seed and a one-line replay command.   make sim SEEDS=1000 SIM_SEED=5000
# Seeds run in SIM_JOBS worker processes (default: one per CPU); totals do not depend on it.
SEEDS ?= 100
SIM_SEED ?= 1
SIM_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
SIM_ARGS ?=
.PHONY: sim
sim: install-test
	PYTHONHASHSEED=0 $(BIN)/python -m tools.sim --seed $(SIM_SEED) --seeds $(SEEDS) --jobs $(SIM_JOBS) $(SIM_ARGS)

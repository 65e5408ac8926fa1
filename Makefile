# Two commands do everything on a fresh machine:
#   make run    create .venv, install, start API + bridge + local Ray (http://127.0.0.1:8000/graphql)
#   make test   create .venv, install, run the whole test suite (what .ci/run calls)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test test-fast fuzz install lint bench bench-smoke lock clean

run: install
	$(BIN)/audio-engine serve

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# Differential fuzzing of the effects with many random examples (CI runs a fixed, quick set).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/dsp/test_fuzz_effects.py

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy jobs dsp actors bridge graph_api cli

bench: install
	$(BIN)/python benchmarks/dsp.py
	$(BIN)/python benchmarks/cli_process.py
	$(BIN)/python benchmarks/loudness.py
	$(BIN)/python benchmarks/memory.py --quick
	$(BIN)/python benchmarks/speech.py

# Every benchmark script on tiny inputs: it completes and prints its rows (a test runs this).
bench-smoke: install
	$(BIN)/python -m benchmarks.smoke

# Refresh the lock after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/pip freeze --exclude-editable | grep -v '^audio-engine' > requirements.lock

clean:
	rm -rf $(VENV) data

# The two everyday commands. Each creates .venv/ on first use and reinstalls
# when pyproject.toml changes.
#   make example   run an example workflow on this machine (no account needed)
#   make test      run the whole test suite, emulators included

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: example test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat mode puts the checkout on sys.path, so Snakemake's plugin scan
	# (pkgutil.iter_modules) finds snakemake_executor_plugin_sparkles.
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

example: $(STAMP)
	cd example_workflows/hello && PATH="$(CURDIR)/$(BIN):$$PATH" \
		snakemake --executor sparkles --jobs 4

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	# Most tests wait on worker processes and emulators rather than compute:
	# a test process per core (at most four) halves the run on two cores.
	$(BIN)/python -m pytest -n auto --maxprocesses 4

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

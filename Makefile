# Two commands on a fresh machine with Python 3.11: `make fit` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# No network at run time: albumentations' update check off, W&B offline unless the user says otherwise.
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
# make test runs the suite in one process per core, four at most (TEST_WORKERS=0: one process).
TEST_WORKERS ?= auto

.PHONY: fit test lint doctor bench clean-venv

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

fit: $(STAMP)
	$(PY) -m ochmr_lit.fit $(ARGS)

test: $(STAMP)
	$(PY) -m pytest --numprocesses=$(TEST_WORKERS) --maxprocesses=4 --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

doctor: $(STAMP)
	$(PY) -m ochmr_lit.doctor

bench: $(STAMP)
	$(PY) -m ochmr_lit.bench $(ARGS)

clean-venv:
	rm -rf $(VENV)

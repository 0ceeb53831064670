# Two entry points for a fresh machine:
#   make demo   creates .venv, installs, runs the data pipeline and the experiments on the demo world
#   make test   creates .venv, installs, runs the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= cpu,test

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# Stage and entry-point commands say `python ...`: the virtualenv's scripts come first on PATH.
demo: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python pipelines/demo.py

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf data reports mlflow.db mlruns mlartifacts

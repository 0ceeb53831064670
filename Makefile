# Two entry points for a fresh machine:
#   make demo   creates .venv, installs, runs the data pipeline and the experiments on the demo world
#   make test   creates .venv, installs, runs the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= cpu,test

.PHONY: demo test venv postgres clean

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

test: venv postgres
	$(BIN)/python -m pytest -q

# The team tests start a throwaway PostgreSQL cluster from the distribution's server packages.
# Installed when missing (Debian/Ubuntu); where that is impossible those tests skip, saying why.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql) || \
	  echo "warning: could not install postgresql; the team tests will skip"

clean:
	rm -rf data reports mlflow.db mlruns mlartifacts

# Entry points for a fresh machine:
#   make demo        creates .venv, installs, runs the data pipeline and the experiments on the demo world
#   make test        creates the virtualenv of PYTHON, installs, runs the whole test suite
#   make test-fast   the same install, then the tests not marked slow
#   make ci          what CI runs: `make test` on python3.11, `make test-fast` on python3.12 and python3.13
#
# PYTHON picks the interpreter (python3.11, python3.12, python3.13) and with it the virtualenv:
# .venv for python3.11, .venv-3.12 for python3.12, and so on.
PYTHON ?= python3.11
CI_FULL_PYTHON := python3.11
CI_FAST_PYTHONS := python3.12 python3.13
VENV ?= $(if $(filter $(CI_FULL_PYTHON),$(PYTHON)),.venv,.venv-$(subst python,,$(notdir $(PYTHON))))
BIN := $(VENV)/bin
EXTRAS ?= cpu,test
# The interpreter's own path. pyenv's shim refuses a version that is installed but not selected
# (`pyenv global`), so that case asks pyenv which installed version provides the command.
PYTHON_EXE := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || \
	PYENV_VERSION="$$(pyenv whence $(PYTHON) 2>/dev/null | tail -n 1)" \
	$(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null)

.PHONY: demo test test-fast ci venv postgres chromium screenshots clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON_EXE)" || { echo "error: $(PYTHON) not found (install it, or pick another: make ... PYTHON=python3.12)" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON_EXE) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# Stage and entry-point commands say `python ...`: the virtualenv's scripts come first on PATH.
demo: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python pipelines/demo.py

test: venv postgres chromium
	$(BIN)/python -m pytest -q

test-fast: venv postgres
	$(BIN)/python -m pytest -q -m "not slow"

ci:
	$(MAKE) test PYTHON=$(CI_FULL_PYTHON)
	for python in $(CI_FAST_PYTHONS); do $(MAKE) test-fast PYTHON=$$python || exit 1; done

# The team tests start a throwaway PostgreSQL cluster from the distribution's server packages.
# Installed when missing (Debian/Ubuntu); where that is impossible those tests skip, saying why.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql) || \
	  echo "warning: could not install postgresql; the team tests will skip"

# The browser test and scripts/screenshots.py drive the distribution's Chromium headless (never a
# browser downloaded by Playwright). Installed when missing; where impossible the browser test skips.
chromium:
	@test -x /usr/bin/chromium || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium) || \
	  echo "warning: could not install chromium; the browser test will skip"

# The README's pictures of the MLflow UI, from the demo's mlflow.db (run `make demo` first).
screenshots: venv chromium
	$(BIN)/python scripts/screenshots.py --out docs

clean:
	rm -rf data reports mlflow.db mlruns mlartifacts

"""The import graph is honest: a stage with no TensorFlow work starts without importing TensorFlow.

Importing TensorFlow costs seconds and hundreds of MB per process; the data stages before the record
builders (demo world, lists, download, dedup) never touch a tensor, so only modules that do import it.
Each check runs in a fresh interpreter, as the stage would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEDUP_SCRIPT = REPO / "pipelines" / "dedup.py"

TF_FREE = {
    "dedup package": "import mlimages.dedup, mlimages.dedup.stage",
    "dedup stage script": f"import runpy; runpy.run_path({str(DEDUP_SCRIPT)!r})",  # imports, does not run main
    "lists": "import mlimages.lists",
    "download": "import mlimages.download",
    "demo world": "import mlimages.demo",
    "configs and report files": "import mlimages.config, mlimages.files, mlimages.records.config",
}


def imports_tensorflow(code: str) -> bool:
    """Run `code` in a fresh interpreter; True when it left tensorflow in sys.modules."""
    check = f"{code}\nimport sys\nraise SystemExit(3 if 'tensorflow' in sys.modules else 0)\n"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 3), f"{code!r} failed:\n{done.stderr[-3000:]}"
    return done.returncode == 3


@pytest.mark.parametrize("code", TF_FREE.values(), ids=TF_FREE.keys())
def test_data_stage_modules_do_not_import_tensorflow(code):
    assert not imports_tensorflow(code)


def test_the_check_sees_a_module_that_needs_tensorflow():
    assert imports_tensorflow("import mlimages.records.schema")


# `mlimages registry list` against a tracking server: the console script, its parser for the command
# and every module the REST path runs. Importing MLflow would cost the command seconds.
REGISTRY_LIST = ("from mlimages.cli import build_parser; build_parser(['registry', 'list'])\n"
                 "import mlimages.cli.registry, mlimages.tracking.rest_registry, mlimages.tracking.results_table, "
                 "mlimages.tracking.model_metrics, mlimages.tracking.registry_config")


def imported(code: str, modules: tuple[str, ...]) -> list[str]:
    """Run `code` in a fresh interpreter; which of `modules` it left in sys.modules."""
    check = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {modules!r} if m in sys.modules]))\n"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{code!r} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def test_registry_list_on_a_server_imports_neither_mlflow_nor_tensorflow():
    assert imported(REGISTRY_LIST, ("mlflow", "tensorflow", "keras")) == []


def test_the_check_sees_mlflow():
    assert imported("import mlimages.tracking.registry", ("mlflow",)) == ["mlflow"]

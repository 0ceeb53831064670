"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MLIMAGES_SHARED", REPO.parent / "shared")) / "data" / "tencent-ml-images"

# Keep TensorFlow quiet and on the CPU in tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The original release's files (`../shared/data/tencent-ml-images`); skips when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"original Tencent ML-Images files not found at {SHARED} (fresh clone without ../shared)")
    return SHARED


@pytest.fixture(autouse=True)
def keep_mlflow_experiment():
    """Each test leaves the process's active MLflow experiment as it found it.

    `mlflow.set_experiment` sets a module global and the MLFLOW_EXPERIMENT_ID environment variable;
    an experiment id of one test's throwaway store would otherwise be looked up in the next store.
    """
    import sys

    before = os.environ.get("MLFLOW_EXPERIMENT_ID")
    fluent = sys.modules.get("mlflow.tracking.fluent")
    active = fluent._active_experiment_id if fluent else None
    yield
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None:
        fluent._active_experiment_id = active
    if before is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = before


@pytest.fixture(scope="session")
def hierarchy_file(shared_data: Path) -> Path:
    return shared_data / "dictionary_and_semantic_hierarchy.txt"


# Tiny records, checkpoints and a throwaway MLflow store, shared by tests/tracking, tests/cli and
# the evaluation tests.
from tests.tracking_fixtures import (  # noqa: E402,F401  (imported fixtures are registered)
    finetune_run, fixture_photo, multi_records, served_model, single_records, tracking_store,
)

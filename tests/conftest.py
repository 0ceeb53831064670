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
def keep_mlflow_state():
    """Each test leaves MLflow's process-wide tracking URI and active experiment as it found them.

    `mlflow.set_tracking_uri` and `mlflow.set_experiment` set module globals and the environment
    variables MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_ID; a test's throwaway store would otherwise
    stay in use by the next test, which then looks up experiment ids that its own store lacks.
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")
    env = {name: os.environ.get(name) for name in names}
    globals_before = read_mlflow_globals()
    yield
    write_mlflow_globals(globals_before)
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def read_mlflow_globals() -> tuple:
    import sys

    fluent, uris = (sys.modules.get(f"mlflow.tracking.{m}") for m in ("fluent", "_tracking_service.utils"))
    return (fluent._active_experiment_id if fluent else None, uris._tracking_uri if uris else None)


def write_mlflow_globals(values: tuple) -> None:
    import sys

    fluent, uris = (sys.modules.get(f"mlflow.tracking.{m}") for m in ("fluent", "_tracking_service.utils"))
    if fluent is not None:
        fluent._active_experiment_id = values[0]
    if uris is not None:
        uris._tracking_uri = values[1]


@pytest.fixture(scope="session")
def hierarchy_file(shared_data: Path) -> Path:
    return shared_data / "dictionary_and_semantic_hierarchy.txt"


# Tiny records, checkpoints and a throwaway MLflow store, shared by tests/tracking, tests/cli and
# the evaluation tests.
from tests.tracking_fixtures import (  # noqa: E402,F401  (imported fixtures are registered)
    finetune_run, fixture_photo, multi_records, served_model, single_records, tracking_store,
)

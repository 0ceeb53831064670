"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mlflow_state import restore_mlflow_state, save_mlflow_state

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
    """Each test leaves MLflow's process-wide tracking URI and active experiment as it found them
    (see `tests.mlflow_state`); fixtures of a wider scope restore theirs with `use_store`."""
    saved = save_mlflow_state()
    yield
    restore_mlflow_state(saved)


@pytest.fixture(scope="session")
def tiny_dvc_repo(tmp_path_factory) -> Path:
    """One `dvc repro` of the tiny demo for the pipeline and data remote tests, which work on copies."""
    from tests.pipelines.test_dvc_repro import build_tiny_repo

    return build_tiny_repo(tmp_path_factory.mktemp("tiny-dvc") / "repo")


@pytest.fixture(scope="session")
def hierarchy_file(shared_data: Path) -> Path:
    return shared_data / "dictionary_and_semantic_hierarchy.txt"


# Tiny records, checkpoints and a throwaway MLflow store, shared by tests/tracking, tests/cli and
# the evaluation tests.
from tests.tracking_fixtures import (  # noqa: E402,F401  (imported fixtures are registered)
    finetune_run, fixture_photo, multi_records, served_model, single_records, tracking_store,
)

"""Fixtures of the training tests: tiny record folders and a throwaway MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mlflow_state import use_store

from .fakes import write_records


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory) -> dict[str, Path]:
    """Multi-label (pretrain) and single-label (finetune) train/val folders."""
    root = tmp_path_factory.mktemp("records")
    return {
        "ml_train": write_records(root / "ml" / "train", 64, "multi", seed=1),
        "ml_val": write_records(root / "ml" / "val", 16, "multi", num_shards=1, seed=2),
        "in_train": write_records(root / "in" / "train", 64, "single", seed=3),
        "in_val": write_records(root / "in" / "val", 20, "single", num_shards=1, seed=4),
    }


@pytest.fixture()
def tracking_uri(tmp_path) -> str:
    """A fresh SQLite MLflow store for one test (also for subprocesses, through the environment).

    The working directory moves to the test's folder too: MLflow puts artifacts under ./mlruns.
    """
    with use_store(tmp_path) as uri:
        yield uri

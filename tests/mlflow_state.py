"""MLflow's process-wide tracking state, saved and restored around tests and wide-scoped fixtures.

`mlflow.set_tracking_uri` and `mlflow.set_experiment` set module globals (and the tests set the
environment variables MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_ID for subprocesses). The global wins over
the environment, so a module- or session-scoped fixture that points MLflow at its throwaway store and
only undoes its environment changes leaves every later test talking to that store.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")


def save_mlflow_state() -> tuple:
    fluent, uris = (sys.modules.get(f"mlflow.tracking.{m}") for m in ("fluent", "_tracking_service.utils"))
    return ({name: os.environ.get(name) for name in ENV},
            fluent._active_experiment_id if fluent else None, uris._tracking_uri if uris else None)


def restore_mlflow_state(saved: tuple) -> None:
    env, experiment_id, tracking_uri = saved
    fluent, uris = (sys.modules.get(f"mlflow.tracking.{m}") for m in ("fluent", "_tracking_service.utils"))
    if fluent is not None:
        fluent._active_experiment_id = experiment_id
    if uris is not None:
        uris._tracking_uri = tracking_uri
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def use_store(folder: Path):
    """MLflow on a SQLite store in `folder`, with the working directory there (artifacts land in
    ./mlruns); everything, the working directory included, is restored on exit."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    saved = save_mlflow_state()
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mp.chdir(folder)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("Default")  # forget an experiment made active in another store
    try:
        yield uri
    finally:
        mlflow.end_run()
        mp.undo()
        restore_mlflow_state(saved)

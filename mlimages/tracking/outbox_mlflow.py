"""How the tracking outbox's sender talks to MLflow from a thread of its own.

What counts as an outage (worth keeping an item and trying again), MLflow's HTTP retries turned off
while it sends, and the training run made active on the sender's thread: MLflow keeps its active run
per thread, and logging a model takes the run's experiment from it.
"""

from __future__ import annotations

import contextlib
import os

import mlflow
import requests
from mlflow.exceptions import MlflowException


def is_outage(error: BaseException) -> bool:
    """A connection failure or a server-side (5xx) error: worth keeping the item and trying again.

    A refused request (401, 403, 400, 404) is not: retrying it for minutes would only hide it.
    """
    if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(error, requests.HTTPError):  # an artifact upload answered by a proxy or a failing server
        return error.response is not None and error.response.status_code >= 500
    return isinstance(error, MlflowException) and error.get_http_status_code() >= 500


@contextlib.contextmanager
def without_mlflow_retries():
    """MLflow reads its HTTP settings per request: no retries, a short timeout, while the outbox sends.

    The environment is the process's: a request the training thread makes meanwhile (during training only
    a divergence's tag) goes without retries too. Only the sender thread changes these variables."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="60")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def run_active_here(run_id: str):
    """`run_id` as this thread's active run while the block runs, so that a model logged here is the run's,
    in the run's experiment (without an active run MLflow puts it in the process's default experiment).

    `mlflow.start_run` would send a request and end the run on exit, so the run goes on MLflow's
    per-thread stack by hand (its private state, as `TrackingOutbox._leave_run` uses it too).
    """
    from mlflow.tracking.fluent import _active_run_stack

    stack = _active_run_stack.get()
    stack.append(mlflow.ActiveRun(mlflow.get_run(run_id)))
    try:
        yield
    finally:
        stack.pop()

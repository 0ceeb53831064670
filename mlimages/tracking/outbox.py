"""Training's tracking calls, kept through a tracking-server outage and delivered once it is back.

A team's runs train for days against a server that sometimes restarts. Left to itself, MLflow
retries a failed request for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` with backoff) while the
training step waits, then raises and ends the run. Instead, training hands its metrics and
checkpoints to this outbox, which sends them in order with MLflow's own retries turned off, so
an attempt against a missing server costs one refused connection. What does not go through is
kept, and training goes on:

- metrics as they were measured: their timestamps are fixed then, so a resend of a batch the
  server had stored after all is the same row (the store ignores an identical metric), never a
  second point at that step;
- checkpoints as a ``.keras`` snapshot in the output folder, logged from it later (skipped when
  the server already holds a finished checkpoint at that step).

Every later call retries the oldest item first, at most every `RETRY_EVERY_S`. Kept items are
also written to ``outbox.jsonl`` beside the snapshots, so a run that stops still has them. When
the server stays away past the outage limit (``MLIMAGES_TRACKING_OUTAGE_S``, default 600 s: an
operating setting like MLflow's own HTTP variables, so not a param and not part of the run key),
the run stops with `TrackingLost`, one line; its checkpoints are on disk, and the same command
resumes once the server is back, delivering what was kept before it trains on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import mlflow
import requests
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mlimages.errors import InputError
from mlimages.tracking.checkpoints import ModelSpec, find_checkpoints, log_checkpoint
from mlimages.tracking.names import STEP_TAG

OUTAGE_ENV = "MLIMAGES_TRACKING_OUTAGE_S"
DEFAULT_OUTAGE_S = 600.0
RETRY_EVERY_S = 5.0
JOURNAL = "outbox.jsonl"

_log = logging.getLogger(__name__)


class TrackingLost(Exception):
    """The tracking server stayed away past the outage limit; checkpoints are kept, the same command resumes."""


def read_outage_limit_s() -> float:
    """The outage limit from ``MLIMAGES_TRACKING_OUTAGE_S`` (seconds, > 0)."""
    value = os.environ.get(OUTAGE_ENV, str(DEFAULT_OUTAGE_S))
    try:
        limit = float(value)
    except ValueError:
        limit = -1.0
    if not limit > 0:
        raise InputError(f"must be a positive number of seconds, got {value!r}", f"environment {OUTAGE_ENV}")
    return limit


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
    """MLflow reads its HTTP settings per request: no retries, a short timeout, while the outbox sends."""
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


def open_outbox(run_id: str, out_dir: str | Path) -> "TrackingOutbox":
    """The outbox of a run writing to `out_dir`, after delivering what an earlier attempt kept there."""
    outbox = TrackingOutbox(run_id, Path(out_dir) / "tracking-outbox")
    outbox.flush()
    return outbox


class TrackingOutbox:
    """Metrics and checkpoints of one run, sent in order, kept through an outage (see the module docstring).

    Args:
        run_id: the training run.
        folder: where snapshots and the journal go (inside the run's output folder).
        outage_limit_s: how long an outage may last before the run stops.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, run_id: str, folder: str | Path, outage_limit_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.run_id, self.folder, self.clock = run_id, Path(folder), clock
        self.outage_limit_s = read_outage_limit_s() if outage_limit_s is None else outage_limit_s
        self.pending: list[dict[str, Any]] = self._read_journal()
        self.outage_since: float | None = None
        self.next_try_at = 0.0

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Send `metrics` at `step` (or keep them, timestamped now)."""
        now_ms = int(time.time() * 1000)
        self.pending.append({"kind": "metrics", "step": step, "timestamp": now_ms,
                             "values": {key: float(value) for key, value in metrics.items()}})
        self.deliver()

    def log_checkpoint(self, model, step: int, task: str, spec: ModelSpec, metrics: Mapping[str, float],
                       classes_file: str | None, tags: Mapping[str, str]) -> None:
        """Log `metrics` at `step`, then `model` as the checkpoint LoggedModel of `step` (which links every
        metric of the step), or keep them: the metrics as they are, the model as a snapshot."""
        if metrics:
            self.log_metrics(metrics, step)
        item = {"kind": "checkpoint", "step": step, "task": task, "spec": dataclasses.asdict(spec),
                "classes_file": classes_file, "tags": dict(tags), "file": None}
        if not self.pending and self.outage_since is None:
            try:
                with without_mlflow_retries():
                    log_checkpoint(model, step, task, spec, {}, classes_file, tags)
                return
            except Exception as error:
                if not is_outage(error):
                    raise
                self._begin_outage(error)
        self.folder.mkdir(parents=True, exist_ok=True)
        item["file"] = str(self.folder / f"checkpoint-{step}.keras")
        model.save(item["file"])  # the live model trains on: keep this step's weights
        self.pending.append(item)
        self.deliver()

    def deliver(self) -> None:
        """Send kept items, oldest first; keep the rest if the server does not answer.

        Raises:
            TrackingLost: the outage has lasted past the limit (the kept items are in the journal).
        """
        if self.outage_since is not None and self.clock() < self.next_try_at:
            self._write_journal()
            return self._check_limit()
        while self.pending:
            try:
                with without_mlflow_retries():
                    self._send(self.pending[0])
            except Exception as error:
                if not is_outage(error):
                    raise
                self._begin_outage(error)
                self._write_journal()
                return self._check_limit()
            self._forget(self.pending.pop(0))
        if self.outage_since is not None:
            _log.warning("tracking server answers again: everything kept since it stopped answering %.0f s ago "
                         "is logged", self.clock() - self.outage_since)
        self.outage_since = None
        self._write_journal()

    def flush(self) -> None:
        """Deliver everything before the run ends, waiting out an outage up to the limit."""
        self.deliver()
        while self.pending:
            time.sleep(max(0.0, min(RETRY_EVERY_S, self.next_try_at - self.clock())))
            self.deliver()

    def _send(self, item: dict[str, Any]) -> None:
        if item["kind"] == "metrics":
            metrics = [Metric(key, value, item["timestamp"], item["step"]) for key, value in item["values"].items()]
            mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)
            return
        if any(int(m.tags[STEP_TAG]) == item["step"] for m in find_checkpoints(self.run_id)):
            return  # sent before the connection broke: the server has it
        import keras

        model = keras.saving.load_model(item["file"], compile=False)
        log_checkpoint(model, item["step"], item["task"], ModelSpec(**item["spec"]), {}, item["classes_file"],
                       item["tags"])

    def _forget(self, item: dict[str, Any]) -> None:
        if item.get("file"):
            Path(item["file"]).unlink(missing_ok=True)

    def _begin_outage(self, error: BaseException) -> None:
        now = self.clock()
        if self.outage_since is None:
            self.outage_since = now
            _log.warning("tracking server unreachable (%s); training goes on, metrics and checkpoints are kept "
                         "for up to %.0f s", str(error).splitlines()[0][:160], self.outage_limit_s)
        self.next_try_at = now + RETRY_EVERY_S

    def _check_limit(self) -> None:
        waited = self.clock() - self.outage_since
        if waited > self.outage_limit_s:
            self._leave_run()
            raise TrackingLost(
                f"the tracking server has not answered for {waited:.0f} s ({OUTAGE_ENV}={self.outage_limit_s:g}); "
                f"checkpoints are kept in {self.folder.parent} and {len(self.pending)} unsent items in "
                f"{self.folder / JOURNAL}: run the same command again once the server is back")

    def _leave_run(self) -> None:
        """Drop the run from MLflow's active-run stack without a request: ending it would wait on the
        missing server, then replace `TrackingLost` with MLflow's error. The run stays RUNNING on the
        server until the same command reopens it. (The stack is MLflow's private state; no public call
        forgets a run without ending it.)"""
        from mlflow.tracking.fluent import _active_run_stack

        stack = _active_run_stack.get()
        stack[:] = [run for run in stack if run.info.run_id != self.run_id]

    def _read_journal(self) -> list[dict[str, Any]]:
        path = self.folder / JOURNAL
        if not path.is_file():
            return []
        items = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                items.append(json.loads(line))
            except ValueError:
                raise InputError("not a JSON line of the tracking outbox", f"{path}:{number}") from None
        return items

    def _write_journal(self) -> None:
        path = self.folder / JOURNAL
        if not self.pending:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # nothing left: no empty folder among the training outputs
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text("".join(json.dumps(item) + "\n" for item in self.pending), encoding="utf-8")
        temporary.replace(path)

"""Training's tracking calls, kept through a tracking-server outage and delivered by a thread of their own.

A team's runs train for days against a server that sometimes restarts. Left to itself, MLflow
retries a failed request for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` with backoff) while the
training step waits, then raises and ends the run. Instead, training hands its metrics and
checkpoints to this outbox and goes on at once: each item is appended to a journal on disk
(`OutboxJournal`, the queue), and one sender thread delivers the journal in order, with MLflow's own
retries turned off so that an attempt against a missing server costs one refused connection. What
does not go through stays in the journal, and training goes on; a backlog drains in the background
while training steps continue. Items are made safe to send twice (a process may die after a send
and before the journal moves on):

- metrics as they were measured: their timestamps are fixed then, so a resend of a batch the
  server had stored after all is the same row (the store ignores an identical metric), never a
  second point at that step;
- checkpoints as a ``.keras`` snapshot in the output folder, logged from it by the sender (skipped
  when the server already holds a finished checkpoint at that step).

During an outage the sender retries the oldest item every `RETRY_EVERY_S`. When the server stays
away past the outage limit (``MLIMAGES_TRACKING_OUTAGE_S``, default 600 s: an operating setting like
MLflow's own HTTP variables, so not a param and not part of the run key), the sender stops and the
training thread's next call raises `TrackingLost`, one line; checkpoints are on disk, and the same
command resumes once the server is back, delivering what the journal kept before it trains on.

Shutdown: `flush` waits until the journal is empty (or raises the sender's error); `end_run` queues the
run's end after everything else, then flushes (a server gone just before the end: the same one line);
`close` (also the context manager's exit, whatever ended the run) stops the sender after the item in
flight and leaves the rest in the journal for the next attempt.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import mlflow
from mlflow.entities import Metric, RunTag
from mlflow.environment_variables import MLFLOW_RUN_ID

from mlimages.errors import InputError
from mlimages.tracking.checkpoints import ModelSpec, find_checkpoints, log_checkpoint
from mlimages.tracking.names import STEP_TAG
from mlimages.tracking.outbox_journal import OutboxJournal
from mlimages.tracking.outbox_mlflow import is_outage, run_active_here, without_mlflow_retries

OUTAGE_ENV = "MLIMAGES_TRACKING_OUTAGE_S"
DEFAULT_OUTAGE_S = 600.0
RETRY_EVERY_S = 5.0

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


def open_outbox(run_id: str, out_dir: str | Path) -> "TrackingOutbox":
    """The outbox of a run writing to `out_dir`, once what an earlier attempt kept there is delivered
    (so the run's last logged step, read next, counts it)."""
    outbox = TrackingOutbox(run_id, Path(out_dir) / "tracking-outbox")
    try:
        outbox.flush()
    except BaseException:
        outbox.close()
        raise
    return outbox


class TrackingOutbox:
    """Metrics and checkpoints of one run, sent in order by one thread, kept through an outage (see the
    module docstring). Its sender starts here; use it as a context manager, or call `close`.

    Args:
        run_id: the training run.
        folder: where snapshots and the journal go (inside the run's output folder).
        outage_limit_s: how long an outage may last before the run stops.
        retry_every_s: how long the sender waits between attempts during an outage.
        clock: monotonic seconds, for the outage's length.
    """

    def __init__(self, run_id: str, folder: str | Path, outage_limit_s: float | None = None,
                 retry_every_s: float = RETRY_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.run_id, self.folder, self.clock, self.retry_every_s = run_id, Path(folder), clock, retry_every_s
        self.outage_limit_s = read_outage_limit_s() if outage_limit_s is None else outage_limit_s
        self.journal = OutboxJournal(self.folder)
        self.attempt = uuid.uuid4().hex  # marks this process's end of the run (see `_end`)
        self.outage_since: float | None = None  # when the server stopped answering (None: it answers)
        self.backlog_since: float | None = None  # when the outage that left a backlog began
        self.last_try = 0.0  # of a send that met an outage
        self._changed = threading.Condition()  # guards the journal and the fields below; wakes both threads
        self._error: BaseException | None = None  # the sender's, raised on the training thread
        self._stopping = False
        self._sender = threading.Thread(target=self._send_all, name="tracking-outbox", daemon=True)
        self._sender.start()

    def __enter__(self) -> "TrackingOutbox":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue `metrics` at `step`, timestamped now."""
        self._put({"kind": "metrics", "step": step, "timestamp": int(time.time() * 1000),
                   "values": {key: float(value) for key, value in metrics.items()}})

    def log_checkpoint(self, model, step: int, task: str, spec: ModelSpec, metrics: Mapping[str, float],
                       classes_file: str | None, tags: Mapping[str, str]) -> None:
        """Queue `model` as the checkpoint LoggedModel of `step`, with `metrics` logged at `step` just before it
        (a LoggedModel links every metric of its step). One journal item: a kill never keeps one without the
        other. The live model trains on, so this step's weights go to a snapshot first."""
        self._raise_if_failed()
        self.folder.mkdir(parents=True, exist_ok=True)
        snapshot = self.folder / f"checkpoint-{step}.keras"
        model.save(snapshot)
        self._put({"kind": "checkpoint", "step": step, "task": task, "spec": dataclasses.asdict(spec),
                   "classes_file": classes_file, "tags": dict(tags), "file": str(snapshot),
                   "timestamp": int(time.time() * 1000), "values": {k: float(v) for k, v in metrics.items()}})

    def end_run(self, status: str, tags: Mapping[str, str] | None = None) -> None:
        """End the run with `status` (and `tags` set first) once everything queued before is delivered, as
        `flush` does: through an outage up to the limit, then `TrackingLost`. The run then leaves MLflow's
        active-run stack without a request, so the `with` block that started it ends nothing twice."""
        self._put({"kind": "end", "status": status, "tags": dict(tags or {}), "attempt": self.attempt})
        self.flush()
        self._leave_run()
        MLFLOW_RUN_ID.unset()  # as `mlflow.end_run` does: a later run in this process is not this one

    def flush(self) -> None:
        """Wait until everything is delivered, through an outage up to the limit.

        Raises:
            TrackingLost: the outage lasted past the limit (the kept items are in the journal);
                or whatever else stopped the sender.
        """
        with self._changed:
            while self.journal.peek() is not None and self._error is None and self._sender.is_alive():
                self._changed.wait()
            self._raise_if_failed()
            if self.journal.peek() is not None:
                raise RuntimeError(f"the tracking outbox is closed with unsent items in {self.journal.path}")

    def close(self) -> None:
        """Stop the sender after the item in flight (a request ends within MLflow's HTTP timeout); what
        is not delivered stays in the journal, and the same command delivers it when it resumes."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._sender.join()
        self.journal.remove_empty_folder()

    def count_unsent(self) -> int:
        with self._changed:
            return self.journal.count_unsent()

    def _put(self, item: dict[str, Any]) -> None:
        with self._changed:
            self._raise_if_failed()
            self.journal.append(item)
            self._changed.notify_all()

    def _raise_if_failed(self) -> None:
        """On the training thread: the sender's error, if it stopped with one."""
        if self._error is None:
            return
        if isinstance(self._error, TrackingLost):
            self._leave_run()
        raise self._error

    def _send_all(self) -> None:
        """The sender thread: the oldest item, until `close`; an error stops it and waits for the training
        thread to raise it."""
        try:
            while (item := self._next_item()) is not None:
                if self._try_send(item):
                    self._forget(item)
        except BaseException as error:  # noqa: BLE001 - handed to the training thread as it is
            with self._changed:
                self._error = error
                self._changed.notify_all()

    def _next_item(self) -> dict[str, Any] | None:
        """The oldest unsent item, once there is one and any retry pause is over; None once closing."""
        with self._changed:
            while not self._stopping:
                pause_s = 0.0 if self.outage_since is None else self.last_try + self.retry_every_s - self.clock()
                if pause_s > 0:
                    self._changed.wait(pause_s)  # woken early only to close
                    continue
                item = self.journal.peek()
                if item is not None:
                    return item
                self._changed.wait()
            return None

    def _try_send(self, item: dict[str, Any]) -> bool:
        """True once `item` is delivered; False (kept) when the server does not answer."""
        try:
            with without_mlflow_retries():
                self._send(item)
        except Exception as error:
            if not is_outage(error):
                raise
            self._begin_outage(error)
            self._check_limit()
            return False
        if self.outage_since is not None:
            _log.warning("tracking server answers again after %.0f s: delivering the %d items kept meanwhile "
                         "while training goes on", self.clock() - self.outage_since, self.count_unsent())
            self.backlog_since, self.outage_since = self.outage_since, None
        return True

    def _send(self, item: dict[str, Any]) -> None:
        """Deliver `item`; sending one again is harmless (the server keeps one copy of an identical metric)."""
        if item["kind"] == "end":
            return self._end(item)
        if item["kind"] == "checkpoint" and any(int(m.tags[STEP_TAG]) == item["step"]
                                                for m in find_checkpoints(self.run_id)):
            return  # sent before the connection broke (or the process died): the server has it
        if item.get("values"):
            metrics = [Metric(key, value, item["timestamp"], item["step"]) for key, value in item["values"].items()]
            mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)
        if item["kind"] == "metrics":
            return
        import keras

        model = keras.saving.load_model(item["file"], compile=False)
        with run_active_here(self.run_id):
            log_checkpoint(model, item["step"], item["task"], ModelSpec(**item["spec"]), {}, item["classes_file"],
                           item["tags"])

    def _end(self, item: dict[str, Any]) -> None:
        """Set the end's tags and status; an end kept by an earlier attempt is dropped, since the same command
        reopened the run (RUNNING) before its journal is delivered, and ends it again when it finishes."""
        if item["attempt"] != self.attempt:
            _log.info("dropping the run's end (%s) kept by an earlier attempt: this attempt ends it", item["status"])
            return
        client = mlflow.MlflowClient()
        if item["tags"]:
            client.log_batch(self.run_id, tags=[RunTag(key, value) for key, value in item["tags"].items()])
        client.set_terminated(self.run_id, item["status"])

    def _forget(self, item: dict[str, Any]) -> None:
        """Delivered: the snapshot goes, then the journal moves on (a kill between the two resends an
        item the server has, which `_send` skips)."""
        if item.get("file"):
            Path(item["file"]).unlink(missing_ok=True)
        with self._changed:
            self.journal.pop()
            drained = self.journal.peek() is None
            self._changed.notify_all()
        if drained and self.backlog_since is not None:
            _log.warning("tracking outbox drained: everything kept since the server stopped answering %.0f s ago "
                         "is logged", self.clock() - self.backlog_since)
            self.backlog_since = None

    def _begin_outage(self, error: BaseException) -> None:
        self.last_try = self.clock()
        if self.outage_since is None:
            self.outage_since = self.last_try
            _log.warning("tracking server unreachable (%s); training goes on, metrics and checkpoints are kept "
                         "for up to %.0f s", str(error).splitlines()[0][:160], self.outage_limit_s)

    def _check_limit(self) -> None:
        waited = self.clock() - self.outage_since
        if waited > self.outage_limit_s:
            with self._changed:  # counted and set at once: the training thread adds no item the count misses
                self._error = TrackingLost(
                    f"the tracking server has not answered for {waited:.0f} s ({OUTAGE_ENV}={self.outage_limit_s:g}); "
                    f"checkpoints are kept in {self.folder.parent} and {self.journal.count_unsent()} unsent items in "
                    f"{self.journal.path}: run the same command again once the server is back")
            raise self._error

    def _leave_run(self) -> None:
        """Drop the run from MLflow's active-run stack without a request: ending it would wait on the
        missing server, then replace `TrackingLost` with MLflow's error. The run stays RUNNING on the
        server until the same command reopens it. (The stack is MLflow's private state, one per thread:
        this runs on the training thread; no public call forgets a run without ending it.)"""
        from mlflow.tracking.fluent import _active_run_stack

        stack = _active_run_stack.get()
        stack[:] = [run for run in stack if run.info.run_id != self.run_id]

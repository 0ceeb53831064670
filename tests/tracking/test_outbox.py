"""The tracking outbox: kept through an outage (a real refused connection), stopped after the limit with
one line raised on the training thread, drained by its own thread while training goes on, and delivered
exactly once, also from a journal replayed after a kill (the real SQLite store)."""

from __future__ import annotations

import json
import socket
import time

import keras
import mlflow
import numpy as np
import pytest

from mlimages.errors import InputError
from mlimages.tracking.checkpoints import ModelSpec, find_checkpoints
from mlimages.tracking.names import STEP_TAG
from mlimages.tracking.outbox import TrackingLost, TrackingOutbox, open_outbox
from mlimages.tracking.outbox_journal import CURSOR, JOURNAL, OutboxJournal

from tests.tracking_fixtures import build_tiny_classifier

SPEC = ModelSpec(50, 0.125, 32, 0.875)


def refused_uri() -> str:
    """A loopback address where nothing listens: every request is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def run_id(tracking_store) -> str:
    mlflow.set_tracking_uri(tracking_store)
    experiment = mlflow.set_experiment("outbox")
    return mlflow.MlflowClient().create_run(experiment.experiment_id).info.run_id


def history(run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run_id, key))


def wait_for(condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the outbox's sender did not get there"
        time.sleep(0.05)


def test_an_outage_keeps_items_and_the_limit_stops_the_training_thread_with_one_line(tracking_store, run_id,
                                                                                       tmp_path):
    folder, model = tmp_path / "out" / "tracking-outbox", build_tiny_classifier(3, seed=1)
    mlflow.set_tracking_uri(refused_uri())
    try:
        with TrackingOutbox(run_id, folder, outage_limit_s=1.0, retry_every_s=0.1) as outbox:
            outbox.log_metrics({"loss": 1.0}, 1)
            outbox.log_checkpoint(model, 2, "finetune", SPEC, {"top1_32": 0.5}, None, {"mlimages.epoch": "1.00"})
            with pytest.raises(TrackingLost) as error:
                for step in range(3, 1000):  # training goes on until the sender gives up
                    outbox.log_metrics({"loss": 1.0 / step}, step)
                    time.sleep(0.01)
    finally:
        mlflow.set_tracking_uri(tracking_store)
    message, kept = str(error.value), (folder / JOURNAL).read_text().splitlines()
    assert "\n" not in message and "same command" in message and str(folder) in message
    assert f"{len(kept)} unsent items" in message and (folder / "checkpoint-2.keras").is_file()
    kept_steps = [json.loads(line)["step"] for line in kept]
    assert kept_steps == list(range(1, kept_steps[-1] + 1))  # the checkpoint and its metrics: one item

    with mlflow.start_run(run_id=run_id):  # the same command again: the kept items go first
        open_outbox(run_id, folder.parent).close()
    assert history(run_id, "loss") == [1, *range(3, kept_steps[-1] + 1)] and history(run_id, "top1_32") == [2]
    assert [int(m.tags[STEP_TAG]) for m in find_checkpoints(run_id)] == [2]
    assert not folder.exists()  # journal, cursor and snapshot gone once delivered


def test_training_steps_go_on_while_a_backlog_drains(tracking_store, run_id, tmp_path):
    """Checkpoints kept during an outage drain on the sender's thread: the training thread finishes real
    steps meanwhile (counted while the last kept snapshot is not delivered), and order holds."""
    folder, model = tmp_path / "tracking-outbox", build_tiny_classifier(3, seed=1)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = np.random.default_rng(0).random((4, 32, 32, 3), np.float32), np.array([0, 1, 2, 0])
    mlflow.set_experiment("not the run's")  # as when a run is resumed: the checkpoints still go to the run's
    mlflow.set_tracking_uri(refused_uri())
    outbox = TrackingOutbox(run_id, folder, outage_limit_s=600, retry_every_s=0.2)
    try:
        for step in range(1, 7):
            outbox.log_metrics({"loss": float(model.train_on_batch(images, labels))}, step)
            if step % 2 == 0:
                outbox.log_checkpoint(model, step, "finetune", SPEC, {}, None, {})
        wait_for(lambda: outbox.outage_since is not None)
    finally:
        mlflow.set_tracking_uri(tracking_store)
    step, during_drain = 6, 0
    with outbox:
        while (folder / "checkpoint-6.keras").exists():
            step += 1
            outbox.log_metrics({"loss": float(model.train_on_batch(images, labels))}, step)
            during_drain += (folder / "checkpoint-6.keras").exists()
            assert step < 10_000, "the backlog never drained"
        outbox.flush()
    assert during_drain >= 1, "no training step finished while the backlog drained"
    assert history(run_id, "loss") == list(range(1, step + 1))
    assert [int(m.tags[STEP_TAG]) for m in find_checkpoints(run_id)] == [2, 4, 6]
    created = [m.creation_timestamp for m in find_checkpoints(run_id)]
    assert created == sorted(created)  # registered in step order
    assert not folder.exists()


def test_the_run_ends_through_the_outbox_and_an_outage_at_its_end_stops_within_the_limit(tracking_store, run_id,
                                                                                          tmp_path):
    """A server gone just before the run's end: one `TrackingLost` within the limit (not minutes of MLflow's
    retries), the run left RUNNING and no request made on leaving its block; the same command, reopening the
    run, drops the kept end instead of ending the run it trains in, and ends it when it finishes."""
    folder = tmp_path / "out" / "tracking-outbox"
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tracking_uri(refused_uri())
        try:
            with TrackingOutbox(run_id, folder, outage_limit_s=1.0, retry_every_s=0.1) as outbox:
                outbox.log_metrics({"loss": 1.0}, 1)
                started = time.monotonic()
                with pytest.raises(TrackingLost, match="same command"):
                    outbox.end_run("FINISHED")
                assert time.monotonic() - started < 30
        finally:
            mlflow.set_tracking_uri(tracking_store)
    kept = [json.loads(line)["kind"] for line in (folder / JOURNAL).read_text().splitlines()]
    assert kept == ["metrics", "end"]
    assert mlflow.get_run(run_id).info.status == "RUNNING"

    with mlflow.start_run(run_id=run_id):  # the same command again
        outbox = open_outbox(run_id, folder.parent)
        assert mlflow.get_run(run_id).info.status == "RUNNING" and history(run_id, "loss") == [1]
        with outbox:
            outbox.end_run("FAILED", {"mlimages.diverged_at_step": "2"})
        assert mlflow.active_run() is None
    run = mlflow.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["mlimages.diverged_at_step"] == "2"
    assert not folder.exists()


def test_a_journal_left_by_a_killed_process_is_delivered_once(run_id, tmp_path):
    """Killed after a send and before the journal moved on, and in the middle of an append: the resend is
    the same row, a checkpoint the server holds is not logged again, the half line is dropped."""
    folder = tmp_path / "out" / "tracking-outbox"
    with TrackingOutbox(run_id, folder, outage_limit_s=60) as outbox:
        outbox.log_metrics({"loss": 0.5, "learning_rate": 0.1}, 7)
        outbox.log_checkpoint(build_tiny_classifier(3, seed=1), 8, "finetune", SPEC, {}, None, {})
        outbox.flush()
    stored = mlflow.MlflowClient().get_metric_history(run_id, "loss")[0]
    folder.mkdir(parents=True)
    lines = [{"kind": "metrics", "step": 7, "timestamp": stored.timestamp, "values": {"loss": 0.5, "learning_rate": 0.1}},
             {"kind": "checkpoint", "step": 8, "task": "finetune", "spec": SPEC.__dict__, "classes_file": None,
              "tags": {}, "file": str(folder / "checkpoint-8.keras")},  # its snapshot went after the send
             {"kind": "metrics", "step": 9, "timestamp": stored.timestamp + 1, "values": {"loss": 0.25}}]
    (folder / JOURNAL).write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"kind": "met')
    open_outbox(run_id, folder.parent).close()
    assert history(run_id, "loss") == [7, 9] and history(run_id, "learning_rate") == [7]
    assert [int(m.tags[STEP_TAG]) for m in find_checkpoints(run_id)] == [8]
    assert not folder.exists()


def test_a_broken_journal_line_is_named(run_id, tmp_path):
    folder = tmp_path / "tracking-outbox"
    folder.mkdir()
    (folder / JOURNAL).write_text('{"kind": "metrics", "step": 1, "timestamp": 1, "values": {}}\nnot json\n')
    (folder / CURSOR).write_text(json.dumps({"offset": len((folder / JOURNAL).read_text().splitlines()[0]) + 1,
                                             "line": 1}))
    with pytest.raises(InputError, match=f"{JOURNAL}:2"):
        OutboxJournal(folder).peek()
    with pytest.raises(InputError, match=f"{JOURNAL}:2"):
        open_outbox(run_id, tmp_path)  # the sender's error, raised on the caller's thread


def test_the_journal_is_a_queue_on_disk_that_a_new_process_picks_up(tmp_path):
    journal = OutboxJournal(tmp_path / "outbox")
    for step in (1, 2, 3):
        journal.append({"step": step})
    journal.pop()
    again = OutboxJournal(tmp_path / "outbox")  # a new process: the cursor says where it was
    assert again.peek() == {"step": 2} and again.count_unsent() == 2
    again.pop(), again.pop()
    assert again.peek() is None and not (tmp_path / "outbox" / JOURNAL).exists()
    (tmp_path / "outbox" / CURSOR).write_text(json.dumps({"offset": 40, "line": 3}))  # its journal is gone
    fresh = OutboxJournal(tmp_path / "outbox")
    fresh.append({"step": 4})
    assert fresh.peek() == {"step": 4}


def test_a_refused_request_is_not_an_outage(run_id, tmp_path):
    with TrackingOutbox("0" * 32, tmp_path / "outbox", outage_limit_s=60) as outbox:
        outbox.log_metrics({"loss": 1.0}, 1)
        with pytest.raises(mlflow.exceptions.MlflowException):
            outbox.flush()  # no such run: an error now, not a retry for minutes
        assert outbox.outage_since is None


def test_the_outage_limit_is_checked(monkeypatch):
    from mlimages.tracking.outbox import read_outage_limit_s

    monkeypatch.setenv("MLIMAGES_TRACKING_OUTAGE_S", "soon")
    with pytest.raises(InputError, match="MLIMAGES_TRACKING_OUTAGE_S"):
        read_outage_limit_s()
    monkeypatch.setenv("MLIMAGES_TRACKING_OUTAGE_S", "45")
    assert read_outage_limit_s() == 45.0

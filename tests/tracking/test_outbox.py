"""The tracking outbox: kept through an outage (a real refused connection), stopped after the limit with
one line, and delivered exactly once when the store answers again (the real SQLite store)."""

from __future__ import annotations

import socket

import mlflow
import pytest

from mlimages.tracking.checkpoints import ModelSpec, find_checkpoints
from mlimages.tracking.names import STEP_TAG
from mlimages.tracking.outbox import JOURNAL, TrackingLost, TrackingOutbox, open_outbox

from tests.tracking_fixtures import build_tiny_classifier


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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


def test_an_outage_keeps_metrics_and_checkpoints_and_the_limit_stops_with_one_line(tracking_store, run_id,
                                                                                    tmp_path):
    folder, clock, model = tmp_path / "out" / "tracking-outbox", Clock(), build_tiny_classifier(3, seed=1)
    spec = ModelSpec(50, 0.125, 32, 0.875)
    mlflow.set_tracking_uri(refused_uri())
    try:
        outbox = TrackingOutbox(run_id, folder, outage_limit_s=60, clock=clock)
        outbox.log_metrics({"loss": 1.0}, 1)
        outbox.log_checkpoint(model, 2, "finetune", spec, {"top1_32": 0.5}, None, {"mlimages.epoch": "1.00"})
        clock.now += 30
        outbox.log_metrics({"loss": 0.5}, 3)
        assert len(outbox.pending) == 4 and (folder / "checkpoint-2.keras").is_file()
        assert len((folder / JOURNAL).read_text().splitlines()) == 4
        clock.now += 31
        with pytest.raises(TrackingLost) as error:
            outbox.log_metrics({"loss": 0.25}, 4)
    finally:
        mlflow.set_tracking_uri(tracking_store)
    message = str(error.value)
    assert "\n" not in message and "61 s" in message and "same command" in message and str(folder) in message
    assert len((folder / JOURNAL).read_text().splitlines()) == 5

    with mlflow.start_run(run_id=run_id):  # the same command again: the kept items go first
        open_outbox(run_id, folder.parent)
    assert history(run_id, "loss") == [1, 3, 4] and history(run_id, "top1_32") == [2]
    assert [int(m.tags[STEP_TAG]) for m in find_checkpoints(run_id)] == [2]
    assert not folder.exists()  # journal and snapshot gone once delivered


def test_a_resent_batch_is_stored_once(run_id, tmp_path):
    """What happens when the server stored a batch but the answer was lost: the resend is the same row."""
    outbox = TrackingOutbox(run_id, tmp_path / "outbox", outage_limit_s=60)
    outbox.log_metrics({"loss": 0.5, "learning_rate": 0.1}, 7)
    stored = mlflow.MlflowClient().get_metric_history(run_id, "loss")[0]
    outbox.pending.append({"kind": "metrics", "step": 7, "timestamp": stored.timestamp,
                           "values": {"loss": 0.5, "learning_rate": 0.1}})
    outbox.deliver()
    assert history(run_id, "loss") == [7] and history(run_id, "learning_rate") == [7]


def test_a_refused_request_is_not_an_outage(run_id, tmp_path):
    outbox = TrackingOutbox("0" * 32, tmp_path / "outbox", outage_limit_s=60)
    with pytest.raises(mlflow.exceptions.MlflowException):
        outbox.log_metrics({"loss": 1.0}, 1)  # no such run: an error now, not a retry for minutes
    assert outbox.outage_since is None


def test_the_outage_limit_is_checked(monkeypatch):
    from mlimages.errors import InputError
    from mlimages.tracking.outbox import read_outage_limit_s

    monkeypatch.setenv("MLIMAGES_TRACKING_OUTAGE_S", "soon")
    with pytest.raises(InputError, match="MLIMAGES_TRACKING_OUTAGE_S"):
        read_outage_limit_s()
    monkeypatch.setenv("MLIMAGES_TRACKING_OUTAGE_S", "45")
    assert read_outage_limit_s() == 45.0

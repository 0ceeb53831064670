"""Kill a training process with SIGKILL mid-run, start the same command again: it continues."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import tensorflow as tf

from mlimages.tracking.checkpoints import find_checkpoints
from mlimages.tracking.names import STEP_TAG

from .fakes import write_tiny_params

pytestmark = pytest.mark.slow  # trains, is killed, and trains again

REPO = Path(__file__).resolve().parents[2]
TOTAL_STEPS = 20


def start(tmp_path: Path, records: dict, killed: tuple[str, int] | None = None) -> subprocess.Popen:
    """pipelines/pretrain.py, or `killed_run.py` killing it `killed` = (before/after, step) a checkpoint save."""
    script = [str(REPO / "pipelines" / "pretrain.py")]
    if killed:
        script = [str(Path(__file__).with_name("killed_run.py")), killed[0], str(killed[1])]
    command = [sys.executable, *script, "--train", str(records["ml_train"]),
               "--val", str(records["ml_val"]), "--out", "out", "--params", "params.yaml"]
    log = (tmp_path / "train.log").open("a")
    return subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


def wait_for_checkpoint(folder: Path, process: subprocess.Popen, min_step: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        latest = tf.train.latest_checkpoint(str(folder))
        if latest and int(latest.rsplit("-", 1)[1]) >= min_step:
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint >= {min_step} appeared (exit status {process.poll()})")


def test_sigkill_then_same_command_resumes_the_same_run(tiny_records, tracking_uri, tmp_path):
    write_tiny_params(tmp_path / "params.yaml", {"steps": TOTAL_STEPS, "log_every_steps": 1,
                                                "checkpoint_every_steps": 5, "checkpoint_every_epochs": 0,
                                                "val_examples": 8}, {})
    first = start(tmp_path, tiny_records)
    wait_for_checkpoint(tmp_path / "out" / "checkpoints", first, min_step=10)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    latest = tf.train.latest_checkpoint(str(tmp_path / "out" / "checkpoints"))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert killed_at < TOTAL_STEPS, "the first process finished before it was killed"
    reader = tf.train.load_checkpoint(latest)
    counters = reader.get_tensor("pos_counts/.ATTRIBUTES/VARIABLE_VALUE")
    assert counters.sum() > 0

    second = start(tmp_path, tiny_records)
    assert second.wait(timeout=300) == 0, (tmp_path / "train.log").read_text()[-3000:]
    log = (tmp_path / "train.log").read_text()
    resumed = re.search(r"resumed from step (\d+) \(optimizer iterations (\d+), positive-counter sum ([\d.]+)\)", log)
    assert resumed, log[-3000:]
    assert int(resumed[1]) == int(resumed[2]) == killed_at
    assert abs(float(resumed[3]) - counters.sum()) < 0.05

    (run,) = mlflow.search_runs(experiment_names=["test"], output_format="list")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, TOTAL_STEPS + 1)), steps  # every step once: no gap, no duplicate
    assert_every_checkpoint_once(run.info.run_id)


def assert_every_checkpoint_once(run_id: str) -> None:
    logged = [int(m.tags[STEP_TAG]) for m in find_checkpoints(run_id)]
    assert logged == list(range(5, TOTAL_STEPS + 1, 5)), logged
    assert all(str(m.status).endswith("READY") for m in find_checkpoints(run_id))


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_a_checkpoint_save_loses_no_logged_model(tiny_records, tracking_uri, tmp_path, when):
    """Killed right before or right after checkpoint 10 is saved: the same command logs every checkpoint once."""
    write_tiny_params(tmp_path / "params.yaml", {"steps": TOTAL_STEPS, "log_every_steps": 1,
                                                "checkpoint_every_steps": 5, "checkpoint_every_epochs": 0,
                                                "val_examples": 8}, {})
    assert start(tmp_path, tiny_records, killed=(when, 10)).wait(timeout=300) == -signal.SIGKILL
    saved = int(tf.train.latest_checkpoint(str(tmp_path / "out" / "checkpoints")).rsplit("-", 1)[1])
    assert saved == (5 if when == "before" else 10)
    assert start(tmp_path, tiny_records).wait(timeout=300) == 0, (tmp_path / "train.log").read_text()[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["test"], output_format="list")
    assert run.info.status == "FINISHED"
    for key in ("loss", "val_map"):
        steps = sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, key))
        assert steps == (list(range(1, TOTAL_STEPS + 1)) if key == "loss" else list(range(5, TOTAL_STEPS + 1, 5)))
    assert_every_checkpoint_once(run.info.run_id)

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


def start(tmp_path: Path, records: dict) -> subprocess.Popen:
    command = [sys.executable, str(REPO / "pipelines" / "pretrain.py"), "--train", str(records["ml_train"]),
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
                                                "checkpoint_every_steps": 5, "val_examples": 8}, {})
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
    logged = [int(m.tags[STEP_TAG]) for m in find_checkpoints(run.info.run_id)]
    assert logged == sorted(set(logged)) and logged[-1] == TOTAL_STEPS

"""MirroredStrategy on two logical CPU devices, MultiWorkerMirroredStrategy with two local workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .fakes import REPO, write_tiny_params

pytestmark = pytest.mark.slow  # two TensorFlow processes training together

SCRIPT = Path(__file__).with_name("distributed_run.py")
STEPS = 4


def replica_weights(path: Path) -> list[list[np.ndarray]]:
    data = np.load(path)
    count = len([k for k in data.files if k.startswith("r0_")])
    return [[data[f"r{r}_{i}"] for i in range(count)] for r in range(int(data["replicas"]))]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def command(strategy: str, tmp_path: Path, records: dict, weights: str) -> list[str]:
    return [sys.executable, str(SCRIPT), strategy, "params.yaml", str(records["ml_train"]),
            str(records["ml_val"]), "out", weights]


def test_mirrored_two_logical_cpus_keep_replicas_identical(tiny_records, tracking_uri, tmp_path):
    write_tiny_params(tmp_path / "params.yaml", {"steps": STEPS}, {})
    done = subprocess.run(command("mirrored", tmp_path, tiny_records, "w.npz"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    replicas = replica_weights(tmp_path / "w.npz")
    assert len(replicas) == 2 and int(np.load(tmp_path / "w.npz")["step"]) == STEPS
    for first, second in zip(*replicas):
        np.testing.assert_array_equal(first, second)


def test_multi_worker_two_processes_end_with_identical_weights(tiny_records, tracking_uri, tmp_path):
    write_tiny_params(tmp_path / "params.yaml", {"steps": STEPS}, {})
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(command("multi_worker", tmp_path, tiny_records, f"w{index}.npz"), cwd=tmp_path,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    (chief,), (other,) = replica_weights(tmp_path / "w0.npz"), replica_weights(tmp_path / "w1.npz")
    assert len(chief) == len(other) > 0
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "out" / "model.keras").is_file()  # only the chief writes the model and the run


def test_a_worker_that_never_joins_stops_the_others_after_worker_start_timeout_s(tiny_records, tracking_uri,
                                                                                 tmp_path):
    write_tiny_params(tmp_path / "params.yaml", {"steps": 2, "strategy": "multi_worker", "worker_start_timeout_s": 3},
                      {})
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}  # task 1 is never started
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    pretrain = [sys.executable, str(REPO / "pipelines" / "pretrain.py"), "--train", str(tiny_records["ml_train"]),
                "--val", str(tiny_records["ml_val"]), "--out", "out", "--params", "params.yaml"]
    # without a bound TensorFlow waits an hour for the missing task
    done = subprocess.run(pretrain, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 4 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0] == ("error: lost worker 1 during start-up (did not join in time: worker_start_timeout_s); the "
                        "chief's checkpoints are kept; run the same command on every host to resume")

"""Multi-worker training across two network namespaces: identical weights, a lost host, a resume.

Each worker runs in its own namespace with its own address on a veth pair (10.231.x.1/30 and .2/30,
nothing routed beyond the pair), so the workers talk over a real link as two hosts would. The lost
host is made by taking its link down and SIGKILLing it: no connection reset reaches the chief,
which must notice by itself and stop within 2 * `worker_timeout_s`, whatever it is doing: a step,
or a validation or a checkpoint save held longer than that (`held_run.py`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .fakes import REPO, write_tiny_params
from .test_distributed import SCRIPT, replica_weights

PORT = 23571
TIMEOUT_S = 5
BOUND_S = 2 * TIMEOUT_S  # a lost peer is noticed within TIMEOUT_S and the chief stopped by BOUND_S
SLACK_S = 25  # the error's way up and the process exit, on a shared 2-core machine
HELD = Path(__file__).with_name("held_run.py")

pytestmark = pytest.mark.slow  # two TensorFlow processes train together, minutes each


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture()
def two_hosts():
    """Two namespaces joined by a veth pair; yields [(namespace, address, device)]; removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = f"{os.getpid() % 10000}"
    subnet = os.getpid() % 250 + 1
    hosts = [(f"mlimg{tag}{side}", f"10.231.{subnet}.{number}", f"mlv{tag}{side}")
             for side, number in (("a", 1), ("b", 2))]
    try:
        made = ip("netns", "add", hosts[0][0], check=False)
        if made.returncode:
            pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
        ip("netns", "add", hosts[1][0])
        ip("link", "add", hosts[0][2], "type", "veth", "peer", "name", hosts[1][2])
        for namespace, address, device in hosts:
            ip("link", "set", device, "netns", namespace)
            ip("-n", namespace, "addr", "add", f"{address}/30", "dev", device)
            ip("-n", namespace, "link", "set", device, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        yield hosts
    finally:
        for namespace, _, _ in hosts:
            ip("netns", "del", namespace, check=False)  # takes its end of the veth pair with it


def tf_config(hosts, index: int) -> str:
    addresses = ",".join(f"{address}:{PORT}" for _, address, _ in hosts)
    command = [str(Path(sys.executable).with_name("mlimages")), "cluster", "tf-config", "--hosts", addresses,
               "--index", str(index)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return done.stdout.strip()


def start(hosts, index: int, command: list[str], cwd: Path, log: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CONFIG": tf_config(hosts, index)}
    with (cwd / log).open("a") as out:
        return subprocess.Popen(["ip", "netns", "exec", hosts[index][0], *command], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def wait_all(workers: list[subprocess.Popen], timeout_s: float) -> list[int]:
    try:
        return [worker.wait(timeout=timeout_s) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def test_two_hosts_train_identically(two_hosts, tiny_records, tracking_uri, tmp_path):
    write_tiny_params(tmp_path / "params.yaml", {"steps": 3, "worker_timeout_s": TIMEOUT_S}, {})
    workers = [start(two_hosts, i, [sys.executable, str(SCRIPT), "multi_worker", "params.yaml",
                                    str(tiny_records["ml_train"]), str(tiny_records["ml_val"]), "out", f"w{i}.npz"],
                     tmp_path, f"w{i}.log") for i in range(2)]
    assert wait_all(workers, 300) == [0, 0], (tmp_path / "w0.log").read_text()[-3000:]
    (chief,), (other,) = replica_weights(tmp_path / "w0.npz"), replica_weights(tmp_path / "w1.npz")
    assert len(chief) == len(other) > 0
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)


def pretrain(records: dict) -> list[str]:
    return [sys.executable, str(REPO / "pipelines" / "pretrain.py"), "--train", str(records["ml_train"]),
            "--val", str(records["ml_val"]), "--out", "out", "--params", "params.yaml"]


def wait_for_checkpoint(folder: Path, workers: list[subprocess.Popen], min_step: int, timeout_s: float = 240) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and all(w.poll() is None for w in workers):
        steps = [int(p.name[5:-6]) for p in folder.glob("ckpt-*.index")]
        if steps and max(steps) >= min_step:
            return max(steps)
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint >= {min_step} appeared (exit statuses {[w.poll() for w in workers]})")


def lose_host(hosts, worker: subprocess.Popen) -> float:
    namespace, _, device = hosts[1]
    ip("-n", namespace, "link", "set", device, "down")  # the host drops off the network ...
    os.kill(worker.pid, signal.SIGKILL)  # ... and dies: no reset reaches the chief
    return time.monotonic()


def lost_line(log: Path) -> str:
    """The chief's one ``error: lost`` line."""
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("error: lost")]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def run_statuses() -> list[str]:
    """The status of every MLflow run in the test's store (the chief's run)."""
    import mlflow

    return [run.info.status for run in mlflow.search_runs(search_all_experiments=True, output_format="list")]


def resume_finishes(hosts, records: dict, tmp_path: Path) -> list[str]:
    """Bring the host back, run the same commands again; the steps the chief resumed from."""
    ip("-n", hosts[1][0], "link", "set", hosts[1][2], "up")
    workers = [start(hosts, i, pretrain(records), tmp_path, f"w{i}.log") for i in range(2)]
    assert wait_all(workers, 300) == [0, 0], (tmp_path / "w0.log").read_text()[-3000:]
    assert (tmp_path / "out" / "model.keras").is_file()
    assert run_statuses() == ["FINISHED"]  # the same run, resumed
    return re.findall(r"resumed from step (\d+)", (tmp_path / "w0.log").read_text())


def lose_worker_1(two_hosts, workers) -> tuple[int, float]:
    """Take worker 1's host off the network and kill it: the chief's exit status, and seconds until it exited."""
    lost_at = lose_host(two_hosts, workers[1])
    status = workers[0].wait(timeout=BOUND_S + SLACK_S)
    return status, time.monotonic() - lost_at


def test_lost_host_stops_the_chief_in_bound_and_the_same_commands_resume(two_hosts, tiny_records, tracking_uri,
                                                                           tmp_path):
    total = 40
    write_tiny_params(tmp_path / "params.yaml", {"steps": total, "checkpoint_every_steps": 5, "val_examples": 8,
                                                "worker_timeout_s": TIMEOUT_S, "strategy": "multi_worker"}, {})
    workers = [start(two_hosts, i, pretrain(tiny_records), tmp_path, f"w{i}.log") for i in range(2)]
    try:
        wait_for_checkpoint(tmp_path / "out" / "checkpoints", workers, min_step=10)
        status, elapsed = lose_worker_1(two_hosts, workers)
    finally:
        wait_all(workers, 0.1)
    line = lost_line(tmp_path / "w0.log")
    assert status == 4, line
    # the chief may still be saving or validating when it notices; usually it waits in the next step
    assert re.match(r"error: lost worker 1 during .*step \d+ .*last checkpoint out/checkpoints/ckpt-\d+", line)
    kept = max(int(p.name[5:-6]) for p in (tmp_path / "out" / "checkpoints").glob("ckpt-*.index"))
    assert 10 <= kept < total and f"ckpt-{kept}" in line
    assert run_statuses() == ["FAILED"]
    print(f"chief stopped {elapsed:.1f} s after losing worker 1 (worker_timeout_s {TIMEOUT_S}), kept step {kept}")
    assert resume_finishes(two_hosts, tiny_records, tmp_path) == [str(kept)]


@pytest.mark.parametrize("phase, shown", [("save", "checkpoint save"), ("validation", "validation")])
def test_lost_host_stops_the_chief_held_in_a_phase(two_hosts, tiny_records, tracking_uri, tmp_path, phase, shown):
    """The chief's second validation or save (step 10) outlasts the bound; the peer is lost meanwhile."""
    write_tiny_params(tmp_path / "params.yaml", {"steps": 15, "checkpoint_every_steps": 5, "checkpoint_every_epochs": 0,
                                                "val_examples": 8, "worker_timeout_s": TIMEOUT_S,
                                                "strategy": "multi_worker"}, {})
    marker = tmp_path / "held"
    chief = [sys.executable, str(HELD), phase, "2", str(marker), *pretrain(tiny_records)[2:]]
    workers = [start(two_hosts, 0, chief, tmp_path, "w0.log"), start(two_hosts, 1, pretrain(tiny_records),
                                                                     tmp_path, "w1.log")]
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and time.monotonic() < deadline and all(w.poll() is None for w in workers):
            time.sleep(0.05)
        assert marker.exists(), f"the chief never reached its held {phase}: {[w.poll() for w in workers]}"
        status, elapsed = lose_worker_1(two_hosts, workers)
    finally:
        wait_all(workers, 0.1)
    line = lost_line(tmp_path / "w0.log")
    print(f"chief held in {phase} stopped {elapsed:.1f} s after losing worker 1 (worker_timeout_s {TIMEOUT_S})")
    assert status == 4, line
    assert re.match(rf"error: lost worker 1 during {shown} at step 10 \(.*\); last checkpoint "
                    r"out/checkpoints/ckpt-5; run the same command on every host to resume$", line)
    assert run_statuses() == ["FAILED"]  # also when the watchdog ends the process itself
    assert resume_finishes(two_hosts, tiny_records, tmp_path) == ["5"]

"""Multi-worker training across two network namespaces: identical weights, a lost host, a resume.

Each worker runs in its own namespace with its own address on a veth pair (10.231.x.1/30 and .2/30,
nothing routed beyond the pair), so the workers talk over a real link as two hosts would. The lost
host is made by taking its link down and SIGKILLing it: no connection reset reaches the chief,
which must notice by itself within `worker_timeout_s`.
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
SLACK_S = 25  # the step in flight, the error's way up and the process exit, on a shared 2-core machine


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


def test_lost_host_stops_the_chief_in_bound_and_the_same_commands_resume(two_hosts, tiny_records, tracking_uri,
                                                                           tmp_path):
    total = 40
    write_tiny_params(tmp_path / "params.yaml", {"steps": total, "checkpoint_every_steps": 5, "val_examples": 8,
                                                "worker_timeout_s": TIMEOUT_S, "strategy": "multi_worker"}, {})
    workers = [start(two_hosts, i, pretrain(tiny_records), tmp_path, f"w{i}.log") for i in range(2)]
    try:
        wait_for_checkpoint(tmp_path / "out" / "checkpoints", workers, min_step=10)
        namespace, _, device = two_hosts[1]
        ip("-n", namespace, "link", "set", device, "down")  # the host drops off the network ...
        os.kill(workers[1].pid, signal.SIGKILL)  # ... and dies: no reset reaches the chief
        lost_at = time.monotonic()
        status = workers[0].wait(timeout=TIMEOUT_S + SLACK_S)
        elapsed = time.monotonic() - lost_at
    finally:
        wait_all(workers, 0.1)
    chief_log = (tmp_path / "w0.log").read_text()
    lines = [line for line in chief_log.splitlines() if line.startswith("error: lost")]
    assert status == 4 and len(lines) == 1, chief_log[-3000:]
    assert re.match(r"error: lost worker 1 during step \d+ .*last checkpoint out/checkpoints/ckpt-\d+", lines[0])
    kept = max(int(p.name[5:-6]) for p in (tmp_path / "out" / "checkpoints").glob("ckpt-*.index"))
    assert 10 <= kept < total and f"ckpt-{kept}" in lines[0]
    print(f"chief stopped {elapsed:.1f} s after losing worker 1 (worker_timeout_s {TIMEOUT_S}), kept step {kept}")

    ip("-n", two_hosts[1][0], "link", "set", two_hosts[1][2], "up")
    workers = [start(two_hosts, i, pretrain(tiny_records), tmp_path, f"w{i}.log") for i in range(2)]
    assert wait_all(workers, 300) == [0, 0], (tmp_path / "w0.log").read_text()[-3000:]
    resumed = re.findall(r"resumed from step (\d+)", (tmp_path / "w0.log").read_text())
    assert resumed == [str(kept)]
    assert (tmp_path / "out" / "model.keras").is_file()

"""A node's link to the run's coordinator: a worker that cannot reach it ends at once, recording nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlimages.download.coordinator import start_coordinator

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from mlimages.cluster.coordinator_link import RemoteBudget, reach
from mlimages.download.coordinator import CoordinatorAddress

address = CoordinatorAddress(("127.0.0.1", int(sys.argv[1])), bytes.fromhex(sys.argv[2]))
budget = RemoteBudget(reach(address.connect().budget), owner=1)
print("connected", flush=True)
input()  # the test stops the coordinator here
budget.acquire("h")
print("a slot was recorded after all", flush=True)
"""


def test_a_worker_that_loses_the_coordinator_ends_at_once():
    """An exception per line would be recorded as `unexpected`, which a rerun does not fetch again: the worker
    process ends instead (a Ray worker, as a lost node's would), with one line saying why."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")
    key = os.urandom(32)
    manager, _ = start_coordinator(2, 1, 4, ("127.0.0.1", 0), key)
    probe = subprocess.Popen([sys.executable, "-c", PROBE, str(manager.address[1]), key.hex()], cwd=REPO, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert probe.stdout.readline() == "connected\n"
    finally:
        manager.shutdown()
    out, err = probe.communicate("\n", timeout=60)
    assert probe.returncode == 75 and out == ""
    assert "the run's coordinator cannot be reached" in err and "this worker stops" in err

"""The watchdog's guard in one process: a lost-peer error in any phase becomes one line naming it.

The watchdog thread itself needs a cluster; test_multihost.py runs it across two network namespaces.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import tensorflow as tf

from mlimages.train.peers import WorkerLost, watch_peers

from .test_cluster import SILENT

CLUSTER = {"cluster": {"worker": ["h0:2222", "h1:2222"]}, "task": {"type": "worker", "index": 0}}


def test_a_lost_peer_error_in_any_phase_becomes_one_line_naming_the_phase(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(CLUSTER))
    with pytest.raises(WorkerLost) as lost:
        with watch_peers("multi_worker", 5) as watch:
            watch.phase = "validation at step 10"
            raise tf.errors.UnavailableError(None, None, SILENT)
    assert str(lost.value).startswith("lost worker 1 during validation at step 10 (Error reported from")
    assert str(lost.value).endswith("; the chief's checkpoints are kept; run the same command on every host to resume")


def test_other_strategies_and_other_errors_pass_through(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(CLUSTER))
    with pytest.raises(tf.errors.UnavailableError):
        with watch_peers("default", 5):
            raise tf.errors.UnavailableError(None, None, SILENT)
    with pytest.raises(tf.errors.InvalidArgumentError):
        with watch_peers("multi_worker", 5):
            raise tf.errors.InvalidArgumentError(None, None, "bad shape")


def test_the_line_is_said_once_per_process():
    code = "from mlimages.train.peers import say_once; print(say_once('lost worker 1'), say_once('lost worker 2'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"]
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == ["error: lost worker 1"]

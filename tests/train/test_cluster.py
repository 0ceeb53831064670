"""TF_CONFIG generation from a host list: the JSON each host needs, one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from mlimages.errors import InputError
from mlimages.train.distribute import describe_lost_worker
from mlimages.train.cluster import make_tf_config, parse_hosts, read_hosts_file

MLIMAGES = str(Path(sys.executable).with_name("mlimages"))


def test_every_host_gets_the_same_cluster_and_its_own_index():
    hosts = parse_hosts("10.0.0.1:2222, node-b:2223,[fd00::3]:2222")
    configs = [make_tf_config(hosts, i) for i in range(3)]
    assert {json.dumps(c["cluster"]) for c in configs} == {
        json.dumps({"worker": ["10.0.0.1:2222", "node-b:2223", "[fd00::3]:2222"]})}
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]


@pytest.mark.parametrize("text, message", [
    ("h1:2222,h2", "--hosts item 2: expected HOST:PORT, got 'h2'"),
    ("h1:0", "port of 'h1:0' must be a number in 1..65535"),
    ("h1:2222,h1:2222", "--hosts: h1:2222 is listed twice"),
    ("fd00::1:2222", "write an IPv6 address as [ADDRESS]:PORT"),
    ("[fd00::zz]:2222", "'fd00::zz' is not an IPv6 address"),
    (":2222", "expected HOST:PORT"),
])
def test_bad_host_lists_are_named(text, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_hosts(text)


def test_hosts_file_errors_name_the_line(tmp_path):
    path = tmp_path / "hosts.txt"
    path.write_text("# training hosts\nh1:2222\n\nh2:port  # typo\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"{path}:4: port of 'h2:port' must be"):
        read_hosts_file(path)
    path.write_text("h1:2222\nh2:2222 # second\n", encoding="utf-8")
    assert read_hosts_file(path) == ["h1:2222", "h2:2222"]


def test_index_outside_the_cluster_is_an_error():
    with pytest.raises(InputError, match=r"--index: index 2 is not in 0\.\.1 \(2 hosts\)"):
        make_tf_config(["h1:1", "h2:1"], 2)


def test_command_prints_a_shell_line_and_one_line_errors(tmp_path):
    (tmp_path / "hosts.txt").write_text("h1:2222\nh2:2222\n", encoding="utf-8")
    done = subprocess.run([MLIMAGES, "cluster", "tf-config", "--hosts-file", str(tmp_path / "hosts.txt"),
                           "--index", "1", "--shell"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    exported = done.stdout.strip()
    assert exported.startswith("export TF_CONFIG='") and exported.endswith("'")
    assert json.loads(exported[len("export TF_CONFIG='"):-1])["task"] == {"type": "worker", "index": 1}
    bad = subprocess.run([MLIMAGES, "cluster", "tf-config", "--hosts-file", str(tmp_path / "missing.txt"),
                          "--index", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.txt'}: cannot read hosts file "
                                               "(No such file or directory)"]


# Messages as TF 2.21 raised them in the namespace test and in runs where a peer was stopped or killed.
SILENT = ("Graph execution error:\n\nCollective ops is aborted by: Error reported from /job:worker/task:1: The "
          "following tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks "
          "have crashed.")
RESET = ("Graph execution error:\n\nDetected at node on /job:worker/replica:0/task:0/device:CPU:0\nCollective ops is "
         "aborted by: Socket closed\nAdditional GRPC error information from remote target "
         "/job:worker/replica:0/task:2 while calling /tensorflow.WorkerService/RecvBuf:")


# task 0 at start-up when task 1 never came (the registration barrier of worker_start_timeout_s)
NEVER_JOINED = ("Barrier timed out. Id: [Init]Wait_for_all_tasks_to_register::0. This usually happens because a "
                "task triggered the barrier too early or too slowly.\n# of tasks that reached the barrier: 1/2.\nThe "
                "first task at the barrier: /job:worker/replica:0/task:0. Some timed out task names:\n"
                "/job:worker/replica:0/task:1\n\nAdditional GRPC error information from remote target "
                "/job:worker/replica:0/task:0 while calling /tensorflow.CoordinationService/RegisterTask:")


@pytest.mark.parametrize("error, lost, reason", [
    (tf.errors.DeadlineExceededError(None, None, NEVER_JOINED), "worker 1", "(did not join in time"),
    (tf.errors.UnavailableError(None, None, SILENT), "worker 1", "Error reported from /job:worker/task:1"),
    (tf.errors.UnavailableError(None, None, RESET), "worker 2", "(Socket closed)"),
    # this worker's heartbeat to the coordination service timed out: the service's host (task 0) is gone
    (tf.errors.DeadlineExceededError(None, None, "Deadline Exceeded"), "worker 0", "(DeadlineExceededError)"),
])
def test_lost_worker_line_names_the_task(error, lost, reason):
    cluster = tf.train.ClusterSpec({"worker": ["h0:1", "h1:1", "h2:1"]})
    line = describe_lost_worker(error, "step 12", cluster, "out/checkpoints/ckpt-10")
    assert "\n" not in line and line.startswith(f"lost {lost} during step 12 ") and reason in line
    assert "last checkpoint out/checkpoints/ckpt-10; run the same command on every host to resume" in line
    assert "the chief's checkpoints are kept" in describe_lost_worker(error, "step 12", cluster, None)

"""How `mlimages team serve` stops a server group that does not stop by itself: killed within bounds,
and gone (port free) when the launcher returns."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from mlimages.team.server import stop_group

STUBBORN = """
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
if os.fork() == 0:  # a worker that shares the listening socket and ignores SIGTERM too
    time.sleep(300)
print(listener.getsockname()[1], flush=True)
time.sleep(300)
"""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_group_that_ignores_sigterm_is_killed_and_its_port_freed():
    leader = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    port = int(leader.stdout.readline())
    started = time.monotonic()
    stop_group(leader, grace_s=5.0)  # the orphaned worker is reaped by init
    assert time.monotonic() - started < 15
    assert leader.returncode is not None and not group_alive(leader.pid)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_group_that_stops_on_sigterm_is_not_waited_for():
    leader = subprocess.Popen([sys.executable, "-c", "import time; print(1, flush=True); time.sleep(300)"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    leader.stdout.readline()
    started = time.monotonic()
    stop_group(leader, grace_s=30.0)
    assert time.monotonic() - started < 10 and leader.returncode == -15

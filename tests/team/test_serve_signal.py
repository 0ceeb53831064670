"""SIGTERM to `mlimages team serve` alone stops everything `mlflow server` started (workers, job runners)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow  # restarts the team server


def processes() -> list[dict]:
    """pid, parent, process group and state of every live process, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (name) "
        found.append({"pid": int(stat.parent.name), "state": fields[0], "ppid": int(fields[1]),
                      "pgid": int(fields[2])})
    return found


def members(group: int) -> list[dict]:
    return [p for p in processes() if p["pgid"] == group and p["state"] != "Z"]


def test_sigterm_to_the_launcher_stops_the_whole_server(team_server):
    launcher = team_server.process
    children = [p for p in processes() if p["ppid"] == launcher.pid]
    assert len(children) == 1, children
    group = children[0]["pgid"]
    assert group == children[0]["pid"] and len(members(group)) >= 2, members(group)  # server + its workers
    try:
        os.kill(launcher.pid, signal.SIGTERM)  # the launcher only, as a service manager or a shell would
        launcher.wait(timeout=60)
        assert members(group) == []
        port = urlsplit(team_server.url).port
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections may linger
            sock.bind(("127.0.0.1", port))  # nothing holds the port any more
    finally:
        team_server.stop()
        team_server.start(team_server.root / "team.yaml")

"""Fixtures of the download tests: the fault server and a port that never accepts."""

from __future__ import annotations

import socket

import pytest

from .fault_server import running_fault_server


@pytest.fixture
def server():
    with running_fault_server() as server:
        yield server


@pytest.fixture
def dead_port():
    """A port whose listen queue is full: connecting to it times out without leaving the machine."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    yield port
    for sock in fillers + [listener]:
        sock.close()

"""Fixtures of the download tests: the fault server and a port that never accepts."""

from __future__ import annotations

import socket
import threading
import zlib

import pytest

from .fault_server import FaultServer, make_jpeg


@pytest.fixture
def server():
    server = FaultServer()
    server.routes["/ok/"] = lambda h, hits: h.send_body(200, make_jpeg(zlib.crc32(h.path.encode()) % 1000))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


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

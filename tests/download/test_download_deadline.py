"""`deadline_s` bounds a whole attempt whatever the server does; the watchdog frees a stuck request's host."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mlimages.download.fetch import Fetcher

from .fault_server import make_jpeg, run_download

# Per-recv timeouts far longer than the deadline: only a total deadline can end these attempts in time.
SLOW_SERVER = dict(connect_timeout_s=10.0, read_timeout_s=10.0, deadline_s=1.5, watchdog_s=30.0, max_attempts=1)


def drip_headers(handler, hits):
    """A status line, then one header byte a second: every recv gets a byte well inside the read timeout."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not handler.server.stopping.is_set():
        try:
            handler.wfile.write(b"a")
            handler.wfile.flush()
        except OSError:  # the client gave up: what the test wants
            return
        time.sleep(1.0)


def test_headers_dripped_a_byte_a_second_end_at_the_deadline(server, tmp_path):
    server.routes["/drip"] = drip_headers
    sources = [server.url("/ok/a.jpg"), server.url("/drip"), server.url("/ok/b.jpg"), server.url("/ok/c.jpg")]
    settings = dict(SLOW_SERVER, read_timeout_s=1.8, deadline_s=1.2, max_attempts=2, per_host_concurrency=2)
    outcome = run_download(tmp_path, sources, **settings)
    record = outcome.statuses[2]
    assert (record["status"], record["attempts"], record["retryable"]) == ("timeout", 2, True)  # retried once
    assert record["elapsed_s"] < 2 * (1.2 + 1.0) + 0.2 + 0.5  # two attempts at the deadline, one short back-off
    assert "deadline" in record["error"]
    assert [outcome.status(line) for line in (1, 3, 4)] == ["ok", "ok", "ok"]  # the same host's other URLs


def test_redirect_chain_of_slow_hops_ends_at_the_deadline(server, tmp_path):
    def hop(handler, hits):
        number = int(handler.path.rsplit("/", 1)[1])
        time.sleep(0.7)  # inside the 1 s read timeout, every hop
        handler.send_response(302)
        handler.send_header("Location", f"/hop/{number + 1}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server.routes["/hop/"] = hop
    start = time.monotonic()
    outcome = run_download(tmp_path, [server.url("/hop/0")], **dict(SLOW_SERVER, read_timeout_s=1.0, max_redirects=30))
    record = outcome.statuses[1]
    assert record["status"] == "timeout" and record["elapsed_s"] < 1.5 + 1.0
    assert server.hits["/hop/2"] == 1 and server.hits["/hop/5"] == 0  # it followed hops, then the deadline hit
    assert time.monotonic() - start < 10


@pytest.fixture
def silent_tls_port():
    """A listener that accepts connections and never says a word: a TLS handshake waits forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted, done = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    done.set()
    thread.join()
    for sock in accepted + [listener]:
        sock.close()


def test_tls_handshake_that_never_finishes_ends_at_the_deadline(server, tmp_path, silent_tls_port):
    port, accepted = silent_tls_port
    sources = [server.url("/ok/a.jpg"), f"https://127.0.0.1:{port}/x.jpg"]
    outcome = run_download(tmp_path, sources, **SLOW_SERVER)
    record = outcome.statuses[2]
    assert record["status"] == "timeout" and record["elapsed_s"] < 1.5 + 1.0
    assert accepted and outcome.status(1) == "ok"  # it did connect: the handshake is what hung


def test_a_request_ignoring_every_timeout_is_abandoned_and_frees_its_host(server, tmp_path, monkeypatch):
    """A fetch double that never returns in time holds the host's only slot: the watchdog must free it."""
    release, real_fetch = threading.Event(), Fetcher._fetch_http

    def fetch_or_hang(self, url):
        if url.endswith("/stuck.jpg"):
            release.wait(30)  # deaf to every socket timeout and to the deadline
            return bytearray(make_jpeg(1)), 200
        return real_fetch(self, url)

    monkeypatch.setattr(Fetcher, "_fetch_http", fetch_or_hang)
    sources = [server.url("/ok/stuck.jpg")] + [server.url(f"/ok/{i}.jpg") for i in range(3)]
    start = time.monotonic()
    try:
        outcome = run_download(tmp_path, sources, per_host_concurrency=1, per_host_concurrency_min=1,
                               per_host_concurrency_max=1, concurrency=2, deadline_s=0.5, read_timeout_s=0.5,
                               watchdog_s=1.5)
    finally:
        release.set()
    time.sleep(0.2)  # the abandoned thread returns now: its late result must not be written anywhere
    assert time.monotonic() - start < 8
    assert outcome.status(1) == "watchdog" and outcome.statuses[1]["retryable"]
    assert [outcome.status(line) for line in (2, 3, 4)] == ["ok", "ok", "ok"]
    assert 1 not in outcome.samples and server.hits["/ok/0.jpg"] == 1
    assert outcome.report["failed"] == 1 and outcome.report["stored"] == 3

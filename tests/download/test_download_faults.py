"""One test per fault: the recorded outcome, and good URLs of the same run still stored."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import time

import pytest
from PIL import Image

from mlimages.download.fetch import Fetcher
from mlimages.download.hosts import HostGate
from mlimages.download.outcome import FetchError

from .fault_server import FAST, make_bomb_png, make_jpeg, make_png, run_download

GOOD = ["/ok/first.jpg", "/ok/second.jpg"]


def check_good(outcome, lines=(1, 2)):
    """The good URLs (first lines of every list) are stored, with labels and a matching sha256."""
    for line in lines:
        assert outcome.status(line) == "ok", outcome.statuses[line]
        meta = outcome.samples[line]
        assert meta["labels"] == sorted([(line - 1) % 5, 9]) and meta["width"] == 32 and meta["height"] == 24
        assert hashlib.sha256(outcome.images[meta["key"]]).hexdigest() == meta["sha256"]


def drip(handler, hits):
    """Headers at once, then one byte every 50 ms: never done before the deadline."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(200):
        if handler.server.stopping.is_set():
            return
        handler.wfile.write(b"\xff")
        handler.wfile.flush()
        time.sleep(0.05)


def reset_mid_body(handler, hits):
    body = make_jpeg(5)
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    # Linger 0: closing sends a TCP reset instead of an orderly end of stream.
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    for stream in (handler.wfile, handler.rfile, handler.connection):
        stream.close()


def chunked_forever(handler, hits):
    """No Content-Length: the size limit must be enforced while reading."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"\xff" * 65536
    for _ in range(10):
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    handler.wfile.write(b"0\r\n\r\n")


def redirect(to):
    def route(handler, hits):
        handler.send_response(302)
        handler.send_header("Location", to)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


PERMANENT_FAULTS = {
    # name: (route, expected status, expected HTTP status)
    "404": (lambda h, n: h.send_body(404, b"missing", "text/plain"), "not_found", 404),
    "410": (lambda h, n: h.send_body(410, b"gone", "text/plain"), "gone", 410),
    "html": (lambda h, n: h.send_body(200, b"<html>nope</html>", "text/html"), "not_image", 200),
    "html_as_jpeg": (lambda h, n: h.send_body(200, b"<html>nope</html>" * 10, "image/jpeg"), "not_image", 200),
    "truncated_jpeg": (lambda h, n: h.send_body(200, make_jpeg(7)[:-300]), "truncated", 200),
    "redirect_loop": (redirect("/fault"), "redirect_loop", None),
    "placeholder": (redirect("/img/photo_unavailable.png"), "gone", 200),
    "too_large_declared": (lambda h, n: h.send_body(200, b"\xff" * 300_000), "too_large", 200),
    "too_large_chunked": (chunked_forever, "too_large", 200),
    "bomb_png": (lambda h, n: h.send_body(200, make_bomb_png(), "image/png"), "too_many_pixels", 200),
    "noai": (lambda h, n: h.send_body(200, make_jpeg(3), headers={"X-Robots-Tag": "noindex, noai"}), "noai", 200),
    "noimageai": (lambda h, n: h.send_body(200, make_jpeg(3), headers={"X-Robots-Tag": "noimageai"}), "noai", 200),
}


@pytest.mark.parametrize("fault", sorted(PERMANENT_FAULTS))
def test_permanent_fault_is_recorded_and_not_retried(server, tmp_path, fault):
    route, expected, http_status = PERMANENT_FAULTS[fault]
    server.routes["/fault"] = route
    server.routes["/img/"] = lambda h, n: h.send_body(200, make_png(), "image/png")
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/fault")])
    check_good(outcome)
    record = outcome.statuses[3]
    assert (record["status"], record["http_status"], record["retryable"]) == (expected, http_status, False)
    assert record["attempts"] == 1 and 3 not in outcome.samples
    assert outcome.report["by_status"] == {expected: 1} and outcome.report["ok"] == 2


def test_one_connection_serves_images_and_404s(server):
    """Error bodies are read to their end, so a 404 does not cost a new TCP (and TLS) handshake."""
    fetcher = Fetcher(FAST, HostGate(1))
    for path in ["/ok/1.jpg", "/missing/1", "/ok/2.jpg", "/missing/2", "/ok/3.jpg"]:
        try:
            assert fetcher.fetch(server.url(path)).http_status == 200
        except FetchError as error:
            assert (path.startswith("/missing/"), error.reason) == (True, "not_found")
    assert server.connections == 1


def test_429_with_retry_after_then_200(server, tmp_path):
    def route(handler, hits):
        if hits == 1:
            return handler.send_body(429, b"slow down", "text/plain", {"Retry-After": "1"})
        handler.send_body(200, make_jpeg(11))

    server.routes["/fault"] = route
    start = time.monotonic()
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/fault")])
    check_good(outcome)
    assert outcome.status(3) == "ok" and outcome.statuses[3]["attempts"] == 2
    assert outcome.statuses[3]["elapsed_s"] >= 0.9 and time.monotonic() - start >= 1.0  # Retry-After honoured


def test_retry_after_longer_than_allowed_gives_up_and_pauses_the_host(server, tmp_path):
    server.routes["/fault"] = lambda h, n: h.send_body(429, b"", "text/plain", {"Retry-After": "3600"})
    sources = [server.url(p) for p in GOOD + ["/fault", "/ok/later.jpg"]]
    outcome = run_download(tmp_path, sources, concurrency=1, decode_workers=0)  # one worker: lines in order
    check_good(outcome)
    assert outcome.statuses[3]["status"] == "rate_limited" and outcome.statuses[3]["retryable"]
    assert server.hits["/fault"] == 1
    # The host asked for an hour: its next URL is not requested at all, and is retried on the next run.
    assert (outcome.status(4), outcome.statuses[4]["attempts"], server.hits["/ok/later.jpg"]) == ("rate_limited", 0, 0)


def test_500_then_200(server, tmp_path):
    def route(handler, hits):
        if hits == 1:
            return handler.send_body(500, b"oops", "text/plain")
        handler.send_body(200, make_jpeg(12))

    server.routes["/fault"] = route
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/fault")])
    check_good(outcome)
    assert outcome.status(3) == "ok" and outcome.statuses[3]["attempts"] == 2


def test_a_line_waiting_for_its_retry_frees_its_worker(server, tmp_path):
    """One worker: while the 500 waits out its back-off (0.5-1.5 s), the lines after it are fetched."""
    requests_seen = []

    def fault(handler, hits):
        requests_seen.append(f"fault {hits}")
        if hits == 1:
            return handler.send_body(500, b"oops", "text/plain")
        handler.send_body(200, make_jpeg(13))

    def later(handler, hits):
        requests_seen.append(handler.path)
        handler.send_body(200, make_jpeg(14))

    server.routes["/fault"], server.routes["/later/"] = fault, later
    sources = [server.url(p) for p in GOOD + ["/fault", "/later/1.jpg", "/later/2.jpg"]]
    outcome = run_download(tmp_path, sources, concurrency=1, decode_workers=0, backoff_base_s=1.0, backoff_max_s=1.0)
    check_good(outcome)
    assert requests_seen == ["fault 1", "/later/1.jpg", "/later/2.jpg", "fault 2"]
    assert [outcome.status(line) for line in (3, 4, 5)] == ["ok", "ok", "ok"]
    assert outcome.statuses[3]["attempts"] == 2 and outcome.statuses[3]["elapsed_s"] >= 0.5  # the back-off, kept


def test_persistent_503_is_retryable_failure(server, tmp_path):
    server.routes["/fault"] = lambda h, n: h.send_body(503, b"", "text/plain")
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/fault")], max_attempts=2)
    check_good(outcome)
    assert outcome.statuses[3]["status"] == "server_error" and outcome.statuses[3]["attempts"] == 2
    assert outcome.report["retryable_failures"] == 1


def test_connect_timeout(server, tmp_path, dead_port):
    sources = [server.url(p) for p in GOOD] + [f"http://127.0.0.1:{dead_port}/x.jpg"]
    outcome = run_download(tmp_path, sources, max_attempts=2, connect_timeout_s=0.5)
    check_good(outcome)
    record = outcome.statuses[3]
    assert record["status"] == "timeout" and record["attempts"] == 2 and record["retryable"]
    assert record["elapsed_s"] < 2 * 0.5 + 1.0


def test_body_dripping_slower_than_deadline(server, tmp_path):
    server.routes["/fault"] = drip
    sources = [server.url(p) for p in GOOD] + [server.url("/fault")]
    outcome = run_download(tmp_path, sources, max_attempts=2, deadline_s=0.6)
    check_good(outcome)
    record = outcome.statuses[3]
    assert record["status"] == "timeout" and record["attempts"] == 2
    assert record["elapsed_s"] < 2 * 0.6 + 1.5  # the deadline, not the 10 s the drip would take


def test_connection_reset_mid_body(server, tmp_path):
    server.routes["/fault"] = reset_mid_body
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/fault")], max_attempts=2)
    check_good(outcome)
    assert outcome.statuses[3]["status"] == "connection" and outcome.statuses[3]["attempts"] == 2


def test_duplicate_urls_stored_once(server, tmp_path):
    urls = [server.url(p) for p in GOOD] + [server.url("/ok/first.jpg")]
    outcome = run_download(tmp_path, urls)
    check_good(outcome)
    assert outcome.status(3) == "duplicate" and "line 1" in outcome.statuses[3]["error"]
    assert len(outcome.images) == 2 and server.hits["/ok/first.jpg"] == 1


def test_hostile_url_paths_never_reach_the_filesystem(server, tmp_path):
    paths = ["/ok/../ok/dots.jpg", "/ok/%2e%2e/%2e%2e/enc.jpg", "/ok/a%20b.jpg", "/ok/ünï©ødé.jpg",
             "/ok/..%2f..%2fx.jpg"]
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD + paths])
    check_good(outcome, lines=range(1, 8))
    names = {p.name for p in outcome.out.iterdir()}
    assert names == {"00000.tar", "00000.jsonl", "fingerprint.json"}
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in outcome.images)
    assert [outcome.samples[i]["source"] for i in range(3, 8)] == [server.url(p) for p in paths]
    assert not list(tmp_path.parent.glob("x.jpg"))


def test_exif_rotated_jpeg_is_stored_upright(server, tmp_path):
    server.routes["/fault"] = lambda h, n: h.send_body(200, make_jpeg(4, size=(40, 20), exif_orientation=6))
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/fault")])
    check_good(outcome)
    assert (outcome.samples[3]["width"], outcome.samples[3]["height"]) == (20, 40)
    image = outcome.image(3)
    assert image.size == (20, 40) and image.getexif().get(0x0112, 1) == 1


def encoded(format_name: str, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (24, 20), 128 if mode in ("L", "P") else (10, 200, 30, 128)[: len(mode)]).save(buffer, format_name)
    return buffer.getvalue()


def test_cmyk_grayscale_png_gif_webp_become_rgb_jpeg(server, tmp_path):
    bodies = {
        "/cmyk": make_jpeg(5, mode="CMYK"),
        "/gray": make_jpeg(6, mode="L"),
        "/png": make_png(),
        "/rgba": encoded("PNG", "RGBA"),
        "/gif": encoded("GIF", "P"),
        "/webp": encoded("WEBP", "RGB"),
    }
    for path, body in bodies.items():
        server.routes[path] = lambda h, n, body=body: h.send_body(200, body, "application/octet-stream")
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD + list(bodies)])
    check_good(outcome)
    for line in range(3, 3 + len(bodies)):
        image = outcome.image(line)
        assert (image.format, image.mode) == ("JPEG", "RGB") and outcome.samples[line]["width"] == image.width


def test_resize_caps_the_longer_side(server, tmp_path):
    server.routes["/big"] = lambda h, n: h.send_body(200, make_jpeg(8, size=(160, 80)))
    outcome = run_download(tmp_path, [server.url("/big")], max_side=40)
    assert outcome.image(1).size == (40, 20) and outcome.samples[1]["width"] == 40


def test_gzip_encoded_body_is_decoded(server, tmp_path):
    import gzip

    body = make_jpeg(21)
    server.routes["/gz"] = lambda h, n: h.send_body(200, gzip.compress(body), headers={"Content-Encoding": "gzip"})
    outcome = run_download(tmp_path, [server.url(p) for p in GOOD] + [server.url("/gz")])
    check_good(outcome)
    assert outcome.images[outcome.samples[3]["key"]] == body

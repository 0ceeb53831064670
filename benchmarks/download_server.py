"""A loopback image server for the download benchmark: real-sized photos, latency and failures.

Runs in its own process so its CPU time is not charged to the downloader being measured.
Paths: `/img/<n>` an image (after the latency), `/missing/<n>` a 404 (after the latency),
`/slow/<n>` headers never come (the client's timeout decides).
"""

from __future__ import annotations

import http.server
import multiprocessing
import time
from pathlib import Path


class ImageHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        """Silent: a line per request would drown the benchmark's own output."""

    def do_GET(self):
        kind, _, number = self.path.strip("/").partition("/")
        if kind == "slow":
            time.sleep(self.server.slow_s)
            self.close_connection = True
            return
        time.sleep(self.server.latency_s)
        if kind == "img":
            body = self.server.images[int(number) % len(self.server.images)]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
        else:
            body = b"not found"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """Silent: clients giving up (timeouts, closed connections) are part of the benchmark."""


def serve(image_paths: list[str], latency_s: float, slow_s: float, ports) -> None:
    server = QuietServer(("127.0.0.1", 0), ImageHandler)
    server.images = [Path(p).read_bytes() for p in image_paths]
    server.latency_s, server.slow_s = latency_s, slow_s
    ports.put(server.server_port)
    server.serve_forever(poll_interval=0.1)


def start_server(image_paths: list[Path], latency_s: float, slow_s: float) -> tuple[multiprocessing.Process, str]:
    """Start the server process; returns it and its base URL (stop it with `.terminate()`)."""
    ports = multiprocessing.Queue()
    args = ([str(p) for p in image_paths], latency_s, slow_s, ports)
    process = multiprocessing.Process(target=serve, args=args, daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{ports.get(timeout=30)}"

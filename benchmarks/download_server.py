"""A loopback HTTPS image server for the download benchmark: real-sized photos, latency and failures.

Runs in its own process so its CPU time is not charged to the downloader being measured.
Paths: `/img/<n>` an image (after the latency), `/missing/<n>` a 404 (after the latency),
`/slow/<n>` headers never come (the client's timeout decides), `/busy/<n>` an image until
`busy_after_s` after the first `/busy/` request, then 503 (a host that starts throttling mid-run),
`/stats` the arrival times of every request by kind, as JSON.

It listens on every address of 127.0.0.0/8 (`HOSTS` of them are in its certificate), so a list can
spread over several "hosts" as a real one does; requests from elsewhere are refused.

Latency follows a round-trip model, because what a real fetch waits for is round trips: every
response costs one, and a new connection costs `setup_rtts` more before its first request is read
(1 for the TCP handshake, plus 1 for a TLS 1.3 handshake). The TLS itself is real (a throwaway
self-signed certificate), so handshake and encryption CPU is paid by both sides as on the web.
"""

from __future__ import annotations

import collections
import datetime
import http.server
import ipaddress
import json
import multiprocessing
import ssl
import time
from pathlib import Path

HOSTS = 16  # 127.0.0.1 ... 127.0.0.16


def host_url(base_url: str, number: int) -> str:
    """`base_url` (on 127.0.0.1) moved to loopback host `number` (0-based, modulo `HOSTS`)."""
    return base_url.replace("127.0.0.1", f"127.0.0.{1 + number % HOSTS}")


class ImageHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        """A new connection: wait out the handshake round trips, then speak TLS."""
        time.sleep(self.server.setup_s)
        if self.server.tls is not None:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, *args):
        """Silent: a line per request would drown the benchmark's own output."""

    def do_GET(self):
        kind, _, number = self.path.strip("/").partition("/")
        self.server.arrivals[kind].append(time.monotonic() - self.server.started)
        if kind == "stats":
            return self.send(200, json.dumps(self.server.arrivals).encode(), "application/json")
        if kind == "busy":
            first = self.server.arrivals["busy"][0]
            if self.server.arrivals["busy"][-1] - first > self.server.busy_after_s:
                time.sleep(self.server.latency_s)
                return self.send(503, b"busy", "text/plain")
            kind = "img"
        if kind == "slow":
            time.sleep(self.server.slow_s)
            self.close_connection = True
            return
        time.sleep(self.server.latency_s)
        if kind == "img":
            self.send(200, self.server.images[int(number) % len(self.server.images)], "image/jpeg")
        else:
            self.send(404, b"not found", "text/plain")

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """Silent: clients giving up (timeouts, closed connections) are part of the benchmark."""

    def verify_request(self, request, client_address) -> bool:
        """Loopback clients only: the server listens on every address to serve all of 127.0.0.0/8."""
        return client_address[0].startswith("127.")


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for 127.0.0.1, valid for a day; returns (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(f"127.0.0.{1 + i}")) for i in range(HOSTS)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def serve(image_paths: list[str], latency_s: float, setup_rtts: int, slow_s: float, certificate, ports,
          busy_after_s: float) -> None:
    server = QuietServer(("0.0.0.0", 0), ImageHandler)
    server.images = [Path(p).read_bytes() for p in image_paths]
    server.latency_s, server.setup_s, server.slow_s = latency_s, setup_rtts * latency_s, slow_s
    server.busy_after_s, server.started, server.arrivals = busy_after_s, time.monotonic(), collections.defaultdict(list)
    server.tls = None
    if certificate is not None:
        server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.tls.load_cert_chain(*certificate)
    ports.put(server.server_port)
    server.serve_forever(poll_interval=0.1)


def start_server(
    image_paths: list[Path], latency_s: float, slow_s: float, setup_rtts: int = 0,
    certificate: tuple[Path, Path] | None = None, busy_after_s: float = 5.0,
) -> tuple[multiprocessing.Process, str]:
    """Start the server process; returns it and its base URL (stop it with `.terminate()`).

    Args:
        latency_s: one round trip, paid by every response.
        setup_rtts: round trips a new connection costs before its first request.
        certificate: (certificate, key) paths to serve HTTPS; None for plain HTTP.
    """
    ports = multiprocessing.Queue()
    args = ([str(p) for p in image_paths], latency_s, setup_rtts, slow_s, certificate, ports, busy_after_s)
    process = multiprocessing.Process(target=serve, args=args, daemon=True)
    process.start()
    scheme = "https" if certificate else "http"
    return process, f"{scheme}://127.0.0.1:{ports.get(timeout=30)}"

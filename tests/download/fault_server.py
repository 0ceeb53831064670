"""Test helpers: a loopback HTTP server with scripted faults, tiny images, and a download runner."""

from __future__ import annotations

import collections
import contextlib
import http.server
import io
import json
import struct
import tarfile
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from mlimages.config import load_params
from mlimages.download import DownloadConfig, download
from mlimages.download.tarstream import scan_samples

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def download_config(**overrides) -> DownloadConfig:
    """The repository's `download:` params with `overrides`, read by the real loader (the dataclass has no defaults)."""
    return load_params("download", DownloadConfig, PARAMS, overrides)


# Short back-offs so retries cost little; timeouts stay generous (a loaded test machine must not turn
# a good URL into a timeout) and the tests of timeouts tighten them for the one run that needs it.
FAST = download_config(
    samples_per_shard=50, processes=1, concurrency=4, per_host_concurrency=4, connect_timeout_s=2.0, read_timeout_s=2.0,
    deadline_s=3.0, max_attempts=3, backoff_base_s=0.05, backoff_max_s=0.2, host_backoff_s=0.2,
    max_retry_after_s=2.0, watchdog_s=10.0, max_body_bytes=200_000, min_side=8, user_agent="mlimages-test",
)


def make_jpeg(seed: int, size=(32, 24), mode="RGB", exif_orientation: int | None = None) -> bytes:
    """A small noisy JPEG (noise so every seed gives different bytes)."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def make_photo(seed: int, size=(320, 240), fmt="JPEG") -> bytes:
    """A smooth picture (random 5x5 colours, upscaled): distinct per seed, like a photo to the hash."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    small.resize(size, Image.Resampling.BICUBIC).save(buffer, fmt, quality=95)
    return buffer.getvalue()


def make_png(size=(24, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def make_bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG whose header claims `width x height` pixels (rewritten IHDR with a valid CRC)."""
    data = bytearray(make_png((8, 8)))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


class FaultServer(http.server.ThreadingHTTPServer):
    """Serves `routes`: path prefix -> function(handler). Counts hits per path and connections."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Callable] = {}
        self.hits: collections.Counter = collections.Counter()
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


@contextlib.contextmanager
def running_fault_server() -> Iterator[FaultServer]:
    """A started FaultServer whose ``/ok/...`` paths answer a JPEG per path; stopped on exit."""
    server = FaultServer()
    server.routes["/ok/"] = lambda h, hits: h.send_body(200, make_jpeg(zlib.crc32(h.path.encode()) % 1000))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        with self.server.lock:
            self.server.connections += 1
        super().setup()

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.hits[self.path] += 1
            hits = self.server.hits[self.path]
        prefix = max((p for p in self.server.routes if self.path.startswith(p)), key=len, default=None)
        if prefix is None:
            return self.send_body(404, b"no route", "text/plain")
        self.server.routes[prefix](self, hits)

    def send_body(self, status: int, body: bytes, content_type="image/jpeg", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Outcome:
    """What a download left on disk, read back through the public formats only."""

    def __init__(self, out: Path, report: dict):
        self.out, self.report = out, report
        self.statuses = {}
        for path in sorted(out.glob("*.jsonl")):
            for text in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(text)
                self.statuses[record["line"]] = record
        self.samples, self.images = {}, {}
        for path in sorted(out.glob("*.tar")):
            with tarfile.open(path) as archive:
                for member in archive.getmembers():
                    data = archive.extractfile(member).read()
                    key, _, ext = member.name.rpartition(".")
                    if ext == "json":
                        meta = json.loads(data)
                        assert meta["line"] not in self.samples, "a sample stored twice"
                        self.samples[meta["line"]] = meta
                    else:
                        self.images[key] = data

    def status(self, line: int) -> str:
        return self.statuses[line]["status"]

    def image(self, line: int) -> Image.Image:
        return Image.open(io.BytesIO(self.images[self.samples[line]["key"]]))


def slow_numbered_jpeg(handler, hits) -> None:
    """A route answering `/<kind>/<n>.jpg` with image n after 30 ms, so a run can be killed mid-way."""
    time.sleep(0.03)
    handler.send_body(200, make_jpeg(int(handler.path.split("/")[-1].split(".")[0])))


def run_download(tmp_path: Path, sources: list[str], **overrides) -> Outcome:
    """Download `sources` (one per line, label `line % 5`) with the FAST settings plus `overrides`."""
    list_path = tmp_path / "list.tsv"
    list_path.write_text("".join(f"{s}\t{i % 5}:1\t9:0.5\n" for i, s in enumerate(sources)), encoding="utf-8")
    out = tmp_path / "images"
    report = download(list_path, out, tmp_path / "report.json", replace(FAST, **overrides))
    return Outcome(out, report)


def stored_sources(out: Path) -> set[str]:
    """Sources of the samples in complete and partial archives (a torn tail is not counted)."""
    sources = set()
    for path in list(out.glob("*.tar")) + list(out.glob("*.tar.partial")):
        with path.open("rb") as handle:
            sources |= {meta["source"] for meta in scan_samples(handle)[0]}
    return sources

"""The lists, runs and outcomes the Ray engine tests share: fault routes of the loopback server, list files."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mlimages.download import download
from mlimages.download.tarstream import scan_samples
from tests.download.fault_server import FAST, Outcome, make_jpeg


def fault_routes(server) -> None:
    """Faults by path: 404, 500 then 200, 429 (Retry-After 0) then 200, a web page, and a slow image."""
    server.routes["/missing/"] = lambda h, n: h.send_body(404, b"", "text/plain")
    server.routes["/flaky/"] = lambda h, n: (h.send_body(500, b"", "text/plain") if n == 1
                                             else h.send_body(200, make_jpeg(7)))
    server.routes["/throttled/"] = lambda h, n: (h.send_body(429, b"", "text/plain", {"Retry-After": "0"}) if n == 1
                                                 else h.send_body(200, make_jpeg(8)))
    server.routes["/page/"] = lambda h, n: h.send_body(200, b"<html>removed</html>", "text/html")
    server.routes["/slow/"] = lambda h, n: (time.sleep(0.03), h.send_body(200, make_jpeg(int(h.path[6:-4]))))


def fault_list(server, count: int) -> list[str]:
    """`count` lines: images, with every kind of fault and a repeated URL sprinkled through."""
    kinds = ["missing", "flaky", "throttled", "page"]
    sources = [server.url(f"/{kinds[i // 7 % 4]}/{i}.jpg" if i % 7 == 3 else f"/ok/{i}.jpg") for i in range(count)]
    sources[20] = sources[2]  # the same shard: line 21 repeats line 3
    return sources


def write_list(folder: Path, sources: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "list.tsv"
    path.write_text("".join(f"{s}\t{i % 5}:1\t9:0.5\n" for i, s in enumerate(sources)), encoding="utf-8")
    return path


def run(folder: Path, sources: list[str], engine, **overrides) -> Outcome:
    config = dataclasses.replace(FAST, **overrides)
    report = download(write_list(folder, sources), folder / "images", folder / "report.json", config, engine=engine)
    return Outcome(folder / "images", report)


def digest(outcome: Outcome) -> dict[int, tuple]:
    """Per line: status and, when stored, the image's sha256."""
    return {line: (record["status"], outcome.samples.get(line, {}).get("sha256"))
            for line, record in outcome.statuses.items()}


def records_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def keeping_bar(engine, bars: list):
    """`engine`, keeping the run's progress bar in `bars` to read afterwards."""
    def run_keeping(tasks, progress):
        bars.append(progress)
        return engine(tasks, progress)

    return run_keeping


def stored_sources(out: Path) -> list[str]:
    """The source of every sample in the committed shards and in the attempts' archives (complete or partial)."""
    sources = []
    for path in [*out.glob("*.tar"), *out.glob(".attempts/*/*.tar"), *out.glob(".attempts/*/*.tar.partial")]:
        with path.open("rb") as handle:
            sources += [sample["source"] for sample in scan_samples(handle)[0]]
    return sources


def count_samples(out: Path) -> int:
    return len(stored_sources(out))

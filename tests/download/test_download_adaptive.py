"""Adaptive per-host caps, the report's outcome groups, and a progress bar that keeps moving."""

from __future__ import annotations

import io
import json
import select
import threading
import time

import pytest

from mlimages.download.progress import Progress

from .fault_server import make_jpeg, run_download

CAP = dict(per_host_concurrency=2, per_host_concurrency_min=1, per_host_concurrency_max=6, concurrency=12,
           max_attempts=1, host_backoff_s=0.1)


class ConcurrencyCounter:
    """A route that counts requests in flight when each arrives; after `good` requests it turns bad."""

    def __init__(self, good: int, bad: str):
        self.good, self.bad = good, bad
        self.lock, self.active, self.arrivals = threading.Lock(), 0, []  # (time, requests in flight, number)
        self.turned_bad_at = None

    def __call__(self, handler, hits):
        with self.lock:
            self.active += 1
            number = len(self.arrivals) + 1
            self.arrivals.append((time.monotonic(), self.active, number))
            if number == self.good + 1:
                self.turned_bad_at = time.monotonic()
        if number <= self.good:
            time.sleep(0.1)  # long enough that a client with free slots overlaps requests whatever the CPU load
            with self.lock:
                self.active -= 1  # before answering: the client's slot outlives the server's count
            return handler.send_body(200, make_jpeg(number % 50))
        if self.bad == "stall":  # no answer; stop counting once the client hangs up (its socket turns readable)
            select.select([handler.connection], [], [], 0.6)
        else:
            time.sleep(0.02)
        with self.lock:
            self.active -= 1
        if self.bad == "503":
            return handler.send_body(503, b"", "text/plain")
        if not handler.server.stopping.is_set():
            handler.send_body(200, make_jpeg(1))


@pytest.mark.parametrize("bad", ["503", "stall"])
def test_host_cap_rises_while_fast_and_falls_on_trouble_never_above_max(server, tmp_path, bad):
    counter = ConcurrencyCounter(good=150, bad=bad)
    server.routes["/c/"] = counter
    sources = [server.url(f"/c/{i}.jpg") for i in range(190)]
    outcome = run_download(tmp_path, sources, deadline_s=0.4, read_timeout_s=1.0, **CAP)  # answers under 0.5 s count as fast
    seen = [active for _, active, _ in counter.arrivals]
    # never above per_host_concurrency_max (6), from a start of 2; a stalled request is counted until the server
    # notices the hang-up, which can come just after the client freed its slot and sent the next request
    assert max(seen) <= 6 + (bad == "stall")
    assert max(active for _, active, number in counter.arrivals if number <= 150) >= 5  # it rose while fast
    settle_s = 0.3 if bad == "503" else 1.2  # a 503 cuts at once; timeouts once they are a share of the answers
    late = [active for at, active, number in counter.arrivals if number > 150 and at > counter.turned_bad_at + settle_s]
    # ...and fell once the host answered 503 or stalled: halved (6 -> 3), growing back by a fraction per clean
    # answer; one more is allowed for a stalled request the client dropped just before the server noticed
    assert late and max(late) <= 4 and sum(late) / len(late) <= 3
    assert outcome.report["stored"] == 150 and outcome.report["failed"] == len(sources) - 150


def test_policy_skips_are_counted_apart_from_failures(server, tmp_path):
    server.routes["/noai"] = lambda h, n: h.send_body(200, make_jpeg(3), headers={"X-Robots-Tag": "noai"})
    server.routes["/gone"] = lambda h, n: h.send_body(404, b"", "text/plain")
    sources = [server.url(p) for p in ["/ok/a.jpg", "/noai", "/ok/b.jpg", "/ok/a.jpg", "/gone"]]
    outcome = run_download(tmp_path, sources)
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["stored"], report["skipped"], report["failed"], report["lines"]) == (2, 2, 1, 5)
    assert report["success_rate"] == pytest.approx(2 / 3, abs=1e-6)  # the skips count on neither side
    assert report["by_status"] == {"noai": 1, "duplicate": 1, "not_found": 1}
    assert outcome.status(4) == "duplicate" and outcome.report == report


class TimedWrites(io.StringIO):
    """Remembers when each write happened (tqdm writes once per redraw)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def write(self, text):
        self.times.append(time.monotonic())
        return super().write(text)


def test_progress_bar_redraws_at_least_once_a_second_after_a_fast_phase():
    output = TimedWrites()
    progress = Progress(total_lines=30_000, window=100, warning_rate=1.1, file=output)
    for _ in range(20_000):  # a fast phase: tqdm's automatic miniters would grow to thousands of lines here
        progress.add("ok")
    slow_start = time.monotonic()
    for _ in range(12):  # then a line every 0.25 s
        time.sleep(0.25)
        progress.add("ok")
    progress.close()
    redraws = [at for at in output.times if at > slow_start]
    gaps = [later - earlier for earlier, later in zip([slow_start] + redraws, redraws)]
    assert len(redraws) >= 3 and max(gaps) <= 1.0
    assert "stored=20,012" in output.getvalue()

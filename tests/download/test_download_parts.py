"""The small parts of the downloader, tested on their own."""

from __future__ import annotations

import collections
import dataclasses
import email.utils
import io
import json
import logging
import threading
import time
from pathlib import Path

import pytest
import yaml

from mlimages.config import load_params
from mlimages.download import DownloadConfig
from mlimages.download.fetch import parse_retry_after_s
from mlimages.download.hosts import HostBudget, HostGate, HostPaused
from mlimages.download.progress import Progress
from mlimages.download.listfile import count_lines, count_wanted_lines
from mlimages.download.sources import make_key
from mlimages.download.tarstream import END_OF_ARCHIVE, scan_samples, write_sample
from mlimages.errors import InputError

from .fault_server import FAST, PARAMS, download_config, make_jpeg, run_download


def write_params(path: Path, **changes) -> Path:
    """The repository's params file with `changes` in its `download:` section (None: the key is removed)."""
    sections = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            del sections["download"][key]
        else:
            sections["download"][key] = value
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    return path


def test_params_section_loads_and_bad_values_name_the_field(tmp_path):
    config = load_params("download", DownloadConfig, PARAMS)
    assert config.samples_per_shard >= 1 and config.limits.max_pixels == config.max_pixels
    params = tmp_path / "params.yaml"
    for changes, message in [({"concurrency": 0}, "download.concurrency"),
                             ({"decode_workers": -1}, "download.decode_workers"),
                             ({"threads": 4}, "unknown key"),
                             ({"jpeg_quality": None}, "download.jpeg_quality: missing required key")]:
        with pytest.raises(InputError, match=message):
            load_params("download", DownloadConfig, write_params(params, **changes))


def test_the_dataclass_has_no_defaults_params_yaml_holds_every_value():
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in dataclasses.fields(DownloadConfig))
    with pytest.raises(TypeError):
        DownloadConfig(samples_per_shard=10)


def test_keys_are_hex_digests_of_the_whole_source():
    keys = {make_key(s) for s in ["http://a/x.jpg", "http://a/x.jpg?", "http://b/x.jpg", "http://a/../x.jpg"]}
    assert len(keys) == 4 and all(len(k) == 32 and set(k) <= set("0123456789abcdef") for k in keys)
    assert make_key("http://a/x.jpg") == make_key("http://a/x.jpg")


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after_s("7") == 7.0
    assert parse_retry_after_s(None) is None and parse_retry_after_s("soon") is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after_s(when) <= 31


def peak_requests(gate: HostGate, hosts: str) -> tuple[dict[str, int], int]:
    """Run one 50 ms request per letter of `hosts` at once; the most in flight per host and in all."""
    active, peak, lock = collections.Counter(), collections.Counter(), threading.Lock()

    def request(host):
        with gate.slot(host):
            with lock:
                active[host] += 1
                active["all"] += 1
                for name in (host, "all"):
                    peak[name] = max(peak[name], active[name])
            time.sleep(0.05)
            with lock:
                active[host] -= 1
                active["all"] -= 1

    threads = [threading.Thread(target=request, args=(h,)) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = peak.pop("all")
    return dict(peak), total


def test_host_gate_caps_concurrency_per_host_and_backs_off():
    gate = HostGate(2)
    assert peak_requests(gate, "aaaaaab")[0] == {"a": 2, "b": 1}
    gate.back_off("a", 0.3)
    start = time.monotonic()
    with gate.slot("b"):
        assert time.monotonic() - start < 0.1  # other hosts are not held up
    with gate.slot("a"):
        assert time.monotonic() - start >= 0.29


def test_host_gate_caps_requests_over_all_hosts():
    assert peak_requests(HostGate(per_host=5, total=2), "abcabc")[1] == 2


def test_a_waiting_worker_gives_up_when_the_host_pauses_too_long():
    gate, outcome = HostGate(1), {}

    def wait():
        try:
            with gate.slot("a", max_pause_s=60):
                outcome["requested"] = True
        except HostPaused as paused:
            outcome["paused_s"] = paused.seconds

    with gate.slot("a"):
        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.05)
        gate.back_off("a", 3600)  # the answer in the slot said "come back in an hour"
    waiter.join(timeout=5)
    assert not waiter.is_alive() and outcome["paused_s"] > 3500 and "requested" not in outcome


def test_scan_samples_stops_at_the_last_complete_pair():
    buffer = io.BytesIO()
    for line in (1, 2, 3):
        write_sample(buffer, f"k{line}", make_jpeg(line), {"key": f"k{line}", "line": line})
    complete = buffer.getvalue()
    for cut, expected in [(len(complete), [1, 2, 3]), (len(complete) - 600, [1, 2]), (700, [])]:
        samples, end = scan_samples(io.BytesIO(complete[:cut]))
        assert [m["line"] for m in samples] == expected
        assert scan_samples(io.BytesIO(complete[:end]))[1] == end
    samples, end = scan_samples(io.BytesIO(complete + END_OF_ARCHIVE))
    assert len(samples) == 3 and end == len(complete)


def test_counting_lines_for_a_worker(tmp_path):
    path = tmp_path / "list.tsv"
    path.write_text("x\n" * 25)
    assert count_lines(path) == 25 and count_wanted_lines(25, 10, 0, 1) == 25
    assert [count_wanted_lines(25, 10, i, 2) for i in (0, 1)] == [15, 10]
    path.write_text("x\n" * 24 + "x")  # no newline at the end
    assert count_lines(path) == 25 and count_wanted_lines(25, 10, 0, 3) == 10 and count_wanted_lines(25, 10, 2, 3) == 5
    path.write_bytes(b"x\r\n" * 3 + b"x\ry\n")  # a lone CR does not end a line, as in the reader
    assert count_lines(path) == 4


def test_high_recent_failure_rate_warns(caplog):
    progress = Progress(total_lines=100, window=10, warning_rate=0.5)
    with caplog.at_level(logging.WARNING, logger="mlimages.download.progress"):
        for status in ["ok"] * 10 + ["dns"] * 4:
            progress.add(status)
        assert not caplog.records  # 40%: below the threshold
        for status in ["dns"] * 4:
            progress.add(status)
    progress.close()
    assert len(caplog.records) == 1 and "50% of the last 10 fetches failed (dns 5)" in caplog.text  # once, not per line


def test_report_file_counts_outcomes(server, tmp_path):
    server.routes["/gone"] = lambda h, n: h.send_body(410, b"", "text/plain")
    outcome = run_download(tmp_path, [server.url("/ok/a.jpg"), server.url("/gone"), server.url("/ok/b.jpg")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == outcome.report
    assert (report["lines"], report["ok"], report["failed"], report["by_status"]) == (3, 2, 1, {"gone": 1})
    assert report["success_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["bytes"] == sum(len(data) for data in outcome.images.values()) and report["run"]["fetched"] == 3


def test_fast_settings_are_valid():
    assert FAST.watchdog_s > FAST.deadline_s + FAST.read_timeout_s
    with pytest.raises(InputError, match="watchdog_s"):
        download_config(deadline_s=10, read_timeout_s=5, watchdog_s=12)


def test_request_errors_are_classed():
    import requests
    import urllib3
    from urllib3.exceptions import MaxRetryError, NameResolutionError

    from mlimages.download.fetch import classify_request_error

    pool = urllib3.HTTPConnectionPool("nowhere.invalid")
    connection = urllib3.connection.HTTPConnection("nowhere.invalid")
    unresolved = NameResolutionError("nowhere.invalid", connection, OSError("no"))
    dns = requests.ConnectionError(MaxRetryError(pool, "/", unresolved))
    cases = {
        "dns": dns,
        "connection": requests.ConnectionError(ConnectionResetError(104, "reset")),
        "timeout": requests.ConnectTimeout("connect timed out"),
        "redirect_loop": requests.TooManyRedirects("loop"),
        "bad_url": requests.exceptions.InvalidURL("bad"),
    }
    for expected, error in cases.items():
        failure = classify_request_error(error)
        assert failure.reason == expected and failure.retryable == (expected in ("dns", "connection", "timeout"))


def test_budget_tickets_release_once_and_a_dead_processes_slots_come_back():
    from mlimages.download.hosts import HostBudget

    budget = HostBudget(2, 1, 2)
    first, *_ = budget.acquire("h", owner=1)
    second, *_ = budget.acquire("h", owner=2)
    budget.release(first)
    budget.release(first)  # the watchdog and the abandoned thread both release: the second is a no-op
    third, *_ = budget.acquire("h", owner=1)
    assert budget.forget_owner(2) == 1  # the process holding `second` died
    fourth, *_ = budget.acquire("h", owner=3)  # would wait forever if `second` had leaked
    assert budget.acquire("h", owner=2) == (None, 0.0, False)  # and the dead process gets no new slot
    assert len({first, second, third, fourth}) == 4


def test_batched_releases_reach_the_budget_and_close_ends_their_thread():
    """A gate whose budget is behind a round trip: every slot comes back, in batches, by the time
    `close` returns, and its thread is gone (a Ray worker runs one gate per attempt)."""
    budget, batches = HostBudget(2, 2, 2), []

    def release_many(releases):
        batches.append(len(releases))
        time.sleep(0.01)  # the round trip: releases queue up meanwhile
        HostBudget.release_many(budget, releases)

    budget.release_many = release_many
    gate = HostGate(2, budget=budget, batch_releases=True)
    for _ in range(20):
        gate.release(gate.acquire("h"))
    gate.close()
    assert sum(batches) == 20 and [budget.acquire("h", max_pause_s=0)[0] for _ in range(2)]  # both slots free
    assert not [t for t in threading.enumerate() if t.name == "slot-releases"]


def test_adaptive_cap_ignores_a_few_silent_urls_but_halves_on_throttling():
    from mlimages.download.adaptive import CLEAN, CONGESTED, TROUBLE, AdaptiveCap

    cap = AdaptiveCap(8.0, floor=2, ceiling=64)
    for answer in range(3000):  # a healthy big host with 3% silent URLs, always using its whole cap
        cap.on_answer(TROUBLE if answer % 33 == 0 else CLEAN, in_flight=cap.slots)
    assert cap.slots == 64
    cap.on_answer(CONGESTED, in_flight=10)
    assert cap.slots == 32 and not cap.slow_start
    cap.last_cut_s -= 10
    for _ in range(5):  # a real share of timeouts: cut again
        cap.on_answer(TROUBLE, in_flight=10)
    assert cap.slots == 16
    idle = AdaptiveCap(8.0, floor=2, ceiling=64)
    for _ in range(100):
        idle.on_answer(CLEAN, in_flight=0)  # a host that never fills its cap proves nothing
    assert idle.slots == 8


def test_a_host_answering_only_503_is_refusing_but_one_503_is_not():
    from mlimages.download.adaptive import CLEAN, CONGESTED
    from mlimages.download.hosts import REFUSING_ANSWERS, HostBudget

    budget = HostBudget(8, 1, 8)
    for signal in [CONGESTED] * (REFUSING_ANSWERS - 1) + [CLEAN, CONGESTED]:  # per-URL 503s between clean answers
        budget.release(budget.acquire("mixed")[0], signal)
    for _ in range(REFUSING_ANSWERS):
        budget.release(budget.acquire("down")[0], CONGESTED)
    for host in ("mixed", "down"):
        budget.back_off(host, 5)
    assert budget.acquire("mixed", max_pause_s=0)[2] is False  # wait out the pause: the host still serves
    ticket, paused_s, refusing = budget.acquire("down", max_pause_s=0)
    assert ticket is None and paused_s > 4 and refusing  # give up on it for this run

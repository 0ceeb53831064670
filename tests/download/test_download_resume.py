"""Resume, kill safety, settings fingerprint, scale-out and the watchdog."""

from __future__ import annotations

import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mlimages.download import download
from mlimages.errors import InputError

from tests.factories import write_params

from .fault_server import FAST, Outcome, make_jpeg, run_download, slow_numbered_jpeg, stored_sources

REPO = Path(__file__).resolve().parents[2]


def mixed_sources(server, count: int) -> list[str]:
    """Every 7th URL is a 404, every 11th always fails with 503 (retryable); the rest are images."""
    server.routes["/missing/"] = lambda h, n: h.send_body(404, b"", "text/plain")
    server.routes["/down/"] = lambda h, n: h.send_body(503, b"", "text/plain")
    kinds = ["missing" if i % 7 == 3 else "down" if i % 11 == 5 else "ok" for i in range(count)]
    return [server.url(f"/{kind}/{i}.jpg") for i, kind in enumerate(kinds)]


def test_kill_and_resume(server, tmp_path):
    server.routes["/ok/"] = slow_numbered_jpeg
    sources = mixed_sources(server, 120)
    # 500, not 503: each 503 pauses the whole host, and on a loaded machine a few in a row make the run leave
    # the host's other lines for the next run (by design), which this test would take for lost samples.
    server.routes["/down/"] = lambda h, n: h.send_body(500, b"", "text/plain")
    list_path, out = tmp_path / "list.tsv", tmp_path / "images"
    list_path.write_text("".join(f"{s}\t1:1\n" for s in sources), encoding="utf-8")
    settings = replace(FAST, samples_per_shard=16, concurrency=3, max_attempts=1).__dict__
    section = {key: list(value) if isinstance(value, tuple) else value for key, value in settings.items()}
    params = write_params(tmp_path / "params.yaml", download=section)
    command = [sys.executable, "pipelines/download_images.py", "--list", str(list_path), "--out", str(out),
               "--report", str(tmp_path / "report.json"), "--params", str(params)]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20  # land the kill in the middle of a shard after the first one
    while not (list(out.glob("*.tar")) and list(out.glob("*.partial"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(out.glob("*.partial")), "the kill should have interrupted a shard"
    stored_before = stored_sources(out)
    hits_before = dict(server.hits)

    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = Outcome(out, {})
    assert not list(out.glob("*.partial")) and not list(out.glob("*.tmp"))
    for path in out.glob("*.tar"):
        with tarfile.open(path) as archive:
            archive.getmembers()  # every archive opens and is complete
    reachable = {i + 1 for i, s in enumerate(sources) if "/ok/" in s}
    missing = {line: outcome.statuses.get(line) for line in reachable - set(outcome.samples)}
    assert not missing and set(outcome.samples) == reachable, missing  # each stored once (Outcome asserts no repeats)
    assert len(outcome.images) == len(reachable)
    assert sorted(outcome.statuses) == list(range(1, 121))  # every line recorded
    assert {outcome.status(i) for i in outcome.statuses if i not in reachable} == {"not_found", "server_error"}
    assert 0 < len(stored_before) < len(reachable)
    for source in stored_before:  # nothing stored before the kill was fetched again
        path = source.removeprefix(server.url(""))
        assert server.hits[path] == hits_before[path] == 1


def test_rerun_retries_only_retryable_failures(server, tmp_path):
    sources = mixed_sources(server, 30)
    first = run_download(tmp_path, sources, max_attempts=1)
    assert first.report["by_status"] == {"not_found": 4, "server_error": 3}
    hits = dict(server.hits)
    second = run_download(tmp_path, sources, max_attempts=1)
    changed = {path for path in server.hits if server.hits[path] != hits.get(path)}
    assert changed == {f"/down/{i}.jpg" for i in (5, 16, 27)}
    assert second.statuses == {**first.statuses, **{k: v for k, v in second.statuses.items() if k in (6, 17, 28)}}
    server.routes["/down/"] = lambda h, n: h.send_body(200, make_jpeg(n))
    third = run_download(tmp_path, sources, max_attempts=1)
    assert third.report["by_status"] == {"not_found": 4} and third.report["run"]["fetched"] == 3
    list_path = tmp_path / "list.tsv"
    report = download(list_path, tmp_path / "images", tmp_path / "r.json", FAST, retry_failures=True)
    assert report["run"]["fetched"] == 4 and report["by_status"] == {"not_found": 4}


def test_torn_partial_shard_is_cut_back_and_completed(server, tmp_path):
    sources = [server.url(f"/ok/{i}.jpg") for i in range(6)]
    run_download(tmp_path, sources)
    out = tmp_path / "images"
    # Simulate a kill in the middle of writing: a complete shard turned back into a torn partial one.
    data = (out / "00000.tar").read_bytes()
    (out / "00000.tar").unlink()
    (out / "00000.tar.partial").write_bytes(data[: len(data) // 2 + 100])
    (out / "00000.jsonl").rename(out / "00000.jsonl.partial")
    with (out / "00000.jsonl.partial").open("a") as log:
        log.write('{"line": 6, "stat')  # a status line torn by the kill
    hits = sum(server.hits.values())
    outcome = run_download(tmp_path, sources)
    assert set(outcome.samples) == set(range(1, 7)) and len(outcome.images) == 6
    assert sorted(outcome.statuses) == list(range(1, 7)) and not list(out.glob("*.partial"))
    assert 0 < sum(server.hits.values()) - hits < 6  # only the samples lost with the torn tail


def test_changed_settings_are_refused_then_forced(server, tmp_path):
    sources = [server.url(f"/ok/{i}.jpg") for i in range(3)]
    run_download(tmp_path, sources)
    with pytest.raises(InputError, match=r"max_side: 0 -> 16.*--force"):
        run_download(tmp_path, sources, max_side=16)
    run_download(tmp_path, sources, concurrency=2, deadline_s=2.0)  # speed settings may change freely
    forced = replace(FAST, max_side=16)
    report = download(tmp_path / "list.tsv", tmp_path / "images", tmp_path / "r.json", forced, force=True)
    assert report["ok"] == 3 and report["run"]["fetched"] == 3


def test_changed_list_is_refused(server, tmp_path):
    run_download(tmp_path, [server.url(f"/ok/{i}.jpg") for i in range(3)])
    with pytest.raises(InputError, match=r"list changed since .*00000\.jsonl was written: line 2 .*--force") as error:
        run_download(tmp_path, [server.url(f"/ok/{i}.jpg") for i in (0, 9, 2)])
    assert error.value.where.endswith("list.tsv:2")


def test_changed_labels_are_refused_then_forced(server, tmp_path):
    sources = [server.url(f"/ok/{i}.jpg") for i in range(3)]
    run_download(tmp_path, sources)
    list_path = tmp_path / "list.tsv"
    list_path.write_text(list_path.read_text().replace("9:0.5", "9:0.75"), encoding="utf-8")
    config_args = (list_path, tmp_path / "images", tmp_path / "r.json", FAST)
    with pytest.raises(InputError, match=r"line 1 has labels 0:1 9:0.75 now, but had 0:1 9:0.5; rerun with --force"):
        download(*config_args)
    report = download(*config_args, force=True)
    assert report["ok"] == 3 and report["run"]["fetched"] == 3
    with tarfile.open(tmp_path / "images" / "00000.tar") as archive:
        metas = [archive.extractfile(m).read() for m in archive.getmembers() if m.name.endswith(".json")]
    assert all(b"0.75" in meta for meta in metas)


def test_scale_out_shards_merge_to_the_single_run(server, tmp_path):
    sources = mixed_sources(server, 40)
    (tmp_path / "single").mkdir()
    single = run_download(tmp_path / "single", sources, samples_per_shard=6, max_attempts=1)
    parts = tmp_path / "parts"
    parts.mkdir()
    list_path = tmp_path / "single" / "list.tsv"
    config = replace(FAST, samples_per_shard=6, max_attempts=1)
    reports = [
        download(list_path, parts / "images", parts / f"r{i}.json", config, shard_index=i, num_shards=3) for i in range(3)
    ]
    merged = Outcome(parts / "images", {})
    assert sorted(p.name for p in merged.out.glob("*.tar")) == [f"{i:05d}.tar" for i in range(7)]
    assert [r["shards"] for r in reports] == [3, 2, 2]
    assert {k: v["status"] for k, v in merged.statuses.items()} == {k: v["status"] for k, v in single.statuses.items()}
    assert {k: v["sha256"] for k, v in merged.samples.items()} == {k: v["sha256"] for k, v in single.samples.items()}


def test_file_and_imagenet_sources(tmp_path):
    image = tmp_path / "a b é.jpg"
    image.write_bytes(make_jpeg(1))
    root = tmp_path / "in21k"
    (root / "n01440764").mkdir(parents=True)
    (root / "n01440764" / "n01440764_18.JPEG").write_bytes(make_jpeg(2))
    missing = (tmp_path / "nope.jpg").as_uri()
    sources = [image.as_uri(), missing, "n01440764/n01440764_18.JPEG", "n01440764/n01440764_19.JPEG"]
    outcome = run_download(tmp_path, sources, imagenet21k_root=str(root))
    assert [outcome.status(i) for i in range(1, 5)] == ["ok", "not_found", "ok", "not_found"]
    assert outcome.images[outcome.samples[1]["key"]] == make_jpeg(1)  # an RGB JPEG is stored as it came


def test_relative_file_urls_resolve_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a b.jpg").write_bytes(make_jpeg(3))
    monkeypatch.chdir(tmp_path)
    sources = ["file:img/a%20b.jpg", "file:img/missing.jpg", "file://img/a.jpg"]  # the last names a host
    outcome = run_download(tmp_path, sources)
    assert [outcome.status(i) for i in (1, 2, 3)] == ["ok", "not_found", "bad_url"]
    assert outcome.images[outcome.samples[1]["key"]] == make_jpeg(3)


def test_imagenet_id_without_root_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="imagenet21k_root is empty") as error:
        run_download(tmp_path, [(tmp_path / "x.jpg").as_uri(), "n01440764/n01440764_18.JPEG"])
    assert error.value.where.endswith("list.tsv:2")


def test_stage_script_reports_bad_list_in_one_line(tmp_path):
    list_path = tmp_path / "list.tsv"
    list_path.write_text("ftp://example/x.jpg 1:1\n", encoding="utf-8")
    command = [sys.executable, "pipelines/download_images.py", "--list", str(list_path), "--out", str(tmp_path / "o"),
               "--report", str(tmp_path / "r.json")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last_line.startswith("error: ") and last_line.endswith("'ftp://example/x.jpg'")
    assert "list.tsv:1: first token must be a URL" in last_line
    assert "Traceback" not in result.stderr and not list((tmp_path / "o").glob("*.tar"))

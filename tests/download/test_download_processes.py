"""The local engine on two worker processes: every line once, every image once, and a killed worker resumed."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path


from mlimages.download.shards import shard_name
from mlimages.download.task import TaskSettings, download_shard

from tests.factories import write_params

from .fault_server import FAST, Outcome, run_download, slow_numbered_jpeg, stored_sources

REPO = Path(__file__).resolve().parents[2]


def numbered_sources(server, count: int) -> list[str]:
    """Images, with every 7th line a 404 and line 5 repeating line 1 (in the same shard)."""
    server.routes["/missing/"] = lambda h, n: h.send_body(404, b"", "text/plain")
    sources = [server.url(f"/missing/{i}.jpg" if i % 7 == 3 else f"/ok/{i}.jpg") for i in range(count)]
    sources[4] = sources[0]
    return sources


def test_two_processes_record_every_line_once_and_store_every_image_once(server, tmp_path):
    sources = numbered_sources(server, 40)
    outcome = run_download(tmp_path, sources, processes=2, samples_per_shard=5)
    assert outcome.report["run"]["processes"] == 2 and outcome.report["shards"] == 8
    assert sorted(outcome.statuses) == list(range(1, 41))  # every line recorded, once per status file
    stored = {line for line, record in outcome.statuses.items() if record["status"] == "ok"}
    assert set(outcome.samples) == stored and len(outcome.images) == len(stored)  # Outcome refuses a repeat
    assert all(count == 1 for path, count in server.hits.items() if path.startswith("/ok/"))
    assert outcome.status(5) == "duplicate"
    assert (outcome.report["stored"], outcome.report["skipped"], outcome.report["failed"]) == (len(stored), 1, 6)


def test_a_shard_task_on_its_own_matches_the_engine(server, tmp_path):
    """The unit a cluster engine would schedule: one shard, by a plain call, same files as the engine writes."""
    sources = numbered_sources(server, 12)
    engine = run_download(tmp_path, sources, samples_per_shard=5)
    alone = tmp_path / "alone"
    config = replace(FAST, samples_per_shard=5)
    alone.mkdir()
    tally = download_shard(tmp_path / "list.tsv", 1, TaskSettings(config), alone)
    assert tally.shards == 1 and sorted(p.name for p in alone.iterdir()) == [f"{shard_name(1)}.jsonl",
                                                                              f"{shard_name(1)}.tar"]
    single = Outcome(alone, {})
    assert {line: record["status"] for line, record in single.statuses.items()} == {
        line: engine.statuses[line]["status"] for line in range(6, 11)
    }
    assert single.samples == {line: meta for line, meta in engine.samples.items() if 6 <= line <= 10}


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(text) for text in path.read_text().split()] if path.exists() else []


def worker_pids(pid: int) -> list[int]:
    """The download worker processes of a run (they name themselves `mlimages-dl`)."""
    names = {}
    for child in children(pid):
        try:
            names[child] = Path(f"/proc/{child}/comm").read_text().strip()
        except FileNotFoundError:
            continue
    return [child for child, name in names.items() if name == "mlimages-dl"]


def test_sigkill_of_one_worker_process_then_rerun_loses_and_repeats_nothing(server, tmp_path):
    server.routes["/ok/"] = slow_numbered_jpeg
    sources = numbered_sources(server, 160)
    list_path, out = tmp_path / "list.tsv", tmp_path / "images"
    list_path.write_text("".join(f"{s}\t1:1\n" for s in sources), encoding="utf-8")
    settings = replace(FAST, samples_per_shard=10, processes=2, concurrency=2, max_attempts=1).__dict__
    params = write_params(tmp_path / "params.yaml",
                          download={k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()})
    command = [sys.executable, "pipelines/download_images.py", "--list", str(list_path), "--out", str(out),
               "--report", str(tmp_path / "report.json"), "--params", str(params)]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while (not list(out.glob("*.tar")) or len(worker_pids(process.pid)) < 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = worker_pids(process.pid)
    assert len(workers) == 2 and not list((tmp_path / "images").glob("00015.*"))  # killed mid-run
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)  # the run ends (the other worker finishes its shards)
    assert process.returncode == 1 and "rerun the same command" in stderr
    hits_before = collections.Counter(server.hits)
    stored_before = stored_sources(out)

    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=90)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    outcome = Outcome(out, {})
    assert not list(out.glob("*.partial")) and not list(out.glob("*.tmp"))
    for path in out.glob("*.tar"):
        with tarfile.open(path) as archive:
            archive.getmembers()
    reachable = {i + 1 for i, s in enumerate(sources) if "/ok/" in s and i != 4}
    assert sorted(outcome.statuses) == list(range(1, 161)) and set(outcome.samples) == reachable
    assert len(outcome.images) == len(reachable)  # each stored once
    assert 0 < len(stored_before) < len(reachable)
    for source in stored_before:  # nothing stored before the kill was fetched again
        path = source.removeprefix(server.url(""))
        assert server.hits[path] == hits_before[path] == 1

"""A changed list invalidates only the shards it touches; `--force` discards just those."""

from __future__ import annotations

import collections
from dataclasses import replace
from pathlib import Path

import pytest

from mlimages.download import download
from mlimages.errors import InputError

from .fault_server import FAST, Outcome, make_jpeg, run_download

CONFIG = replace(FAST, samples_per_shard=4, max_attempts=1)


def file_ids(out: Path) -> dict[str, tuple[int, int]]:
    """Name -> (inode, mtime) of the complete shard files: unchanged when a run left them alone."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir() if p.suffix in (".tar", ".jsonl")}


def new_hits(server, before: dict) -> set[str]:
    return set(server.hits - collections.Counter(before))


def rerun(tmp_path: Path, force: bool = False, **split) -> dict:
    return download(tmp_path / "list.tsv", tmp_path / "images", tmp_path / "r.json", CONFIG, force=force, **split)


def test_list_change_in_one_shard_refetches_only_that_shard(server, tmp_path):
    def flaky(handler, hits):  # down on the first request only
        if hits == 1:
            return handler.send_body(503, b"", "text/plain")
        handler.send_body(200, make_jpeg(hits))

    server.routes["/flaky/"] = flaky
    sources = [server.url(f"/ok/{i}.jpg") for i in range(12)]  # shards 0, 1, 2 of 4 lines
    sources[1] = server.url("/flaky/1.jpg")  # shard 0 has work left for the next run
    run_download(tmp_path, sources, samples_per_shard=4, max_attempts=1)
    out, hits, before = tmp_path / "images", dict(server.hits), file_ids(tmp_path / "images")
    sources[5] = server.url("/ok/new.jpg")  # line 6, in shard 1

    with pytest.raises(InputError, match=r"images/00001\.jsonl was written: line 6 is .*new\.jpg.*--force") as error:
        run_download(tmp_path, sources, samples_per_shard=4, max_attempts=1)
    assert error.value.where.endswith("list.tsv:6")
    assert new_hits(server, hits) == {"/flaky/1.jpg"}  # shard 0 was finished before the stop, and kept
    assert Outcome(out, {}).status(2) == "ok"
    assert {k: v for k, v in file_ids(out).items() if not k.startswith("00000")} == {
        k: v for k, v in before.items() if not k.startswith("00000")
    }

    hits, before = dict(server.hits), file_ids(out)
    report = rerun(tmp_path, force=True)
    assert new_hits(server, hits) == {f"/ok/{i}.jpg" for i in (4, 6, 7)} | {"/ok/new.jpg"}
    assert report["run"]["fetched"] == 4 and report["ok"] == 12
    after = file_ids(out)
    assert {k: after[k] for k in after if not k.startswith("00001")} == {
        k: before[k] for k in before if not k.startswith("00001")
    }
    assert Outcome(out, report).samples[6]["source"] == sources[5]


def test_force_with_unchanged_settings_keeps_every_shard(server, tmp_path):
    run_download(tmp_path, [server.url(f"/ok/{i}.jpg") for i in range(8)], samples_per_shard=4, max_attempts=1)
    hits, before = dict(server.hits), file_ids(tmp_path / "images")
    report = rerun(tmp_path, force=True)
    assert report["run"]["fetched"] == 0 and report["ok"] == 8
    assert server.hits == hits and file_ids(tmp_path / "images") == before


def test_shortened_list_discards_only_this_workers_stale_shards(server, tmp_path):
    run_download(tmp_path, [server.url(f"/ok/{i}.jpg") for i in range(12)], samples_per_shard=4, max_attempts=1)
    out, hits, before = tmp_path / "images", dict(server.hits), file_ids(tmp_path / "images")
    list_path = tmp_path / "list.tsv"
    list_path.write_text("".join(list_path.read_text().splitlines(keepends=True)[:6]), encoding="utf-8")
    # Worker 0 of 2 owns shards 0 and 2, worker 1 owns shard 1 (lines 5-8, of which 7 and 8 are gone).
    with pytest.raises(InputError, match=r"ends at line 6, but .* holds shards past it .*00002\.jsonl") as error:
        rerun(tmp_path, shard_index=0, num_shards=2)
    assert error.value.where.endswith("list.tsv:6") and "rerun with --force" in str(error.value)
    with pytest.raises(InputError, match=r"00001\.jsonl was written: line 7 is blank or past the end") as error:
        rerun(tmp_path, shard_index=1, num_shards=2)
    assert error.value.where.endswith("list.tsv:7") and file_ids(out) == before

    rerun(tmp_path, force=True, shard_index=0, num_shards=2)
    assert not list(out.glob("00002.*")) and server.hits == hits
    assert file_ids(out) == {k: v for k, v in before.items() if not k.startswith("00002")}  # 00001 is not its own
    report = rerun(tmp_path, force=True, shard_index=1, num_shards=2)
    assert new_hits(server, hits) == {"/ok/4.jpg", "/ok/5.jpg"} and report["lines"] == 2
    assert file_ids(out)["00000.tar"] == before["00000.tar"]
    assert sorted(Outcome(out, {}).samples) == [1, 2, 3, 4, 5, 6]

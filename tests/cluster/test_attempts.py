"""Fencing of shard attempts without Ray: two writers of one shard never mix, and a later attempt resumes."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from mlimages.cluster.attempts import (
    attempt_folder, attempt_token, commit, earlier_attempts, remove_attempts_folder, seed_attempt,
)
from mlimages.cluster.config import ClusterConfig
from mlimages.config import load_params
from mlimages.download.task import ShardTask, TaskSettings, local_services, run_tasks
from mlimages.errors import InputError
from tests.download.fault_server import FAST, Outcome, slow_numbered_jpeg
from tests.factories import params_config, write_params

LINES = 30


def write_list(tmp_path: Path, server) -> Path:
    server.routes["/n/"] = slow_numbered_jpeg
    path = tmp_path / "list.tsv"
    path.write_text("".join(f"{server.url(f'/n/{i}.jpg')}\t{i % 5}:1\n" for i in range(LINES)), encoding="utf-8")
    return path


def attempt(list_path: Path, out: Path, token: str, errors: list) -> None:
    """One attempt of shard 0, as a node runs it (without the driver's commit)."""
    try:
        folder = seed_attempt(out, [0], token)
        settings = TaskSettings(dataclasses.replace(FAST, samples_per_shard=LINES, concurrency=2))
        run_tasks([ShardTask(list_path, 0, settings, folder)], local_services(settings.config))
    except Exception as error:  # noqa: BLE001 - the fenced attempt is expected to fail; the test reads it
        errors.append(error)


def test_two_attempts_of_one_shard_never_mix(server, tmp_path):
    """The first attempt is still writing when the retry starts: the retry takes over its samples,
    the first one fails at its next new file, and only the retry's shard is committed."""
    list_path, out = write_list(tmp_path, server), tmp_path / "images"
    out.mkdir()
    first_errors, second_errors = [], []
    first = threading.Thread(target=attempt, args=(list_path, out, attempt_token(1, 1), first_errors))
    first.start()
    first_partial = attempt_folder(out, attempt_token(1, 1)) / "00000.tar.partial"
    while not first_partial.exists() or first_partial.stat().st_size < 4096:
        time.sleep(0.01)
    attempt(list_path, out, attempt_token(1, 2), second_errors)
    first.join(timeout=60)
    assert not second_errors
    assert first_errors and isinstance(first_errors[0], FileNotFoundError)  # fenced: its folder is gone
    assert commit(out, 0, attempt_folder(out, attempt_token(1, 2)))
    outcome = Outcome(out, {})  # refuses a sample stored twice
    assert sorted(outcome.statuses) == list(range(1, LINES + 1))
    assert set(outcome.samples) == set(range(1, LINES + 1))
    assert sum(server.hits.values()) < 2 * LINES  # the retry did not fetch what it took over
    remove_attempts_folder(out)
    assert sorted(p.name for p in out.iterdir()) == ["00000.jsonl", "00000.tar"]


def test_an_uncommitted_attempt_is_resumed_by_the_next_run(server, tmp_path):
    """A run stopped after an attempt finished but before the driver committed it: nothing is fetched again."""
    list_path, out = write_list(tmp_path, server), tmp_path / "images"
    out.mkdir()
    errors = []
    attempt(list_path, out, attempt_token(1, 1), errors)
    hits = sum(server.hits.values())
    assert attempt_folder(out, attempt_token(1, 1)).is_dir()
    attempt(list_path, out, attempt_token(2, 1), errors)  # the next run's first attempt
    assert not errors and sum(server.hits.values()) == hits == LINES
    assert earlier_attempts(out, attempt_token(2, 1)) == []  # the adopted folder is gone
    assert not attempt_folder(out, attempt_token(1, 1)).exists()
    assert commit(out, 0, attempt_folder(out, attempt_token(2, 1)))
    assert set(Outcome(out, {}).samples) == set(range(1, LINES + 1))


def test_an_attempt_never_touches_a_later_attempts_folder(tmp_path):
    later = attempt_folder(tmp_path, attempt_token(5, 2))
    later.mkdir(parents=True)
    (later / "00003.tar.partial").write_bytes(b"")
    seed_attempt(tmp_path, [3], attempt_token(5, 1))
    assert (later / "00003.tar.partial").exists()
    assert attempt_token(5, 2) < attempt_token(6, 1) and attempt_token(5, 9) < attempt_token(5, 10)


def test_an_attempt_of_several_shards_adopts_each_from_where_it_went_furthest(tmp_path):
    """Shards 4-7 after a run that carried them two per task: each shard's files come from the latest
    folder holding it (a partial beats the committed shard), adopted files leave the earlier folders,
    a folder it adopted from goes once it holds no shard, and another attempt's folder is never touched."""
    def put(folder: Path, name: str, data: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    out = tmp_path
    for index in (4, 5):
        for suffix in (".tar", ".jsonl"):
            put(out, f"0000{index}{suffix}", b"committed")
    first, second, other = (attempt_folder(out, attempt_token(1, n)) for n in (1, 2, 3))
    put(first, "00004.tar.partial", b"old")  # shards 4-5, lost; then retried as `second`
    put(second, "00004.tar.partial", b"newer")
    put(second, "00004.jsonl.partial", b"newer")
    put(other, "00006.tar", b"done, not committed")
    put(other, "00006.jsonl", b"done, not committed")
    put(other, "00009.tar.partial", b"not ours")
    running = attempt_folder(out, attempt_token(1, 4))  # an attempt of other shards, just starting
    put(running, "00012.jsonl.partial.tmp", b"")
    folder = seed_attempt(out, [4, 5, 6, 7], attempt_token(2, 1))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "00004.tar.partial": b"newer", "00004.jsonl.partial": b"newer", "00005.tar": b"committed",
        "00005.jsonl": b"committed", "00006.tar": b"done, not committed", "00006.jsonl": b"done, not committed"}
    assert not first.exists() and not second.exists()
    assert [p.name for p in other.iterdir()] == ["00009.tar.partial"]  # not this attempt's shard: kept
    assert [p.name for p in running.iterdir()] == ["00012.jsonl.partial.tmp"]
    assert commit(out, 6, folder) and not commit(out, 7, folder)
    assert (out / "00006.tar").read_bytes() == b"done, not committed" and not (folder / "00006.tar").exists()


def test_cluster_params(tmp_path):
    assert params_config("cluster", ClusterConfig).engine == "local"
    params = write_params(tmp_path / "params.yaml", cluster={"engine": "spark"})
    with pytest.raises(InputError, match="must be one of 'local', 'ray'") as error:
        load_params("cluster", ClusterConfig, params)
    assert error.value.where == f"{params}: cluster.engine"
    with pytest.raises(InputError, match="at least 1"):
        params_config("cluster", ClusterConfig, engine="ray", shard_attempts=0)

"""The sharded writer: names, index.json, atomic replace, byte-identical output."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlimages.errors import InputError
from mlimages.records.index import list_shards, read_index, verify_folder
from mlimages.records.reader import iter_serialized
from mlimages.records.writer import ShardWriter, max_records_per_shard

RECORDS = [bytes([i]) * (100 + i) for i in range(10)]


def write(folder, records=RECORDS, shard_bytes=300, max_records=None):
    with ShardWriter(folder, "multi", 5, shard_bytes, max_records, extra={"note": "test"}) as writer:
        for record in records:
            writer.write(record)
        return writer.commit()


def test_shards_are_cut_by_bytes_and_described_by_the_index(tmp_path):
    index = write(tmp_path / "train")
    on_disk = json.loads((tmp_path / "train" / "index.json").read_text())
    assert on_disk == index == read_index(tmp_path / "train")
    assert (index["format"], index["label_kind"], index["num_classes"], index["note"]) == (
        "mlimages-tfrecord-v1", "multi", 5, "test")
    total = len(index["shards"])
    assert total == 4  # 3 records of ~120 bytes reach 300 bytes
    assert [s["file"] for s in index["shards"]] == [f"part-{i:05d}-of-{total:05d}.tfrecord" for i in range(total)]
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == sorted([*(s["file"] for s in index["shards"]),
                                                                            "index.json"])
    for shard in index["shards"]:
        data = (tmp_path / "train" / shard["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (shard["bytes"], shard["sha256"])
    assert index["count"] == sum(s["count"] for s in index["shards"]) == 10
    assert list(iter_serialized(list_shards(tmp_path / "train"))) == RECORDS
    assert verify_folder(tmp_path / "train") == []


def test_min_shards_caps_records_per_shard(tmp_path):
    assert max_records_per_shard(10, 4) == 3 and max_records_per_shard(10, 1) is None
    index = write(tmp_path / "val", shard_bytes=1 << 30, max_records=max_records_per_shard(10, 4))
    assert [s["count"] for s in index["shards"]] == [3, 3, 3, 1]


def test_same_records_give_byte_identical_folders(tmp_path):
    first, second = write(tmp_path / "a"), write(tmp_path / "b")
    assert first == second
    for shard in first["shards"]:
        assert (tmp_path / "a" / shard["file"]).read_bytes() == (tmp_path / "b" / shard["file"]).read_bytes()


def test_failure_midway_leaves_the_previous_folder_untouched(tmp_path):
    folder = tmp_path / "train"
    before = write(folder, RECORDS[:2])
    with pytest.raises(RuntimeError):
        with ShardWriter(folder, "multi", 5, 300) as writer:
            writer.write(b"new")
            raise RuntimeError("interrupted")
    assert read_index(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no .partial left behind
    after = write(folder, RECORDS[5:])
    assert after["count"] == 5 and list(iter_serialized(list_shards(folder))) == RECORDS[5:]


def test_refuses_to_replace_a_folder_that_is_not_a_records_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing to replace"):
        write(tmp_path / "train")
    assert (tmp_path / "train" / "notes.txt").exists()


def test_verify_folder_finds_a_damaged_shard(tmp_path):
    index = write(tmp_path / "train")
    shard = tmp_path / "train" / index["shards"][1]["file"]
    data = bytearray(shard.read_bytes())
    data[20] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = verify_folder(tmp_path / "train")
    assert len(problems) == 1 and "sha256" in problems[0] and shard.name in problems[0]


def test_zero_records_give_an_empty_but_valid_folder(tmp_path):
    index = write(tmp_path / "empty", records=[])
    assert (index["count"], index["shards"]) == (0, [])
    assert list(iter_serialized(list_shards(tmp_path / "empty"))) == []

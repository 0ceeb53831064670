"""build_tfrecords: image shards -> records, bad images skipped and reported, identical bytes."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from mlimages.errors import InputError
from mlimages.images import ImageError
from mlimages.records import transcode
from mlimages.records.build import build_ml_images, write_split
from mlimages.records.image_shards import index_shard, iter_samples, list_image_shards
from mlimages.records.config import RecordsConfig
from mlimages.records.index import list_shards, read_index
from mlimages.records.reader import iter_records

from tests.factories import params_config

from .fakes import make_jpeg, make_sample, write_hierarchy, write_image_shard

REPO = Path(__file__).resolve().parents[2]
CONFIG = params_config("records", RecordsConfig, shorter_side=16, jpeg_quality=85, shard_bytes=1 << 20, min_shards=3,
                       num_workers=2)


def make_world(root: Path, order_seed: int | None = 1) -> dict:
    """Two image shards with interleaved lines, one truncated JPEG and one non-image member."""
    good = {line: make_jpeg(32, 24, seed=line) for line in (1, 2, 4, 5, 7, 8, 9)}
    truncated = make_jpeg(32, 24, seed=3)
    truncated = truncated[: len(truncated) * 2 // 3]  # cut inside the scan data
    samples = {line: make_sample(line, data, labels=(line % 4 + 2, line % 2), confidences=(0.5, 1.0))
               for line, data in good.items()}
    samples[3] = make_sample(3, truncated)
    samples[6] = make_sample(6, b"<html>not found</html>")
    write_image_shard(root / "images" / "00000.tar", [samples[i] for i in (1, 3, 5, 7, 9)], seed=order_seed)
    write_image_shard(root / "images" / "00001.tar", [samples[i] for i in (2, 4, 6, 8)], seed=order_seed)
    (root / "images" / "00002.tar.tmp").write_bytes(b"an unfinished download")  # ignored
    write_hierarchy(root / "hierarchy.txt")
    return samples


def test_build_writes_good_images_in_line_order_and_reports_bad_ones(tmp_path):
    samples = make_world(tmp_path)
    report = build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "out" / "train", CONFIG)
    records = list(iter_records(list_shards(tmp_path / "out" / "train")))
    good_lines = [1, 2, 4, 5, 7, 8, 9]
    assert [r.filename for r in records] == [samples[line]["source"] for line in good_lines]
    assert [r.labels for r in records] == [tuple(samples[line]["labels"]) for line in good_lines]
    assert all(r.confidences == (0.5, 1.0) for r in records)
    for record in records:  # re-encoded to shorter side 16: 32x24 -> 21x16
        assert (record.width, record.height) == (21, 16)
        assert Image.open(io.BytesIO(record.image)).size == (21, 16)
    assert (report["samples"], report["written"], report["skipped"]) == (9, 7, 2)
    assert report["skipped_by_reason"] == {"not_image": 1, "truncated": 1}
    named = {bad["line"]: (bad["reason"], bad["where"]) for bad in report["skipped_samples"]}
    assert named == {3: ("truncated", f"00000.tar:{samples[3]['key']}"),
                     6: ("not_image", f"00001.tar:{samples[6]['key']}")}
    index = read_index(tmp_path / "out" / "train")
    assert (index["label_kind"], index["num_classes"], index["count"], len(index["shards"])) == ("multi", 6, 7, 3)
    classes = (tmp_path / "out" / "train" / "classes.tsv").read_text().splitlines()
    assert classes[:2] == ["0\tn00000000\tclass 0", "1\tn00000001\tclass 1"] and len(classes) == 6


def test_same_inputs_give_identical_shards_whatever_download_order_and_workers(tmp_path):
    make_world(tmp_path / "a", order_seed=1)
    make_world(tmp_path / "b", order_seed=2)
    build_ml_images(tmp_path / "a" / "images", tmp_path / "a" / "hierarchy.txt", tmp_path / "a" / "out", CONFIG)
    one_worker = dataclasses.replace(CONFIG, num_workers=1)
    build_ml_images(tmp_path / "b" / "images", tmp_path / "b" / "hierarchy.txt", tmp_path / "b" / "out", one_worker)
    first, second = read_index(tmp_path / "a" / "out"), read_index(tmp_path / "b" / "out")
    assert first == second
    for shard in first["shards"]:
        assert (tmp_path / "a" / "out" / shard["file"]).read_bytes() == (tmp_path / "b" / "out" / shard["file"]).read_bytes()


def test_dense_labels_on_request_only(tmp_path):
    make_world(tmp_path)
    sparse = build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "sparse", CONFIG)
    dense = build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "dense", CONFIG,
                            dense_labels=True)
    assert read_index(tmp_path / "dense")["dense_labels"] and not read_index(tmp_path / "sparse")["dense_labels"]
    assert dense["bytes"] - sparse["bytes"] >= 7 * 4 * 6


def test_label_outside_the_hierarchy_is_an_input_error(tmp_path):
    write_hierarchy(tmp_path / "hierarchy.txt")
    write_image_shard(tmp_path / "images" / "00000.tar", [make_sample(1, make_jpeg(seed=1), labels=(99,))])
    with pytest.raises(InputError, match="label 99 outside the hierarchy's 6 classes"):
        build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "out", CONFIG)
    assert not (tmp_path / "out").exists()


def test_a_broken_archive_or_empty_folder_is_an_input_error(tmp_path):
    write_hierarchy(tmp_path / "hierarchy.txt")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no NNNNN.tar image shards"):
        build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "out", CONFIG)
    (tmp_path / "images" / "00000.tar").write_bytes(b"garbage" * 200)
    with pytest.raises(InputError, match="not a readable tar archive") as error:
        build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "out", CONFIG)
    assert "00000.tar" in str(error.value)


def test_stage_script_writes_records_and_report(tmp_path):
    make_world(tmp_path)
    params = (REPO / "params.yaml").read_text().replace("shorter_side: 256", "shorter_side: 16")
    (tmp_path / "params.yaml").write_text(params)
    command = [sys.executable, str(REPO / "pipelines" / "build_tfrecords.py"), "--images", "images",
               "--hierarchy", "hierarchy.txt", "--out", "tfrecords/ml-images/train", "--report", "reports/train.json"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "reports" / "train.json").read_text())
    assert (report["written"], report["skipped"], report["shards"]) == (7, 2, 3)  # 9 samples / 4: 3 a shard
    assert read_index(tmp_path / "tfrecords" / "ml-images" / "train")["count"] == 7
    assert (tmp_path / "tfrecords" / "ml-images" / "train" / "classes.tsv").exists()


def test_damaged_samples_are_skipped_and_named(tmp_path):
    write_hierarchy(tmp_path / "hierarchy.txt")
    corrupt = make_sample(2, make_jpeg(seed=2)) | {"sha256": "0" * 64}
    shard = write_image_shard(tmp_path / "images" / "00000.tar", [make_sample(1, make_jpeg(seed=1)), corrupt])
    with tarfile.open(shard, "a") as tar:  # an image whose .json never came
        info = tarfile.TarInfo("lonely.jpg")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\xff\xd8\xff\xd9"))
    report = build_ml_images(tmp_path / "images", tmp_path / "hierarchy.txt", tmp_path / "out", CONFIG)
    assert (report["written"], report["skipped_by_reason"]) == (1, {"missing_metadata": 1, "sha256_mismatch": 1})
    assert {bad["where"] for bad in report["skipped_samples"]} == {"00000.tar:lonely", f"00000.tar:{corrupt['key']}"}


def test_an_unexpected_decoder_exception_is_a_skipped_image(monkeypatch):
    def explode(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")  # as from a malformed EXIF block

    monkeypatch.setattr("mlimages.records.transcode.load_rgb", explode)  # transcode lives there, TensorFlow-free
    result = transcode.transcode(make_jpeg(), CONFIG)
    assert isinstance(result, ImageError) and result.reason == "decode_error" and "unpack requires" in str(result)


def test_an_image_gone_during_the_build_stops_it_with_one_error_naming_the_file(tmp_path):
    """Samples name where their images lie and are read by the workers: a shard deleted after its metadata
    was read is one `InputError` naming it, and no split is written."""
    make_world(tmp_path)
    shards = list_image_shards(tmp_path / "images")
    samples = list(iter_samples(shards, [index_shard(shard)[0] for shard in shards], num_classes=8))
    shards[1].unlink()
    with pytest.raises(InputError, match=r"cannot read the image of 00001\.tar:.*No such file") as caught:
        write_split(samples, tmp_path / "out", CONFIG, "multi", 8, len(samples))
    assert caught.value.where == str(shards[1].absolute())
    assert sorted(os.listdir(tmp_path)) == ["hierarchy.txt", "images"]  # nor any temporary folder

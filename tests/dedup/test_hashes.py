"""Hash tables of image shards: hashes from the metadata when present, else backfilled by decoding."""

from __future__ import annotations

import pytest

from mlimages.dedup.hashes import hash_image_shards, hash_imagenet_folder
from mlimages.dedup.phash import compute_phash, format_phash
from mlimages.errors import InputError

from tests.records.fakes import make_sample, write_image_shard

from .world import demo_image, jpeg


def test_stored_hashes_are_used_and_missing_ones_backfilled(tmp_path):
    images = [demo_image("train", i) for i in range(3)]
    stored = make_sample(1, jpeg(images[0])) | {"phash": format_phash(12345)}  # not the image's: proves it is read
    samples = [stored, make_sample(2, jpeg(images[1])), make_sample(3, b"not an image at all")]
    write_image_shard(tmp_path / "00000.tar", samples, seed=3)
    table = hash_image_shards(tmp_path)
    assert [table.name(row) for row in range(len(table))] == [samples[0]["key"], samples[1]["key"]]
    assert table.phashes[0] == 12345 and abs(int(table.phashes[1]) ^ compute_phash(images[1])).bit_count() <= 2
    assert (table.backfilled, table.undecodable) == (1, [samples[2]["key"]])  # named, counted, not silently lost
    assert table.record_filename(1) == samples[1]["source"] and table.read_image(1) == samples[1]["data"]


def test_a_malformed_stored_hash_is_an_input_error_naming_the_sample(tmp_path):
    sample = make_sample(1, jpeg(demo_image("train", 0))) | {"phash": "xyz"}
    write_image_shard(tmp_path / "00000.tar", [sample])
    with pytest.raises(InputError, match=rf"00000.tar:{sample['key']}: phash: expected 16 hex digits"):
        hash_image_shards(tmp_path)


def test_imagenet_val_images_are_named_as_their_records(tmp_path):
    for split in ("train", "val"):
        folder = tmp_path / split / "n01440764"
        folder.mkdir(parents=True)
        (folder / "a.JPEG").write_bytes(jpeg(demo_image("val", 1)))
    table = hash_imagenet_folder(tmp_path)
    assert [table.record_filename(0)] == ["n01440764/a.JPEG"] and table.backfilled == 1

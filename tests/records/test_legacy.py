"""The original Tencent records: read them, convert them, inspect them."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mlimages.cli import main
from mlimages.errors import InputError
from mlimages.records.legacy import decode_legacy_example, iter_legacy_records, parse_legacy_example
from mlimages.records.index import list_shards, read_index
from mlimages.records.reader import iter_records, iter_serialized
from mlimages.records.schema import parse_example

# Golden values: the non-zero entries of each record's dense 11,166-float label vector.
GOLDEN = {
    "im_2.jpeg": ((3, 5193, 5851, 9413, 9416), (1.0, 0.9, 0.9, 1.0, 1.0)),
    "im_3.jpeg": ((1053, 1193, 1379), (0.8, 0.8, 0.8)),
    "im_0.jpeg": ((5170, 5177), (0.9, 0.9)),
    "im_1.jpeg": ((1053, 1193), (0.8, 0.8)),
}


@pytest.fixture(scope="module")
def legacy_files(shared_data):
    return sorted((shared_data / "tfrecords").glob("*.tfrecords"))


def test_legacy_reader_gives_sparse_labels_of_the_dense_vector(legacy_files):
    pairs = list(iter_legacy_records(legacy_files))
    assert [record.filename for record, _ in pairs] == ["im_2.jpeg", "im_3.jpeg", "im_0.jpeg", "im_1.jpeg"]
    for record, num_classes in pairs:
        labels, confidences = GOLDEN[record.filename]
        assert num_classes == 11166 and record.labels == labels
        np.testing.assert_allclose(record.confidences, confidences, rtol=1e-6)
        assert Image.open(io.BytesIO(record.image)).size == (record.width, record.height)


def test_graph_parse_matches_plain_decode(legacy_files):
    plain = [decode_legacy_example(s) for s in iter_serialized(legacy_files)]
    parsed = list(tf.data.TFRecordDataset([str(f) for f in legacy_files]).map(parse_legacy_example)
                  .as_numpy_iterator())
    for record, tensors in zip(plain, parsed, strict=True):
        assert tensors["image"] == record.image and tensors["filename"].decode() == record.filename
        assert tensors["labels"].tolist() == list(record.labels)
        np.testing.assert_array_equal(tensors["confidences"], np.float32(record.confidences))
        assert (tensors["height"], tensors["width"]) == (record.height, record.width)


def test_convert_gives_the_same_images_labels_and_confidences(legacy_files, tmp_path, capsys):
    assert main(["records", "convert", *map(str, legacy_files), "--out", str(tmp_path / "train")]) == 0
    assert "wrote 4 records (11166 classes)" in capsys.readouterr().out
    index = read_index(tmp_path / "train")
    assert (index["count"], index["num_classes"], index["label_kind"]) == (4, 11166, "multi")
    legacy = [record for record, _ in iter_legacy_records(legacy_files)]
    ours = list(iter_records(list_shards(tmp_path / "train")))
    parsed = list(tf.data.TFRecordDataset([str(f) for f in list_shards(tmp_path / "train")]).map(parse_example)
                  .as_numpy_iterator())
    for old, new, tensors in zip(legacy, ours, parsed, strict=True):
        assert (new.image, new.labels, new.filename) == (old.image, old.labels, old.filename)
        np.testing.assert_array_equal(np.float32(new.confidences), np.float32(old.confidences))
        assert tensors["labels"].tolist() == list(old.labels)
        np.testing.assert_array_equal(tensors["confidences"], np.float32(old.confidences))
    legacy_bytes = sum(f.stat().st_size for f in legacy_files)
    assert index["bytes"] < legacy_bytes - 4 * 44_000  # the dense vectors are gone


def test_inspect_prints_counts_and_top_labels(legacy_files, tmp_path, capsys):
    main(["records", "convert", *map(str, legacy_files), "--out", str(tmp_path / "ml" / "train")])
    (tmp_path / "ml" / "classes.tsv").write_text("".join(f"{i}\tn{i:08d}\tname {i}\n" for i in range(11166)))
    capsys.readouterr()
    assert main(["records", "inspect", str(tmp_path / "ml" / "train"), "--verify", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["layout"], summary["records"], summary["labels"], summary["problems"]) == ("mlimages", 4, 12, [])
    assert summary["top_labels"][:2] == [{"label": 1053, "name": "name 1053", "records": 2},
                                         {"label": 1193, "name": "name 1193", "records": 2}]
    assert main(["records", "inspect", str(legacy_files[0])]) == 0
    text = capsys.readouterr().out
    assert "(legacy layout)" in text and "records            2" in text


def test_not_a_legacy_record_is_an_input_error(tmp_path):
    example = tf.train.Example(features=tf.train.Features(feature={
        "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x00" * 5])),
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}))
    with pytest.raises(InputError, match="label is 5 bytes"):
        decode_legacy_example(example.SerializeToString(), "f.tfrecords: record 1")
    with pytest.raises(SystemExit) as exit_info:
        main(["records", "convert", str(tmp_path / "missing.tfrecords"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2

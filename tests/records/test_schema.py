"""The record schema round trip, in plain Python and through tf.data."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from mlimages.records.schema import DENSE, decode_example, encode_example, parse_example

from .fakes import make_jpeg

IMAGE = make_jpeg(32, 24, seed=1)
LABELS = (3, 17, 11165)
CONFIDENCES = (1.0, 0.75, 0.5)


def test_decode_example_gives_back_what_was_encoded():
    record = decode_example(encode_example(IMAGE, 24, 32, LABELS, CONFIDENCES, filename="file:///a/b.jpg"))
    assert record.image == IMAGE
    assert (record.height, record.width, record.format) == (24, 32, "jpeg")
    assert record.labels == LABELS
    assert record.confidences == CONFIDENCES
    assert record.filename == "file:///a/b.jpg"
    assert record.sha256 == hashlib.sha256(IMAGE).hexdigest()


def test_parse_example_in_tf_data_matches_decode_example():
    serialized = [encode_example(IMAGE, 24, 32, LABELS, CONFIDENCES, filename="x"),
                  encode_example(IMAGE[::-1], 5, 6, (7,))]
    parsed = list(tf.data.Dataset.from_tensor_slices(serialized).map(parse_example).as_numpy_iterator())
    assert parsed[0]["image"] == IMAGE
    assert parsed[0]["labels"].tolist() == list(LABELS)
    np.testing.assert_allclose(parsed[0]["confidences"], CONFIDENCES)
    assert (parsed[0]["height"], parsed[0]["width"], parsed[0]["filename"]) == (24, 32, b"x")
    assert parsed[1]["labels"].tolist() == [7] and parsed[1]["confidences"].tolist() == [1.0]


def test_encoding_is_deterministic_and_dense_labels_are_opt_in():
    sparse = encode_example(IMAGE, 24, 32, LABELS, CONFIDENCES)
    assert sparse == encode_example(IMAGE, 24, 32, LABELS, CONFIDENCES)
    dense = encode_example(IMAGE, 24, 32, LABELS, CONFIDENCES, dense_classes=11166)
    assert len(dense) - len(sparse) >= 4 * 11166
    feature = tf.train.Example.FromString(dense).features.feature
    vector = np.frombuffer(feature[DENSE].bytes_list.value[0], dtype="<f4")
    assert np.flatnonzero(vector).tolist() == list(LABELS)
    assert decode_example(dense).labels == LABELS  # readers ignore the dense copy
    assert DENSE not in tf.train.Example.FromString(sparse).features.feature


def test_labels_and_confidences_must_pair_up():
    with pytest.raises(ValueError, match="2 labels but 1 confidences"):
        encode_example(IMAGE, 24, 32, (1, 2), (1.0,))

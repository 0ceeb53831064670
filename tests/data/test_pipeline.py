"""Input pipeline: crop shapes and scaling, fused vs decoded crops, dense targets, determinism, bad folders."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mlimages.data import preprocess
from mlimages.data.pipeline import InputConfig, dense_targets, make_dataset
from mlimages.errors import InputError
from mlimages.records.index import list_record_files

from tests.train.fakes import NUM_CLASSES, write_records


def encode(array: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt)
    return out.getvalue()


def gradient_image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], -1).astype(np.uint8)


def test_train_crop_shape_range_and_seed():
    jpeg = tf.constant(encode(gradient_image(60, 90), "JPEG"))
    seed = tf.constant([1, 2], tf.int64)
    crop = preprocess.train_crop(jpeg, seed, 24, area_range=(0.05, 1.0))
    assert crop.shape == (24, 24, 3) and crop.dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(crop)) and float(tf.reduce_max(crop)) <= 1.0
    np.testing.assert_array_equal(crop, preprocess.train_crop(jpeg, seed, 24, area_range=(0.05, 1.0)))
    other = preprocess.train_crop(jpeg, tf.constant([5, 6], tf.int64), 24, area_range=(0.05, 1.0))
    assert not np.array_equal(crop, other)


def test_fused_jpeg_crop_equals_decoded_crop_for_png_and_jpeg_windows():
    # The same window cut from a lossless PNG and from the decoded JPEG must agree closely.
    pixels = gradient_image(64, 80)
    seed = tf.constant([3, 4], tf.int64)
    from_png = preprocess.train_crop(tf.constant(encode(pixels, "PNG")), seed, 32, flip=False)
    from_jpeg = preprocess.train_crop(tf.constant(encode(pixels, "JPEG")), seed, 32, flip=False)
    assert from_png.shape == from_jpeg.shape == (32, 32, 3)
    assert float(tf.reduce_mean(tf.abs(from_png - from_jpeg))) < 0.05


def test_crop_area_respects_range():
    shape = tf.constant([100, 100, 3])
    for i in range(20):
        window = preprocess.sample_crop_window(shape, tf.constant([i, 0], tf.int64), (0.7, 1.0), (0.75, 1.333))
        area = int(window[2]) * int(window[3]) / 10000
        assert 0.69 <= area <= 1.0


def test_eval_crop_resizes_shorter_side_then_centre():
    pixels = gradient_image(128, 256)  # shorter side 128 -> 64 / 0.5 = 128: no resize, centre crop of 64
    crop = preprocess.eval_crop(tf.constant(encode(pixels, "PNG")), 64, crop_fraction=0.5)
    expected = preprocess.scale_pixels(pixels[32:96, 96:160].astype(np.float32))
    np.testing.assert_allclose(crop, expected, atol=1e-5)


def test_scale_pixels_matches_original():
    np.testing.assert_allclose(preprocess.scale_pixels(tf.constant([0, 255, 127.5])), [-1.0, 1.0, 0.0], atol=1e-6)


def test_dense_targets_from_padded_sparse_labels():
    labels = tf.constant([[2, 0, -1], [4, 4, -1], [-1, -1, -1]], tf.int64)
    confidences = tf.constant([[1.0, 0.6, 0.0], [0.3, 0.9, 0.0], [0.0, 0.0, 0.0]])
    dense = dense_targets(labels, confidences, 5).numpy()
    np.testing.assert_allclose(dense, [[0.6, 0, 1, 0, 0], [0, 0, 0, 0, 0.9], [0, 0, 0, 0, 0]])


def test_dataset_batches_dense_targets_and_is_deterministic(tmp_path):
    folder = write_records(tmp_path / "ml" / "train", 24, "multi")
    cfg = InputConfig(image_size=24, batch_size=8, num_classes=NUM_CLASSES, seed=7, deterministic=True)
    first = list(make_dataset(folder, cfg, training=True).take(3))
    second = list(make_dataset(folder, cfg, training=True).take(3))
    for (x1, y1), (x2, y2) in zip(first, second):
        assert x1.shape == (8, 24, 24, 3) and y1.shape == (8, NUM_CLASSES)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    targets = first[0][1].numpy()
    np.testing.assert_allclose(np.sort(targets, axis=1)[:, -2:], [[0.8, 1.0]] * 8)  # labels at 1.0 and 0.8
    evaluated = list(make_dataset(folder, cfg, training=False))
    assert sum(len(x) for x, _ in evaluated) == 24  # one pass, last batch kept


def test_bad_record_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list_record_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no index.json"):
        list_record_files(tmp_path / "empty")
    folder = write_records(tmp_path / "ml" / "train", 4, "multi", num_shards=1)
    with pytest.raises(InputError, match="num_classes=5 but the model has 7"):
        list_record_files(folder, num_classes=7)
    index = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**index, "count": 0, "shards": []}))
    with pytest.raises(InputError, match="no records"):
        list_record_files(folder)


def test_large_jpeg_crop_decoded_at_reduced_scale_matches_full_decode():
    # A 1024 px photo cropped to 32 px decodes at 1/8 scale; it must look like the full-scale crop.
    pixels = np.asarray(Image.fromarray(gradient_image(24, 32)).resize((1024, 768), Image.BICUBIC))
    jpeg = tf.constant(encode(pixels, "JPEG"))
    png = tf.constant(encode(pixels, "PNG"))
    seed = tf.constant([9, 9], tf.int64)
    fused = preprocess.train_crop(jpeg, seed, 32, flip=False)
    reference = preprocess.train_crop(png, seed, 32, flip=False)
    assert float(tf.reduce_mean(tf.abs(fused - reference))) < 0.05

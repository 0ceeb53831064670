"""The perceptual hash: copies of an image stay close, different images stay apart."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlimages.dedup.phash import compute_phash, format_phash, hamming_distance, parse_phash, phash_of_bytes

from .world import brighter, demo_image, half_size, jpeg

MAX_DISTANCE = 4  # params.yaml's default


@pytest.mark.parametrize("index", range(5))
def test_planted_copies_are_within_the_threshold(index):
    image = demo_image("train", index)
    original = compute_phash(image)
    copies = {"half": half_size(image), "q60": Image.open(io.BytesIO(jpeg(image, 60))), "bright": brighter(image)}
    for name, copy in copies.items():
        assert hamming_distance(original, compute_phash(copy)) <= MAX_DISTANCE, name


def test_distinct_demo_images_are_far_apart():
    hashes = np.array([compute_phash(demo_image("train", i)) for i in range(200)], dtype=np.uint64)
    distances = np.bitwise_count(hashes[:, None] ^ hashes[None, :])[np.triu_indices(len(hashes), 1)]
    assert distances.min() > 2 * MAX_DISTANCE
    assert 24 <= np.median(distances) <= 40  # about half the bits: the hash uses its 64 bits


def test_hash_ignores_mode_and_is_a_64_bit_number():
    image = demo_image("train", 7)
    value = compute_phash(image)
    assert 0 <= value < 2**64
    assert compute_phash(image.convert("L")) == value
    assert compute_phash(image.convert("RGBA")) == value
    assert hamming_distance(phash_of_bytes(jpeg(image, 95)), value) <= 2  # the backfill's path: bytes


def test_hex_form_round_trips_and_rejects_bad_text():
    assert format_phash(0) == "0" * 16
    assert parse_phash(format_phash(2**64 - 1)) == 2**64 - 1
    assert parse_phash("00ff00ff00ff00ff") == 0x00FF00FF00FF00FF
    for bad in ("abc", "zz" * 8, "0" * 17):
        with pytest.raises(ValueError):
            parse_phash(bad)


def test_a_flat_image_and_its_inverse_hash_consistently():
    gradient = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)))
    inverse = Image.fromarray(255 - np.asarray(gradient))
    assert hamming_distance(compute_phash(gradient), compute_phash(inverse)) > 2 * MAX_DISTANCE

"""Training-crop throughput at 224 px: fused decode-and-crop (ours) against decode-then-crop (naive).

Both run side by side in the same process, through the same `tf.data` map with autotuned
parallelism, on (a) our TFRecords at the stored size (shorter side 256) and (b) original-size
photos of 1-12 megapixels (generated, plus the release's sample photos when present). Rates are
compared with the machine's raw JPEG decode rate (full decode, nothing else: the naive path's
limit) and with what a ResNet-101 training step at 224 px consumes on this machine.

    python benchmarks/bench_input_pipeline.py [--quick] [--photos ../shared/data/tencent-ml-images/images]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.report import markdown_table, write_section  # noqa: E402
from mlimages.data import preprocess  # noqa: E402
from mlimages.records.schema import encode_example, parse_example  # noqa: E402

SIZE = 224
AREA, ASPECT = (0.05, 1.0), (0.75, 1.333)
DEFAULT_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared/data/tencent-ml-images/images"


def make_photo(megapixels: float, seed: int) -> bytes:
    """A photo-like JPEG (smooth shapes plus sensor-like noise) of about `megapixels`."""
    rng = np.random.default_rng(seed)
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = int(height * 4 / 3)
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(small, np.int16) + rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def to_stored_size(jpeg: bytes, shorter_side: int = 256) -> bytes:
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    scale = shorter_side / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def naive_crop(image_bytes, seed):
    """The baseline: decode every pixel, then crop, resize, flip and scale."""
    image = preprocess.decode_rgb(image_bytes)
    window = preprocess.sample_crop_window(tf.shape(image), seed, AREA, ASPECT)
    image = tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])
    image = tf.image.resize(image, [SIZE, SIZE])
    return preprocess.scale_pixels(tf.image.stateless_random_flip_left_right(image, seed))


def fused_crop(image_bytes, seed):
    return preprocess.train_crop(image_bytes, seed, SIZE, AREA, ASPECT)


def decode_only(image_bytes, seed):
    return tf.shape(tf.io.decode_jpeg(image_bytes, channels=3))


def measure(source: tf.data.Dataset, fn, count: int) -> tuple[float, float]:
    """(images per wall second, images per CPU-second of this process) for `count` images."""
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    dataset = tf.data.Dataset.zip(source.repeat(), seeds).map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(16).prefetch(2).take(max(1, count // 16))
    wall, cpu = time.perf_counter(), time.process_time()
    images = sum(int(tf.shape(batch)[0]) for batch in dataset)
    return images / (time.perf_counter() - wall), images / max(time.process_time() - cpu, 1e-9)


def measure_train_step(batch: int, steps: int) -> float:
    """Images/s of a ResNet-101 training step at 224 px (what the model consumes here)."""
    from mlimages.config import load_params
    from mlimages.train.config import PretrainConfig
    from mlimages.train.state import build_train_state, make_train_step

    overrides = {"steps": steps, "batch_size": batch, "precision": "float32"}
    cfg = load_params("pretrain", PretrainConfig, "params-paper.yaml", overrides)
    state = build_train_state(cfg, 1000, steps)
    step = make_train_step(state, cfg, tf.distribute.get_strategy())
    images = tf.random.uniform((batch, SIZE, SIZE, 3), -1, 1)
    targets = tf.one_hot(tf.range(batch) % 1000, 1000)
    float(step(images, targets, tf.constant(0, tf.int64)))
    start = time.perf_counter()
    for i in range(steps):
        float(step(images, targets, tf.constant(i + 1, tf.int64)))
    return batch * steps / (time.perf_counter() - start)


def write_records(images: list[bytes], folder: Path) -> tf.data.Dataset:
    path = folder / "stored.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, jpeg in enumerate(images):
            width, height = Image.open(io.BytesIO(jpeg)).size
            writer.write(encode_example(jpeg, height, width, [i % 5]))
    return tf.data.TFRecordDataset([str(path)]).map(lambda r: parse_example(r)["image"]).cache()


def compare(name: str, source: tf.data.Dataset, count: int, rounds: int, megapixels: float, train_rate: float):
    results = {"decode": [], "naive": [], "ours": []}
    for _ in range(rounds):  # alternate so background load hits every method alike
        for label, fn in (("decode", decode_only), ("naive", naive_crop), ("ours", fused_crop)):
            results[label].append(measure(source, fn, count))
    best = {k: (max(r[0] for r in v), max(r[1] for r in v)) for k, v in results.items()}
    return [name, f"{megapixels:.2f}", f"{best['decode'][0]:.1f}", f"{best['naive'][0]:.1f}", f"{best['ours'][0]:.1f}",
            f"{best['ours'][0] / best['naive'][0]:.2f}x", f"{best['ours'][1] / best['naive'][1]:.2f}x",
            f"{best['ours'][0] / best['decode'][0]:.2f}", f"{best['ours'][0] / train_rate:.1f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller photos, fewer rounds")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of extra original photos")
    args = parser.parse_args()
    sizes_mp = [1, 3, 6, 12] if not args.quick else [1, 4, 12]
    photos = [make_photo(mp, seed) for seed, mp in enumerate(sizes_mp * (2 if args.quick else 4))]
    extra = sorted(args.photos.glob("*.jpg")) if args.photos.is_dir() else []
    photos += [p.read_bytes() for p in extra]
    count, rounds = (96, 2) if args.quick else (320, 3)
    megapixels = float(np.mean([np.prod(Image.open(io.BytesIO(p)).size) / 1e6 for p in photos]))
    train_rate = measure_train_step(batch=4 if args.quick else 8, steps=2 if args.quick else 4)
    with tempfile.TemporaryDirectory() as tmp:
        stored = write_records([to_stored_size(p) for p in photos], Path(tmp))
        stored_mp = float(np.mean([np.prod(Image.open(io.BytesIO(to_stored_size(p))).size) / 1e6 for p in photos[:4]]))
        rows = [compare("our TFRecords (shorter side 256)", stored, count * 4, rounds, stored_mp, train_rate),
                compare("original-size photos", tf.data.Dataset.from_tensor_slices(photos).cache(),
                        count, rounds, megapixels, train_rate)]
    header = ["source", "mean MP", "raw JPEG decode img/s", "naive crop img/s", "ours img/s", "ours / naive (wall)",
              "ours / naive (per CPU-s)", "ours / raw decode", "ours / ResNet-101 train step"]
    body = (f"{len(photos)} photos ({len(photos) - len(extra)} generated at {sizes_mp} MP, {len(extra)} release "
            f"samples); random-area crop {AREA}, aspect {ASPECT}, resized to {SIZE}x{SIZE}, flipped, scaled; "
            f"tf.data map with autotuned parallelism, best of {rounds} alternating rounds. "
            f"Raw decode = full JPEG decode only (the limit of the naive path). The ResNet-101 training step "
            f"(float32, batch {4 if args.quick else 8}, 224 px) consumes {train_rate:.2f} images/s here.\n\n"
            + markdown_table(header, rows)
            + "\n\nTargets: >= 1.5x on original-size photos, no slower at the stored size. CPU cores were shared "
            "with other work; per-CPU-second ratios do not depend on that load.")
    print(body)
    write_section("input_pipeline", "Input pipeline: fused decode-and-crop", "python benchmarks/bench_input_pipeline.py"
                  + (" --quick" if args.quick else ""), body)


if __name__ == "__main__":
    main()

"""TFRecord building speed (images/s per core) and label bytes per example, ours vs the original.

    python benchmarks/bench_records.py [--quick]

Speed: the same image shards are built into records with 1 worker and with one worker per core,
side by side; both outputs must be byte-identical. Inputs are the release's sample photos
(1024-3648 px, `../shared/data/tencent-ml-images/images/`) repeated, or synthetic 1024x768
JPEGs when those are absent. Label bytes: for the annotations of `train_urls_tiny.txt` (or
synthetic ones), the bytes an example spends on labels in our sparse layout and in the original
dense layout (raw float32 x 11,166 = 44,664 bytes plus protobuf framing), on the same image.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import itertools
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.report import markdown_table, write_section  # noqa: E402
from mlimages.config import load_params  # noqa: E402
from mlimages.records.build import build_ml_images  # noqa: E402
from mlimages.records.transcode import transcode  # noqa: E402
from mlimages.records.config import RecordsConfig  # noqa: E402
from mlimages.records.index import read_index  # noqa: E402
from mlimages.records.schema import encode_example  # noqa: E402

NUM_CLASSES = 11_166
REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MLIMAGES_SHARED", REPO.parent / "shared")) / "data" / "tencent-ml-images"


def load_photos() -> tuple[list[bytes], str]:
    photos = sorted((SHARED / "images").glob("*.jpg"))
    if photos:
        return [p.read_bytes() for p in photos], f"{len(photos)} release photos (1024-3648 px)"
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 1024, dtype=np.float32)
    images = []
    for seed in range(4):
        pixels = ramp[None, :, None] * np.ones((768, 1, 3)) + rng.normal(0, 20 + 10 * seed, (768, 1024, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=92)
        images.append(buffer.getvalue())
    return images, "4 synthetic 1024x768 JPEGs"


def load_label_sets() -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
    path = SHARED / "train_urls_tiny.txt"
    if not path.is_file():
        rng = np.random.default_rng(0)
        return [(tuple(sorted(rng.choice(NUM_CLASSES, 9, replace=False).tolist())), (1.0,) * 9) for _ in range(100)]
    sets = []
    for line in path.read_text().splitlines():
        tokens = [t.split(":") for t in line.split()[1:]]
        sets.append((tuple(int(i) for i, _ in tokens), tuple(float(c) for _, c in tokens)))
    return sets


def write_image_shard(path: Path, photos: list[bytes], count: int, label_sets) -> None:
    """One shard in the downloader's format: `<key>.jpg` then `<key>.json` per sample."""
    with tarfile.open(path, "w") as tar:
        for line in range(1, count + 1):
            data, (labels, confidences) = photos[line % len(photos)], label_sets[line % len(label_sets)]
            key = f"{line:016x}"
            meta = {"key": key, "line": line, "source": f"file:///photo/{line}.jpg", "labels": list(labels),
                    "confidences": list(confidences), "sha256": hashlib.sha256(data).hexdigest()}
            for name, payload in ((f"{key}.jpg", data), (f"{key}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def time_builds(photos, label_sets, count: int, config: RecordsConfig, repeats: int) -> list[list]:
    """Build the same shard with 1 worker and with one per core, alternating; best of `repeats`."""
    cores = os.cpu_count() or 1
    best: dict[int, tuple[float, float]] = {}
    shards: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        (temp / "images").mkdir()
        write_image_shard(temp / "images" / "00000.tar", photos, count, label_sets)
        (temp / "hierarchy.txt").write_text("category_index\tcategory_id\tindex_of_parent_category\tcategory name\n"
                                            + "".join(f"{i}\tn{i:08d}\t-1\tc{i}\n" for i in range(NUM_CLASSES)))
        for _, workers in itertools.product(range(repeats), sorted({1, cores})):
            out = temp / f"out-{workers}"
            started, cpu_started = time.perf_counter(), time.process_time()
            build_ml_images(temp / "images", temp / "hierarchy.txt", out, dataclasses.replace(config, num_workers=workers))
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            best[workers] = min(best.get(workers, (seconds, cpu_seconds)), (seconds, cpu_seconds))
            shards[workers] = [s["sha256"] for s in read_index(out)["shards"]]
    rows = []
    for workers, (seconds, cpu_seconds) in sorted(best.items()):
        rows.append([workers, count, f"{seconds:.2f}", f"{count / seconds:.1f}", f"{count / cpu_seconds:.1f}",
                     f"{cpu_seconds / seconds:.2f}", f"{best[1][0] / seconds:.2f}x",
                     "yes" if shards[workers] == shards[1] else "NO"])
    return rows


def measure_label_bytes(photo: bytes, label_sets, config: RecordsConfig) -> dict[str, list[int]]:
    image = transcode(photo, config)
    sizes = {"ours": [], "dense": []}
    no_labels = len(encode_example(image.data, image.height, image.width, [], []))
    for labels, confidences in label_sets:
        ours = len(encode_example(image.data, image.height, image.width, labels, confidences))
        sizes["ours"].append(ours - no_labels)
        sizes["dense"].append(len(legacy_example(image, labels, confidences)) - len(legacy_example(image, None, None)))
    return sizes


def legacy_example(image, labels, confidences) -> bytes:
    """An example in the original `tfrecord.py` layout (keys image, label, name, width, height)."""
    feature = {"image": _bytes(image.data), "name": _bytes(b"photo.jpg"),
               "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[image.width])),
               "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[image.height]))}
    if labels is not None:
        dense = np.zeros(NUM_CLASSES, dtype="<f4")
        dense[list(labels)] = confidences
        feature["label"] = _bytes(dense.tobytes())
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 images instead of 200")
    args = parser.parse_args()
    config = load_params("records", RecordsConfig, REPO / "params.yaml")  # shorter side 256, JPEG quality 90
    photos, photo_note = load_photos()
    label_sets = load_label_sets()
    count, repeats = (24, 1) if args.quick else (200, 3)
    speed = time_builds(photos, label_sets, count, config, repeats)
    sizes = measure_label_bytes(photos[0], label_sets, config)
    ours, dense = statistics.fmean(sizes["ours"]), statistics.fmean(sizes["dense"])
    labels_per_image = statistics.fmean(len(labels) for labels, _ in label_sets)
    body = "\n\n".join([
        f"Building records (shorter side {config.shorter_side}, JPEG quality {config.jpeg_quality}) from one "
        f"image shard of {photo_note}, repeated; best of {repeats} alternating runs. Per-core rate = images per CPU-second of this process (all "
        "threads), which does not depend on other load; wall-clock rates and speedup do (the cores were shared).",
        markdown_table(["workers", "images", "wall s", "images/s", "images per CPU-second (per core)", "cores busy",
                        "speedup", "identical bytes"],
                       speed),
        f"Label bytes per example on {len(label_sets)} annotations ({labels_per_image:.1f} labels per image on average), "
        "measured as the serialized example's size with labels minus without:",
        markdown_table(["layout", "mean label bytes", "max label bytes", "vs dense"], [
            ["ours: sparse `image/class/label` + `image/class/confidence`", f"{ours:.1f}", max(sizes["ours"]),
             f"{100 * ours / dense:.3f}%"],
            [f"original: dense float32 x {NUM_CLASSES:,} in `label`", f"{dense:.1f}", max(sizes["dense"]), "100%"],
        ]),
        f"Target label bytes <= 1% of dense: {'met' if ours <= 0.01 * dense else 'NOT met'}.",
    ])
    print(body)
    write_section("records", "TFRecord building and label bytes", "python benchmarks/bench_records.py"
                  + (" --quick" if args.quick else ""), body)


if __name__ == "__main__":
    main()

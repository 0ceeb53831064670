"""`mlimages features --model URI --images LIST --out FILE`: pooled backbone features per image.

Writes a float32 (images, feature size) array to ``.npy`` (with ``FILE.paths.txt`` naming the rows)
or a Parquet table (columns ``path``, ``feature``). Centre crop by default (the evaluation
protocol), or 10-crop averaged. The list and the output name are checked, and missing images
reported, before the model loads. Unreadable images are named and skipped; the rest is written,
and the command then exits with status 1 naming every skipped image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mlimages.cli.inputs import check_image_files, describe_image_error, report_skipped
from mlimages.errors import InputError

# First bytes of the image formats a user might pass instead of the list file.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


def register(subparsers) -> None:
    parser = subparsers.add_parser("features", help="pooled features of images to .npy or .parquet")
    parser.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/m-ID, a .keras file, ...")
    parser.add_argument("--images", required=True,
                        help="text file: one image path per line (relative to the file's folder)")
    parser.add_argument("--out", required=True, help="output .npy or .parquet file")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels")
    parser.add_argument("--crop-fraction", type=float, default=0.875,
                        help="the crop covers this fraction of the resized shorter side")
    parser.add_argument("--ten-crop", action="store_true", help="average 4 corners + centre and mirrors")
    parser.set_defaults(func=write_features)


def read_image_list(path: str) -> list[str]:
    """Image paths of a list file (blank lines and # comments ignored); relative to the list's folder.

    Raises:
        InputError: the file cannot be read, is an image itself, or is not UTF-8 text.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"cannot read the image list ({error.strerror})", path) from None
    if data.startswith(IMAGE_SIGNATURES):
        raise InputError("this is an image, not a list file: --images takes a text file with one image path "
                         "per line", path)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise InputError(f"not a UTF-8 text file (byte {error.start}): --images takes one image path per line",
                         path) from None
    base = Path(path).parent
    return [str(base / line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def load_crops(path: str, size: int, crop_fraction: float, ten_crop: bool) -> np.ndarray:
    """(crops, size, size, 3) model input for one image; raises OSError or ImageError."""
    import tensorflow as tf

    from mlimages.data.preprocess import resize_and_center_crop, scale_pixels
    from mlimages.data.preprocess import ten_crops
    from mlimages.images import load_rgb

    shorter = round(size / crop_fraction)
    pixels = tf.constant(np.asarray(load_rgb(Path(path).read_bytes(), shorter_side=shorter)))
    if ten_crop:
        return ten_crops(pixels, size, crop_fraction).numpy()
    return scale_pixels(resize_and_center_crop(pixels, size, crop_fraction)).numpy()[None]


def write_features(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mlimages.images import ImageError

    if Path(args.out).suffix not in (".npy", ".parquet"):
        raise InputError("output must end in .npy or .parquet", args.out)
    paths = read_image_list(args.images)
    readable, skipped = check_image_files(paths, args.images)
    backbone = load_backbone(args.model)
    kept, features = [], []
    for path in tqdm(readable, desc="features", unit="image"):
        try:
            crops = load_crops(path, args.size, args.crop_fraction, args.ten_crop)  # (crops, size, size, 3)
        except (OSError, ImageError) as error:
            skipped.append(path)
            print(f"skipped {path}: {describe_image_error(error)}", file=sys.stderr)
            continue
        features.append(np.asarray(backbone(crops, training=False)).mean(axis=0))
        kept.append(path)
    save_features(args.out, kept, np.asarray(features, dtype=np.float32))
    print(f"wrote {len(kept)} feature vectors to {args.out}", file=sys.stderr)
    return report_skipped(skipped, len(paths))


def load_backbone(model: str):
    """The backbone (pooled features) of the classifier at `model`."""
    from mlimages.models.resnet import get_backbone
    from mlimages.tracking.pretrained import load_source_model
    from mlimages.tracking.runs import configure_tracking

    configure_tracking()
    return get_backbone(load_source_model(model))


def save_features(out: str, paths: list[str], features: np.ndarray) -> None:
    """Write (n, d) features and their image paths in the format the suffix names."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if out.endswith(".npy"):
        np.save(out, features)
        Path(out + ".paths.txt").write_text("".join(p + "\n" for p in paths), encoding="utf-8")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"path": paths, "feature": pa.array(list(features), type=pa.list_(pa.float32()))})
    pq.write_table(table, out)

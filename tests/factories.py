"""Test inputs built by the real code: record folders by the record writer (never a hand-written
index.json), configs by the params loader from the repository's params.yaml (never repeated values)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

import numpy as np
import yaml
from PIL import Image

from mlimages.config import build_config, read_params_file
from mlimages.records.index import write_classes
from mlimages.records.schema import encode_example
from mlimages.records.writer import ShardWriter

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
T = TypeVar("T")

# (encoded image, labels, confidences)
Example = tuple[bytes, Sequence[int], Sequence[float]]


def make_colour_jpeg(colour, size=(40, 32), seed=0) -> bytes:
    """A noisy JPEG of one colour, `size` = (width, height)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_record_folder(folder: Path, label_kind: str, num_classes: int, examples: Iterable[Example],
                        records_per_shard: int = 5, size: tuple[int, int] = (32, 40)) -> Path:
    """One split folder (shards + index.json) as the record builders write it.

    Args:
        folder: the split folder to write.
        label_kind: ``"multi"`` or ``"single"``.
        num_classes: the label space recorded in index.json.
        examples: the records, in order.
        records_per_shard: each shard closes at this many records.
        size: (height, width) stored with every record.
    """
    with ShardWriter(folder, label_kind, num_classes, shard_bytes=1 << 30, max_records=records_per_shard) as writer:
        for number, (image, labels, confidences) in enumerate(examples):
            writer.write(encode_example(image, *size, list(labels), list(confidences), filename=f"{number}.jpg"))
        writer.commit()
    return folder


def write_classes_file(path: Path, names: Sequence[str]) -> Path:
    """A classes.tsv naming classes 0..n-1 (wnids are made up)."""
    write_classes(path, [(index, f"n{index:08d}", name) for index, name in enumerate(names)])
    return path


def params_config(section: str, cls: type[T], **overrides: Any) -> T:
    """The repository's params.yaml `section` as `cls`, with `overrides` on top.

    Built by the real loader, so a test states only the values it cares about and every other value
    is the one the stages use; an override is checked like a params file value (and taken as the
    Python value it is, not parsed as YAML as a command-line override would be).
    """
    values = {**read_params_file(REPO_PARAMS)[section], **overrides}
    return build_config(cls, values, where=f"{REPO_PARAMS}: {section}")


def write_params(path: Path, **changes: dict) -> Path:
    """The repository's params.yaml with some keys of some sections changed (``records={"min_shards": 2}``)."""
    params = read_params_file(REPO_PARAMS)
    for section, values in changes.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path

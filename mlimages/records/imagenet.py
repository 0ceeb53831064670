"""Single-label records from a local ILSVRC-2012 folder layout (the layout is read by `imagenet_layout`)."""

from __future__ import annotations

import random
from pathlib import Path

from mlimages.errors import InputError
from mlimages.records.build import write_split
from mlimages.records.config import RecordsConfig
from mlimages.records.image_shards import ImageSample, StoredImage
from mlimages.records.imagenet_layout import list_classes, list_foldered, list_val, load_imagenet_dictionary
from mlimages.records.index import CLASSES_FILE, write_classes


def build_imagenet(root, dictionary, out, config: RecordsConfig) -> dict:
    """Write ``out/train``, ``out/val`` and ``out/classes.tsv`` from an ILSVRC-2012 layout.

    The train split is shuffled with ``config.shuffle_seed`` (the folders are sorted by class,
    and shards of one class each would defeat a shuffle buffer); val keeps its sorted order.

    Returns:
        The stage report: ``{"classes": C, "train": {...}, "val": {...}}``.
    """
    root, out = Path(root), Path(out)
    wnids = list_classes(root)
    names = load_imagenet_dictionary(dictionary)
    if len(names) != len(wnids):
        raise InputError(f"{len(names)} class names but {len(wnids)} class folders in {root / 'train'}",
                         str(dictionary))
    train, val = list_foldered(root / "train", wnids), list_val(root, wnids)  # both checked before any writing
    random.Random(config.shuffle_seed).shuffle(train)
    report = {"root": str(root), "classes": len(wnids)}
    for split, pairs in (("train", train), ("val", val)):
        samples = (image_sample(root, path, label, line) for line, (path, label) in enumerate(pairs, start=1))
        report[split] = write_split(samples, out / split, config, "single", len(wnids), len(pairs))
    write_classes(out / CLASSES_FILE, [(i, wnid, name) for i, (wnid, name) in enumerate(zip(wnids, names))])
    return report


def image_sample(root: Path, path: Path, label: int, line: int) -> ImageSample:
    """One image file as a sample, read by whoever transcodes it; its source is the ImageNet id
    (``n01440764/x.JPEG``)."""
    relative = path.relative_to(root).as_posix()
    source = relative.split("/", 1)[1]
    return ImageSample(where=relative, line=line, source=source, image=StoredImage(str(path.absolute())),
                       labels=(label,), confidences=(1.0,))

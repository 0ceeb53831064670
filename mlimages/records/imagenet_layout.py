"""A local ILSVRC-2012 folder layout: its classes, names and labelled images (no TensorFlow).

Layout::

    ROOT/train/<wnid>/*.JPEG
    ROOT/val/<wnid>/*.JPEG                       (val sorted into class folders), or
    ROOT/val/*.JPEG + ROOT/<ground-truth file>   (the flat release layout)

Class order is the sorted list of train wnids (the order of ``imagenet2012_dictionary.txt``),
names come from a dictionary file in that file's format: ``index<TAB>name words``. The flat
val layout needs one of the ground-truth files in `GROUND_TRUTH_FILES`, paths under ROOT; the
first one found is used, in this order (a hand-made or Kaggle file beside the images is taken as
deliberate, so it wins over a devkit that may merely have been unpacked there):

- ``val_labels.txt``: ``<file name> <wnid or class index>`` per line (class index in sorted-wnid
  order, as in Caffe's ``val.txt``);
- ``LOC_val_solution.csv``: Kaggle's ``ImageId,PredictionString`` (the first wnid is the label);
- the official devkit, unpacked from ``ILSVRC2012_devkit_t12.tar.gz`` into ROOT
  (``ILSVRC2012_devkit_t12/data/``) or its two files copied to ROOT itself:
  ``ILSVRC2012_validation_ground_truth.txt`` (line i is the ILSVRC2012_ID, 1..1000, of
  ``ILSVRC2012_val_{i:08d}.JPEG``) and ``meta.mat`` beside it, whose ``synsets`` map the ID to
  a wnid. The IDs are not in sorted-wnid order, so a label goes ID -> wnid -> class index.

The record builder (`imagenet`) and the dedup stage read the layout through this module; the dedup
stage must start without TensorFlow, so this module does not import it.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import scipy.io

from mlimages.errors import InputError

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
GROUND_TRUTH_FILES = ("val_labels.txt", "LOC_val_solution.csv", f"ILSVRC2012_devkit_t12/data/{DEVKIT_TRUTH}",
                      DEVKIT_TRUTH)  # in order of precedence
DEVKIT_CLASSES = 1000  # ILSVRC2012_IDs 1..1000 are the leaf synsets, the classes
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")


def load_imagenet_dictionary(path) -> list[str]:
    """Class names from ``index<TAB>name words`` lines; indices must run 0, 1, 2, ... in order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("dictionary file not found", str(path)) from None
    names = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        index, _, words = line.partition("\t")
        if not index.strip().isdigit() or int(index) != len(names) or not words.strip():
            raise InputError(f"expected '{len(names)}<TAB>name words', got {line[:60]!r}", f"{path}:{number}")
        names.append(" ".join(words.split()))
    return names


def list_classes(root: Path) -> list[str]:
    """Sorted wnids: the folder names under ``train/``."""
    train = root / "train"
    if not train.is_dir():
        raise InputError("no train/ folder (expected ILSVRC-2012 layout train/<wnid>/*.JPEG)", str(root))
    wnids = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not wnids:
        raise InputError("no class folders in train/", str(train))
    return wnids


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_foldered(split: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    """(image, label) pairs of ``split/<wnid>/*``; a folder that is not a train class is an error."""
    label_of = {wnid: index for index, wnid in enumerate(wnids)}
    pairs = []
    for folder in sorted(p for p in split.iterdir() if p.is_dir()):
        if folder.name not in label_of:
            raise InputError(f"class folder '{folder.name}' has no train/ counterpart", str(folder))
        pairs += [(image, label_of[folder.name]) for image in list_images(folder)]
    return pairs


def list_val(root: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    """(image, label) pairs of the val split, in either layout."""
    val = root / "val"
    if not val.is_dir():
        raise InputError("no val/ folder", str(root))
    if any(p.is_dir() for p in val.iterdir()):
        return list_foldered(val, wnids)
    truth_file = next((root / name for name in GROUND_TRUTH_FILES if (root / name).is_file()), None)
    if truth_file is None:
        raise InputError(f"flat val/ needs a ground-truth file: one of {', '.join(GROUND_TRUTH_FILES)}", str(root))
    if truth_file.name == DEVKIT_TRUTH:
        return list_val_by_devkit(list_images(val), truth_file, wnids)
    truth = read_ground_truth(truth_file, wnids)
    pairs = []
    for image in list_images(val):
        if image.name not in truth and image.stem not in truth:
            raise InputError(f"no ground-truth label for {image.name}", str(truth_file))
        pairs.append((image, truth.get(image.name, truth.get(image.stem))))
    return pairs


def read_ground_truth(path: Path, wnids: list[str]) -> dict[str, int]:
    """File name (or stem, for the CSV) -> class index, from either ground-truth format."""
    label_of = {wnid: index for index, wnid in enumerate(wnids)}
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows = [(n, row.get("ImageId"), (row.get("PredictionString") or "").split()[:1])
                    for n, row in enumerate(csv.DictReader(handle), start=2)]
        rows = [(n, name, tokens[0] if tokens else "") for n, name, tokens in rows]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [(n, *(line.split() + ["", ""])[:2]) for n, line in enumerate(lines, start=1) if line.strip()]
    truth = {}
    for number, name, label in rows:
        if label in label_of:
            truth[name] = label_of[label]
        elif label.isdigit() and int(label) < len(wnids):
            truth[name] = int(label)
        else:
            raise InputError(f"label {label!r} is neither a train wnid nor a class index", f"{path}:{number}")
    return truth


def list_val_by_devkit(images: list[Path], truth_file: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    """(image, label) pairs of a flat val/ labelled by the devkit, where the label is found by the
    image's number, so the file must have exactly one line per image and no image may be unnumbered."""
    labels = read_devkit_labels(truth_file, wnids)
    numbers = [read_val_number(image) for image in images]
    if len(labels) != len(images):
        raise InputError(f"{len(labels)} ground-truth lines but {len(images)} images in val/", str(truth_file))
    for image, number in zip(images, numbers):
        if not 1 <= number <= len(labels):
            raise InputError(f"no ground-truth line for {image.name}", str(truth_file))
    return [(image, labels[number - 1]) for image, number in zip(images, numbers)]


def read_val_number(image: Path) -> int:
    """The i of ``ILSVRC2012_val_{i:08d}.JPEG``: the devkit's only link from an image to its line."""
    match = VAL_NAME.fullmatch(image.stem)
    if match is None:
        raise InputError("val image not named ILSVRC2012_val_NNNNNNNN, so the devkit has no line for it", str(image))
    return int(match.group(1))


def read_devkit_labels(path: Path, wnids: list[str]) -> list[int]:
    """Class index of each line of ``ILSVRC2012_validation_ground_truth.txt``, via meta.mat's wnids."""
    wnid_of = load_devkit_synsets(path.with_name("meta.mat"))
    label_of = {wnid: index for index, wnid in enumerate(wnids)}
    labels = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where, token = f"{path}:{number}", line.strip()
        if not token.isdigit() or not 1 <= int(token) <= DEVKIT_CLASSES:
            raise InputError(f"expected an ILSVRC2012_ID in 1..{DEVKIT_CLASSES}, got {line[:60]!r}", where)
        wnid = wnid_of.get(int(token))
        if wnid is None:
            raise InputError(f"ILSVRC2012_ID {token} is not a leaf synset of meta.mat beside this file", where)
        if wnid not in label_of:
            raise InputError(f"ILSVRC2012_ID {token} is {wnid}, which has no train/ folder", where)
        labels.append(label_of[wnid])
    return labels


def load_devkit_synsets(path: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid of the leaf synsets (``num_children == 0``) in the devkit's ``meta.mat``."""
    if not path.is_file():
        raise InputError("the devkit ground truth needs meta.mat beside it", str(path))
    try:
        synsets = np.atleast_1d(scipy.io.loadmat(path, squeeze_me=True)["synsets"])
        return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except (scipy.io.matlab.MatReadError, KeyError, IndexError, ValueError, TypeError):
        raise InputError("not the devkit's meta.mat (a MATLAB file with a 'synsets' struct array)", str(path)) from None

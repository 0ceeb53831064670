"""The ImageNet builder on a tiny ILSVRC-style folder, in both val layouts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mlimages.errors import InputError
from mlimages.records.config import RecordsConfig
from mlimages.records.imagenet import build_imagenet
from mlimages.records.imagenet_layout import list_val, load_imagenet_dictionary
from mlimages.records.index import list_shards, read_index
from mlimages.records.reader import iter_records

from tests.factories import params_config

from .fakes import make_jpeg

WNIDS = ["n01440764", "n01443537", "n02102040"]  # sorted: the class order
NAMES = ["tench Tinca tinca", "goldfish Carassius auratus", "English springer"]
CONFIG = params_config("records", RecordsConfig, shorter_side=16, shard_bytes=1 << 20, min_shards=2, num_workers=2)
# The devkit's ILSVRC2012_ID order is not sorted-wnid order; ID 4 is a non-leaf, ID 5 a leaf without train/ images.
DEVKIT_IDS = {WNIDS[2]: 1, WNIDS[0]: 2, WNIDS[1]: 3}
DEVKIT_SYNSETS = [(1, WNIDS[2], 0), (2, WNIDS[0], 0), (3, WNIDS[1], 0), (4, "n00001740", 3), (5, "n09999999", 0)]
DEVKIT = "ILSVRC2012_devkit_t12/data"


def make_root(root, flat_val: str | None = None):
    """3 classes x 3 train images (one broken), 2 val images per class; folders created out of order.

    Val images are numbered from 1, as in the release; ``flat_val`` picks the ground-truth file."""
    for c, wnid in reversed(list(enumerate(WNIDS))):
        for i in range(3):
            path = root / "train" / wnid / f"{wnid}_{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(make_jpeg(24 + c, 20, seed=10 * c + i))
        for i in range(2):
            name = f"ILSVRC2012_val_{2 * c + i + 1:08d}.JPEG"
            path = root / "val" / (name if flat_val else f"{wnid}/{name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(make_jpeg(20, 20 + c, seed=100 + 2 * c + i))
    (root / "train" / WNIDS[1] / "broken.JPEG").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dictionary = root / "dictionary.txt"
    dictionary.write_text("".join(f"{i}\t{n.replace(' ', chr(9))}\n" for i, n in enumerate(NAMES)))
    if flat_val == "txt":  # wnids and class indices both accepted
        (root / "val_labels.txt").write_text("".join(
            f"ILSVRC2012_val_{2 * c + i + 1:08d}.JPEG {WNIDS[c] if i else c}\n" for c in range(3) for i in range(2)))
    elif flat_val == "csv":
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
            f"ILSVRC2012_val_{2 * c + i + 1:08d},{WNIDS[c]} 1 2 3 4 {WNIDS[c]} 5 6 7 8\n"
            for c in range(3) for i in range(2)))
    elif flat_val == "devkit":
        write_devkit(root / DEVKIT, [DEVKIT_IDS[wnid] for wnid in WNIDS for _ in range(2)])
    return dictionary


def write_devkit(folder, ids, synsets=DEVKIT_SYNSETS):
    """The devkit's ground truth (line i: ID of val image i) and a real meta.mat with its field names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for i in ids))
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height", "num_train_images"]
    rows = [(i, wnid, f"words {i}", f"gloss {i}", children, min(children, 1), 3) for i, wnid, children in synsets]
    scipy.io.savemat(folder / "meta.mat", {"synsets": np.array(rows, dtype=[(f, object) for f in fields])})


def read_split(folder):
    return list(iter_records(list_shards(folder)))


@pytest.mark.parametrize("flat_val", [None, "txt", "csv", "devkit"])
def test_builds_single_label_train_and_val(tmp_path, flat_val):
    dictionary = make_root(tmp_path / "imagenet", flat_val)
    report = build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "out", CONFIG)
    train, val = read_split(tmp_path / "out" / "train"), read_split(tmp_path / "out" / "val")
    assert len(train) == 9 and report["train"]["skipped_by_reason"] == {"not_image": 1}
    assert report["train"]["skipped_samples"][0]["where"] == f"train/{WNIDS[1]}/broken.JPEG"
    for record in train:  # label = position of the folder's wnid in sorted order
        assert record.labels == (WNIDS.index(record.filename.split("/")[0]),) and record.confidences == (1.0,)
        assert min(Image.open(io.BytesIO(record.image)).size) == 16
    assert sorted(r.filename for r in train) != [r.filename for r in train]  # shuffled ...
    assert [r.labels[0] for r in val] == [0, 0, 1, 1, 2, 2]  # ... val kept in order
    assert val[0].filename.endswith("ILSVRC2012_val_00000001.JPEG")
    index = read_index(tmp_path / "out" / "val")
    assert (index["label_kind"], index["num_classes"], index["count"]) == ("single", 3, 6)
    classes = (tmp_path / "out" / "classes.tsv").read_text().splitlines()
    assert classes == [f"{i}\t{w}\t{n}" for i, (w, n) in enumerate(zip(WNIDS, NAMES))]


def test_same_root_gives_identical_shards(tmp_path):
    dictionary = make_root(tmp_path / "imagenet")
    build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "a", CONFIG)
    build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "b", CONFIG)
    for split in ("train", "val"):
        for shard in read_index(tmp_path / "a" / split)["shards"]:
            assert (tmp_path / "a" / split / shard["file"]).read_bytes() == \
                (tmp_path / "b" / split / shard["file"]).read_bytes()


def test_dictionary_format_and_mismatches_are_input_errors(tmp_path, shared_data):
    names = load_imagenet_dictionary(shared_data / "imagenet2012_dictionary.txt")
    assert len(names) == 1000 and names[0] == "tench Tinca tinca" and names[1] == "goldfish Carassius auratus"
    dictionary = make_root(tmp_path / "imagenet", flat_val="txt")
    dictionary.write_text("0\ttench\n1\tgoldfish\n")
    with pytest.raises(InputError, match="2 class names but 3 class folders"):
        build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "out", CONFIG)
    dictionary.write_text("0\ttench\n2\tgoldfish\n")
    with pytest.raises(InputError, match="expected '1<TAB>name words'") as error:
        load_imagenet_dictionary(dictionary)
    assert error.value.where.endswith("dictionary.txt:2")


def test_flat_val_needs_a_label_for_every_image(tmp_path):
    dictionary = make_root(tmp_path / "imagenet", flat_val="txt")
    truth = tmp_path / "imagenet" / "val_labels.txt"
    truth.write_text("\n".join(truth.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(InputError, match="no ground-truth label for ILSVRC2012_val_00000006.JPEG"):
        build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "out", CONFIG)
    truth.unlink()
    with pytest.raises(InputError, match="flat val/ needs a ground-truth file"):
        build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "out", CONFIG)
    assert not (tmp_path / "out").exists()  # the layout is checked before anything is written


def test_devkit_is_found_in_root_and_yields_to_val_labels(tmp_path):
    root = tmp_path / "imagenet"
    make_root(root, flat_val="devkit")
    for name in ("ILSVRC2012_validation_ground_truth.txt", "meta.mat"):  # the two files copied to ROOT itself
        (root / DEVKIT / name).rename(root / name)
    assert [label for _, label in list_val(root, WNIDS)] == [0, 0, 1, 1, 2, 2]
    (root / "val_labels.txt").write_text("".join(f"{p.name} 2\n" for p in sorted((root / "val").iterdir())))
    assert [label for _, label in list_val(root, WNIDS)] == [2] * 6  # the explicit file wins


def rewrite_truth(lines):
    """A change to the devkit ground truth: a function of its lines."""
    def change(root):
        path = root / DEVKIT / "ILSVRC2012_validation_ground_truth.txt"
        path.write_text("".join(f"{line}\n" for line in lines(path.read_text().splitlines())))
    return change


@pytest.mark.parametrize("change, message, where", [
    (rewrite_truth(lambda x: x[:2] + ["two"] + x[3:]), "expected an ILSVRC2012_ID in 1..1000, got 'two'",
     "truth.txt:3"),
    (rewrite_truth(lambda x: x[:5] + ["1001"]), "expected an ILSVRC2012_ID in 1..1000", "truth.txt:6"),
    (rewrite_truth(lambda x: ["4"] + x[1:]), "ILSVRC2012_ID 4 is not a leaf synset of meta.mat", "truth.txt:1"),
    (rewrite_truth(lambda x: x[:1] + ["6"] + x[2:]), "ILSVRC2012_ID 6 is not a leaf synset", "truth.txt:2"),
    (rewrite_truth(lambda x: x[:3] + ["5"] + x[4:]), "ILSVRC2012_ID 5 is n09999999, which has no train/ folder",
     "truth.txt:4"),
    (rewrite_truth(lambda x: x[:5]), "5 ground-truth lines but 6 images in val/", "truth.txt"),
    (rewrite_truth(lambda x: x + ["1"]), "7 ground-truth lines but 6 images in val/", "truth.txt"),
    (lambda root: (root / "val" / "ILSVRC2012_val_00000006.JPEG").rename(root / "val" / "ILSVRC2012_val_00000009.JPEG"),
     "no ground-truth line for ILSVRC2012_val_00000009.JPEG", "truth.txt"),
    (lambda root: (root / "val" / "ILSVRC2012_val_00000006.JPEG").rename(root / "val" / "val_6.JPEG"),
     "not named ILSVRC2012_val_NNNNNNNN", "val/val_6.JPEG"),
    (lambda root: (root / DEVKIT / "meta.mat").unlink(), "needs meta.mat beside it", "data/meta.mat"),
    (lambda root: (root / DEVKIT / "meta.mat").write_bytes(b"not a mat file"), "not the devkit's meta.mat",
     "data/meta.mat"),
    (lambda root: scipy.io.savemat(root / DEVKIT / "meta.mat", {"classes": np.arange(3)}), "not the devkit's meta.mat",
     "data/meta.mat"),
])
def test_devkit_errors_name_file_and_line(tmp_path, change, message, where):
    dictionary = make_root(tmp_path / "imagenet", flat_val="devkit")
    change(tmp_path / "imagenet")
    with pytest.raises(InputError, match=message) as error:
        build_imagenet(tmp_path / "imagenet", dictionary, tmp_path / "out", CONFIG)
    assert error.value.where.replace("ILSVRC2012_validation_ground_truth", "truth").endswith(where)
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()

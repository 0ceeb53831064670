"""mlimages.lists and the prepare_lists stage: closure, merging, overlap, class filter, shuffle, bad lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlimages.annotations import read_annotations
from mlimages.errors import InputError
from mlimages.hierarchy import Category, format_hierarchy, load_hierarchy
from mlimages.lists import LabelPool, ListsConfig, merge_labels, prepare_lists

from tests.factories import params_config

REPO = Path(__file__).resolve().parent.parent

# Two trees: 0 > 1 > 2 and 3 > 4.
CATEGORIES = [
    Category(0, "n00000000", -1, "animal"),
    Category(1, "n00000001", 0, "dog"),
    Category(2, "n00000002", 1, "puppy"),
    Category(3, "n00000003", -1, "plant"),
    Category(4, "n00000004", 3, "tree"),
]


@pytest.fixture
def world(tmp_path):
    hierarchy = tmp_path / "hierarchy.txt"
    hierarchy.write_text(format_hierarchy(CATEGORIES), encoding="utf-8")
    train = tmp_path / "train.txt"
    train.write_text(
        "https://a.org/1.jpg\t2:0.8\n"
        "https://a.org/2.jpg 4:1\n"
        "https://a.org/1.jpg\t1:0.9\t4:0.5\n"  # duplicate of line 1
        "https://a.org/3.jpg\t4:0.7\t3:1\n"
        "https://a.org/v.jpg\t2:1\n",  # also in val
        encoding="utf-8",
    )
    val = tmp_path / "val.txt"
    val.write_text("https://a.org/v.jpg\t2:1\nhttps://a.org/w.jpg\t4:1\n", encoding="utf-8")
    return hierarchy, train, val


def lists_config(**overrides) -> ListsConfig:
    """The stage's `lists:` params with the values a test changes."""
    return params_config("lists", ListsConfig, **overrides)


def read_out(path: Path) -> dict[str, dict[int, float]]:
    return {a.source: a.as_dict() for a in read_annotations(path, lambda index: True)}


def test_closure_merge_overlap_and_report(world, tmp_path):
    hierarchy, train, val = world
    report = prepare_lists(hierarchy, train, val, tmp_path / "out", lists_config(shuffle=False))
    out = read_out(tmp_path / "out" / "train.tsv")
    assert out == {
        "https://a.org/1.jpg": {0: 0.9, 1: 0.9, 2: 0.8, 3: 0.5, 4: 0.5},  # merged, then closed
        "https://a.org/2.jpg": {3: 1.0, 4: 1.0},
        "https://a.org/3.jpg": {3: 1.0, 4: 0.7},  # labelled ancestor keeps its larger confidence
    }
    assert list(out) == ["https://a.org/1.jpg", "https://a.org/2.jpg", "https://a.org/3.jpg"]
    assert read_out(tmp_path / "out" / "val.tsv") == {
        "https://a.org/v.jpg": {0: 1.0, 1: 1.0, 2: 1.0},
        "https://a.org/w.jpg": {3: 1.0, 4: 1.0},
    }
    assert report["train"] == {
        "lines_read": 5, "bad_lines": 0, "duplicates_merged": 1, "labels_added_by_closure": 5,
        "dropped_also_in_val": 1, "dropped_without_labels": 0, "images_written": 3,
    }
    assert report["val"]["labels_added_by_closure"] == 3 and report["val"]["images_written"] == 2
    assert report["classes"] == {"in_hierarchy": 5, "labelled": 5, "min_train_images": 0, "kept": 5, "dropped": 0}


def test_merge_labels_and_pool_sharing():
    assert merge_labels(((1, 0.5), (3, 1.0)), ((1, 0.9), (2, 0.2))) == ((1, 0.9), (2, 0.2), (3, 1.0))
    pool = LabelPool()
    first, second = pool(((1, 1.0), (2, 0.5))), pool([(1, 1.0)])
    assert first == ((1, 1.0), (2, 0.5)) and second == ((1, 1.0),)
    assert second[0] is first[0]  # one object per distinct pair, however many images carry it


def test_trainable_class_filter_drops_rare_classes_in_both_splits(world, tmp_path):
    hierarchy, train, val = world
    # Train counts after closure and overlap removal: 0:1, 1:1, 2:1, 3:3, 4:3.
    report = prepare_lists(hierarchy, train, val, tmp_path / "out", lists_config(min_train_images=2, shuffle=False))
    assert read_out(tmp_path / "out" / "train.tsv")["https://a.org/1.jpg"] == {3: 0.5, 4: 0.5}
    assert read_out(tmp_path / "out" / "val.tsv") == {"https://a.org/w.jpg": {3: 1.0, 4: 1.0}}
    assert report["classes"] == {"in_hierarchy": 5, "labelled": 5, "min_train_images": 2, "kept": 2, "dropped": 3}
    assert report["val"]["dropped_without_labels"] == 1 and report["val"]["images_written"] == 1


def test_shuffle_is_deterministic_and_val_keeps_order(tmp_path):
    hierarchy = tmp_path / "h.txt"
    hierarchy.write_text(format_hierarchy(CATEGORIES), encoding="utf-8")
    sources = [f"https://a.org/{i}.jpg" for i in range(50)]
    (tmp_path / "t.txt").write_text("".join(f"{s}\t2:1\n" for s in sources), encoding="utf-8")
    (tmp_path / "v.txt").write_text("".join(f"https://b.org/{i}.jpg\t4:1\n" for i in range(20)), encoding="utf-8")

    def order(name, **config):
        prepare_lists(hierarchy, tmp_path / "t.txt", tmp_path / "v.txt", tmp_path / name, lists_config(**config))
        return list(read_out(tmp_path / name / "train.tsv")), list(read_out(tmp_path / name / "val.tsv"))

    first, val = order("a", seed=1)
    assert order("b", seed=1) == (first, val)
    assert sorted(first) == sorted(sources) and first != sources
    assert order("c", seed=2)[0] != first
    assert order("d", shuffle=False)[0] == sources
    assert val == [f"https://b.org/{i}.jpg" for i in range(20)]
    assert (tmp_path / "a" / "train.tsv").read_bytes() == (tmp_path / "b" / "train.tsv").read_bytes()


BAD = "https://a.org/4.jpg\t9:1\n"  # unknown class index


def test_bad_line_stops_as_params_yaml_says_naming_file_and_line(world, tmp_path):
    hierarchy, train, val = world
    train.write_text(train.read_text() + BAD, encoding="utf-8")
    with pytest.raises(InputError) as raised:
        prepare_lists(hierarchy, train, val, tmp_path / "out", lists_config())
    assert raised.value.where == f"{train}:6"
    assert not (tmp_path / "out" / "train.tsv").exists()


def test_bad_lines_skipped_and_counted_on_request(world, tmp_path):
    hierarchy, train, val = world
    train.write_text(train.read_text() + BAD + "https://a.org/5.jpg\t1:2\n", encoding="utf-8")
    val.write_text(val.read_text() + "n1234/x.jpg 1:1\n", encoding="utf-8")
    report = prepare_lists(hierarchy, train, val, tmp_path / "out", lists_config(on_bad_line="skip"))
    assert report["train"]["lines_read"] == 7 and report["train"]["bad_lines"] == 2
    assert report["val"]["lines_read"] == 3 and report["val"]["bad_lines"] == 1
    assert report["bad_line_messages"] == [
        f"{train}:6: unknown class index 9",
        f"{train}:7: confidence 2 of class 1 is outside [0, 1]",
        f"{val}:3: first token must be a URL (http://, https://, file:) or an ImageNet id, got 'n1234/x.jpg'",
    ]
    assert report["train"]["images_written"] == 3


def test_shared_tiny_list_comes_out_closed(shared_data, tmp_path):
    hierarchy_path = shared_data / "dictionary_and_semantic_hierarchy.txt"
    tiny = shared_data / "train_urls_tiny.txt"
    val = tmp_path / "val.txt"
    val.write_text("".join(tiny.read_text(encoding="utf-8").splitlines(keepends=True)[90:]), encoding="utf-8")
    report = prepare_lists(hierarchy_path, tiny, val, tmp_path / "out", lists_config())
    hierarchy = load_hierarchy(hierarchy_path)
    train = read_out(tmp_path / "out" / "train.tsv")
    assert len(train) == 90 and report["train"]["dropped_also_in_val"] == 10
    assert report["train"]["labels_added_by_closure"] > 0  # the released list is not fully closed
    assert all(hierarchy.close(labels) == labels for labels in train.values())


def run_stage(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = REPO / "pipelines" / "prepare_lists.py"
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_stage_script_writes_lists_and_report_and_fails_in_one_line(world, tmp_path):
    hierarchy, train, val = world
    (tmp_path / "params.yaml").write_text(
        "lists:\n  on_bad_line: error\n  seed: 0\n  shuffle: true\n  min_train_images: 0\n", encoding="utf-8"
    )
    args = ["--hierarchy", str(hierarchy), "--train", str(train), "--val", str(val),
            "--out", "lists", "--report", "reports/lists.json"]
    done = run_stage(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "reports" / "lists.json").read_text())["train"]["images_written"] == 3
    assert len(read_out(tmp_path / "lists" / "train.tsv")) == 3
    train.write_text(train.read_text() + BAD, encoding="utf-8")
    done = run_stage(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"error: {train}:6: unknown class index 9\n"
    (tmp_path / "params.yaml").write_text("lists:\n  on_bad_lines: skip\n", encoding="utf-8")
    done = run_stage(*args, cwd=tmp_path)
    assert done.returncode == 2 and "unknown key(s) on_bad_lines" in done.stderr

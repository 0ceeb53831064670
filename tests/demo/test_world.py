"""mlimages.demo: the demo world is well formed, deterministic, and labelled as drawn."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from mlimages.annotations import read_annotations
from mlimages.demo import DemoConfig, make_demo_world
from mlimages.demo.render import DrawnObject, draw_scene, shape_mask, texture_mask
from mlimages.demo.world import SHAPES, TEXTURES
from mlimages.errors import InputError
from mlimages.hierarchy import load_hierarchy
from mlimages.lists import merge_labels

from tests.factories import REPO_PARAMS, params_config, write_params

REPO = Path(__file__).resolve().parents[2]
TINY = params_config("demo", DemoConfig, image_size=32, train_images=16, val_images=4, finetune_train_per_class=2,
                     finetune_val_per_class=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    make_demo_world(TINY, out)
    return out


def file_hashes(root: Path) -> dict[str, str]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def path_of(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def test_hierarchy_has_several_deep_roots(world):
    stats = load_hierarchy(world / "dictionary_and_semantic_hierarchy.txt").stats()
    assert stats["categories"] >= 30
    assert stats["roots"] == 4
    assert stats["longest_path_edges"] >= 3


def test_lists_point_to_the_drawn_images(world):
    hierarchy = load_hierarchy(world / "dictionary_and_semantic_hierarchy.txt")
    for split, count in (("train", TINY.train_images), ("val", TINY.val_images)):
        annotations = list(read_annotations(world / "lists" / f"{split}_urls.txt", hierarchy.__contains__))
        sources = {a.source for a in annotations}
        assert len(sources) == count
        for source in sources:
            assert source.startswith("file:///")
            path = path_of(source)
            assert path.is_file() and path.is_relative_to(world / "images" / split)
            data = path.read_bytes()
            assert path.stem.split("_")[1] == hashlib.sha256(data).hexdigest()[:12]
            assert Image.open(io.BytesIO(data)).size == (32, 32)
        roots = {hierarchy.root_of(index) for a in annotations for index in a.classes}
        assert roots == {0, 1, 2, 3} or split == "val"


def test_images_are_multi_label_with_some_uncertain_labels(tmp_path):
    config = params_config("demo", DemoConfig, image_size=48, train_images=60, val_images=1,
                           finetune_train_per_class=1, finetune_val_per_class=1)
    make_demo_world(config, tmp_path / "demo")
    hierarchy = load_hierarchy(tmp_path / "demo" / "dictionary_and_semantic_hierarchy.txt")
    merged: dict[str, tuple] = {}
    for a in read_annotations(tmp_path / "demo" / "lists" / "train_urls.txt", hierarchy.__contains__):
        merged[a.source] = merge_labels(merged.get(a.source, ()), a.labels)
    leaves = set(hierarchy.leaves)
    shapes_per_image = [sum(1 for i, _ in labels if hierarchy.root_of(i) == 0 and i in leaves)
                        for labels in merged.values()]
    assert np.mean(shapes_per_image) > 1.5  # several objects per image
    assert all(any(hierarchy.root_of(i) == 3 for i, _ in labels) for labels in merged.values())  # background always
    confidences = [c for labels in merged.values() for _, c in labels]
    assert 0.02 < np.mean(np.array(confidences) < 1.0) < 0.5


def test_duplicates_split_labels_and_merge_back(tmp_path):
    base = dict(image_size=32, train_images=10, val_images=1, finetune_train_per_class=1, finetune_val_per_class=1)
    make_demo_world(params_config("demo", DemoConfig, **base, duplicate_fraction=0.0, ancestor_fraction=0.0), tmp_path / "a")
    make_demo_world(params_config("demo", DemoConfig, **base, duplicate_fraction=1.0, ancestor_fraction=0.0), tmp_path / "b")

    def merged(root):
        hierarchy = load_hierarchy(root / "dictionary_and_semantic_hierarchy.txt")
        out: dict[str, tuple] = {}
        for a in read_annotations(root / "lists" / "train_urls.txt", hierarchy.__contains__):
            out[path_of(a.source).name] = merge_labels(out.get(path_of(a.source).name, ()), a.labels)
        return out

    lines = (tmp_path / "b" / "lists" / "train_urls.txt").read_text().splitlines()
    assert len(lines) == 20 and len({line.split()[0] for line in lines}) == 10
    assert merged(tmp_path / "a") == merged(tmp_path / "b")


def test_same_params_same_bytes_and_images_independent_of_counts(world, tmp_path):
    again = tmp_path / "demo"
    make_demo_world(TINY, again)
    first, second = file_hashes(world), file_hashes(again)
    lists = {"lists/train_urls.txt", "lists/val_urls.txt"}  # URLs name the folder they live in
    assert {k: v for k, v in first.items() if k not in lists} == {k: v for k, v in second.items() if k not in lists}
    make_demo_world(TINY, again)  # replacing an earlier world is allowed and gives the same bytes
    assert file_hashes(again) == second
    fewer = dataclasses.replace(TINY, train_images=8)
    make_demo_world(fewer, tmp_path / "fewer")
    train = {k: v for k, v in file_hashes(tmp_path / "fewer").items() if k.startswith("images/train/")}
    assert len(train) == 8 and all(first[k] == v for k, v in train.items())
    make_demo_world(dataclasses.replace(TINY, seed=1), tmp_path / "seed1")
    assert not set(file_hashes(tmp_path / "seed1").values()) & {v for k, v in first.items() if k.startswith("images/")}


def test_a_world_under_the_working_directory_has_the_same_bytes_wherever_it_sits(tmp_path, monkeypatch):
    """Relative file: URLs: two checkouts at different paths make byte-identical worlds (same DVC hash)."""
    for checkout in ("a", "somewhere/else"):
        (tmp_path / checkout).mkdir(parents=True)
        monkeypatch.chdir(tmp_path / checkout)
        make_demo_world(TINY, Path("data") / "demo")
    first, second = file_hashes(tmp_path / "a" / "data" / "demo"), file_hashes(tmp_path / "somewhere/else/data/demo")
    assert first == second
    line = (tmp_path / "a" / "data" / "demo" / "lists" / "val_urls.txt").read_text().splitlines()[0]
    url = line.split("\t")[0]
    assert url.startswith("file:data/demo/images/val/") and (tmp_path / "a" / url[len("file:"):]).is_file()


def test_finetune_task_in_imagenet_layout(world):
    root = world / "imagenet"
    wnids = sorted(p.name for p in (root / "train").iterdir())
    assert len(wnids) >= 10
    assert sorted(p.name for p in (root / "val").iterdir()) == wnids
    for wnid in wnids:
        assert [p.name for p in sorted((root / "train" / wnid).iterdir())] == [f"{wnid}_0.JPEG", f"{wnid}_1.JPEG"]
        (val,) = (root / "val" / wnid).iterdir()
        assert val.name.startswith("ILSVRC2012_val_") and val.suffix == ".JPEG"
        assert Image.open(val).format == "JPEG"
    rows = (root / "dictionary.txt").read_text().splitlines()
    assert [row.split("\t")[0] for row in rows] == [str(i) for i in range(len(wnids))]
    # Each class is a composition of a pretraining texture and shape.
    names = [" ".join(row.split("\t")[1:]) for row in rows]
    assert len(set(names)) == len(wnids)
    assert all(name.split(" ", 1)[0] in TEXTURES and name.split(" ", 1)[1] in SHAPES for name in names)


def test_shape_and_texture_masks():
    coords = np.arange(-40, 40) + 0.5
    dx, dy = np.meshgrid(coords, coords)
    assert shape_mask("circle", dx, dy, 20).sum() == pytest.approx(np.pi * 400, rel=0.02)
    assert shape_mask("square", dx, dy, 20).sum() == 32 * 32
    areas = {shape: shape_mask(shape, dx, dy, 20).sum() for shape in SHAPES}
    assert all(100 < area < 1300 for area in areas.values()), areas
    assert texture_mask("solid", dx, dy, 0, 4).all()
    for texture in ("striped", "checkered", "dotted"):
        share = texture_mask(texture, dx, dy, 45, 4).mean()
        assert 0.3 < share < 0.9, (texture, share)


def test_visible_share_counts_border_and_occlusion():
    rng = np.random.default_rng(0)
    background = np.zeros((32, 32, 3))
    half_out = DrawnObject("square", "red", "solid", 0.0, 16.0, 8.0, 0.0, 4, (0, 0, 0))
    cover = DrawnObject("square", "blue", "solid", 16.0, 16.0, 12.0, 0.0, 4, (0, 0, 0))
    inside = DrawnObject("square", "green", "solid", 16.0, 16.0, 5.0, 0.0, 4, (0, 0, 0))
    image, visible = draw_scene(background, [half_out, inside, cover], rng)
    assert visible[0] == pytest.approx(0.5) and visible[1] == 0.0 and visible[2] == 1.0
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert image[16, 16, 2] > 150 and image[16, 16, 0] < 100  # the blue square is on top


def test_bad_params_and_foreign_folder_are_refused(tmp_path):
    with pytest.raises(InputError) as raised:
        params_config("demo", DemoConfig, min_objects=5, max_objects=3)
    assert raised.value.where == f"{REPO_PARAMS}: demo.min_objects"
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a demo world"):
        make_demo_world(TINY, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def run_script(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(script), "--out", "data/demo"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_stage_script(tmp_path):
    write_params(tmp_path / "params.yaml", demo={"image_size": 32, "train_images": 3, "val_images": 2,
                                                 "finetune_train_per_class": 1, "finetune_val_per_class": 1})
    script = REPO / "pipelines" / "make_demo_world.py"
    done = run_script(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "data/demo/images/train").iterdir())) == 3
    write_params(tmp_path / "params.yaml", demo={"image_size": 8})
    done = run_script(script, tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: params.yaml: demo.image_size: must be in [32, 512], got 8\n"

"""`mlimages features` and `classify`: inputs checked before the model loads, skipped files named, exit 1."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlimages import cli

from tests.mlflow_state import use_store
from tests.tracking_fixtures import registry_config

CLASSES = ["red", "green", "blue"]


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    """A tiny classifier of this project (3 classes) saved as .keras."""
    import keras

    from mlimages.models.resnet import build_backbone, build_classifier

    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_classifier(build_backbone(50, blocks_per_stage=(1, 1, 1, 1), width_multiplier=0.125), 3).save(path)
    return path


@pytest.fixture()
def images(tmp_path, shared_data):
    """Two real photos, one file that is not an image, and a list naming them and a missing one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("im_0.jpg", "im_1.jpg"):
        (folder / name).write_bytes((shared_data / "images" / name).read_bytes())
    (folder / "notes.jpg").write_text("not a photo")
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\nphotos/im_0.jpg\nphotos/missing.jpg\n\nphotos/notes.jpg\nphotos/im_1.jpg\n")
    return listing


def test_features_finishes_the_rest_then_exits_1_naming_each_skipped_file(keras_file, images, tmp_path, capsys):
    out = tmp_path / "features.npy"
    code = cli.main(["features", "--model", str(keras_file), "--images", str(images), "--out", str(out),
                     "--size", "32"])
    err = capsys.readouterr().err
    assert code == 1
    features = np.load(out)
    assert features.shape[0] == 2 and np.isfinite(features).all()
    assert out.with_name("features.npy.paths.txt").read_text().splitlines() == [
        str(images.parent / "photos" / "im_0.jpg"), str(images.parent / "photos" / "im_1.jpg")]
    assert "skipped" in err and "missing.jpg: no such file" in err and "notes.jpg: not_image" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: skipped 2 of 4 image(s): ") and "missing.jpg" in last and "notes.jpg" in last
    assert "BytesIO" not in err and "Traceback" not in err


def test_features_exits_0_when_nothing_is_skipped(keras_file, images, tmp_path):
    listing = tmp_path / "good.txt"
    listing.write_text("photos/im_0.jpg\n")
    out = tmp_path / "features.parquet"
    assert cli.main(["features", "--model", str(keras_file), "--images", str(listing), "--out", str(out),
                     "--size", "32"]) == 0


@pytest.mark.parametrize("case", ["image_as_list", "binary_list", "all_missing", "bad_suffix"])
def test_bad_inputs_stop_with_one_line_before_the_model_loads(images, tmp_path, capsys, case):
    """The model path does not exist: the error must be about the input, found first."""
    listing, out = str(images), str(tmp_path / "f.npy")
    if case == "image_as_list":
        listing = str(images.parent / "photos" / "im_0.jpg")
    elif case == "binary_list":
        listing = str(tmp_path / "blob.txt")
        (tmp_path / "blob.txt").write_bytes(b"photos/\xff\xfe\x00.jpg\n")
    elif case == "all_missing":
        listing = str(tmp_path / "gone.txt")
        (tmp_path / "gone.txt").write_text("a.jpg\nb.jpg\n")
    else:
        out = str(tmp_path / "f.csv")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["features", "--model", str(tmp_path / "no-model.keras"), "--images", listing, "--out", out])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    expected = {"image_as_list": f"error: {listing}: this is an image, not a list file",
                "binary_list": f"error: {listing}: not a UTF-8 text file (byte 7)",
                "all_missing": f"error: {listing}: none of the 2 image(s) exists",
                "bad_suffix": f"error: {out}: output must end in .npy or .parquet"}[case]
    assert last.startswith(expected)
    assert "no-model" not in last


@pytest.fixture(scope="module")
def serving_model_uri(keras_file, tmp_path_factory):
    """The tiny classifier logged as this project's serving pyfunc in a throwaway tracking store."""
    from mlimages.tracking import serving_code

    folder = tmp_path_factory.mktemp("store")
    with use_store(folder):
        classes = folder / "classes.tsv"
        classes.write_text("".join(f"{i}\tn0{i}\t{name}\n" for i, name in enumerate(CLASSES)))
        config = dataclasses.replace(registry_config().serving("finetune", 0.875), image_size=32, stored_shorter_side=36)
        info = serving_code.log_serving_model(keras_file, classes, config, name="cli-test")
        yield info.model_uri


def test_classify_names_each_skipped_image_and_exits_1(serving_model_uri, images, capsys):
    photos = images.parent / "photos"
    paths = [str(photos / "im_0.jpg"), str(photos / "missing.jpg"), str(photos / "notes.jpg")]
    assert cli.main(["classify", "--model", serving_model_uri, "--top-k", "2", *paths]) == 1
    captured = capsys.readouterr()
    rows = [line.split("\t") for line in captured.out.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [(paths[0], "1"), (paths[0], "2")] and rows[0][3] in CLASSES
    assert "missing.jpg: no such file" in captured.err and "notes.jpg: image 0: not a JPEG/PNG image" in captured.err
    assert captured.err.strip().splitlines()[-1] == f"error: skipped 2 of 3 image(s): {paths[1]}, {paths[2]}"


def test_classify_threshold_returns_every_class_above_it(serving_model_uri, images, capsys):
    photo = str(images.parent / "photos" / "im_0.jpg")
    assert cli.main(["classify", "--model", serving_model_uri, "--threshold", "0", photo]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + len(CLASSES)


def test_classify_checks_files_before_loading_the_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--model", "models:/no-such-model@champion", str(tmp_path / "gone.jpg")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: command line: none of the 1 image(s) exists"

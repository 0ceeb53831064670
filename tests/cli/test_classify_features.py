"""`mlimages classify` and `mlimages features` on real photos, with bad files mixed in."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlimages.cli import main

from tests.tracking_fixtures import CLASS_NAMES


@pytest.fixture
def photo(shared_data):
    return shared_data / "images" / "im_0.jpg"


def test_classify_prints_tsv_and_names_the_bad_image(served_model, photo, tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    assert main(["classify", "--model", f"models:/{served_model}@champion", "--top-k", "2", str(photo), str(bad)]) == 1
    out, err = capsys.readouterr()
    header, *rows = out.strip().splitlines()
    assert header == "image\trank\tclass\tname\tprobability"
    assert [r.split("\t")[1] for r in rows] == ["1", "2"] and all(r.startswith(str(photo)) for r in rows)
    assert {r.split("\t")[3] for r in rows} <= set(CLASS_NAMES)
    assert str(bad) in err and "not a JPEG/PNG image" in err


def test_classify_refuses_a_model_that_is_not_a_serving_model(tracking_store, photo, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--model", "models:/no-such-model@champion", str(photo)])
    assert "cannot load the model" in capsys.readouterr().err


@pytest.mark.parametrize("suffix, ten_crop", [(".npy", False), (".parquet", True)])
def test_features_skip_bad_images_and_write_the_rest(served_model, photo, tmp_path, capsys, suffix, ten_crop):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    image_list = tmp_path / "images.txt"
    image_list.write_text(f"{photo}\nmissing.jpg\nbroken.png\n# a comment\n{photo}\n")
    out = tmp_path / f"features{suffix}"
    args = ["features", "--model", f"models:/{served_model}@champion", "--images", str(image_list),
            "--out", str(out), "--size", "64"] + (["--ten-crop"] if ten_crop else [])
    assert main(args) == 1  # finished, but skipped some
    err = capsys.readouterr().err
    assert "missing.jpg" in err and "broken.png" in err and "skipped 2" in err
    if suffix == ".npy":
        features = np.load(out)
        assert (out.parent / "features.npy.paths.txt").read_text().splitlines() == [str(photo)] * 2
    else:
        table = pq.read_table(out)
        assert table.column("path").to_pylist() == [str(photo)] * 2
        assert table.schema.field("feature").type.value_type == "float"  # float32
        features = np.array(table.column("feature").to_pylist(), dtype=np.float32)
    assert features.shape == (2, 256) and features.dtype == np.float32  # 2048 x 0.125 channels
    np.testing.assert_allclose(features[0], features[1])
    assert np.all(features >= 0)  # pooled after the final ReLU


def test_features_rejects_an_unknown_output_format(photo, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["features", "--model", "x.keras", "--images", "list.txt", "--out", str(tmp_path / "f.csv")])
    assert ".npy or .parquet" in capsys.readouterr().err

"""The serving pyfunc: preprocessing inside, named answers, clear errors for bad input."""

from __future__ import annotations

import base64
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from mlimages.tracking import registry, serving

from tests.tracking_fixtures import CLASS_NAMES, build_tiny_classifier, make_50_megapixel_jpeg, registry_config


@pytest.fixture(scope="module")
def model(served_model):
    return mlflow.pyfunc.load_model(f"models:/{served_model}@champion")


def test_predicts_names_and_probabilities_for_a_real_photo(model, fixture_photo):
    out = model.predict(pd.DataFrame({"image": [fixture_photo, serving.make_example_image()]}))
    assert list(out.columns) == ["classes", "names", "probabilities"] and len(out) == 2
    row = out.iloc[0]
    assert sorted(row["classes"]) == [0, 1, 2]  # top_k 5 > 3 classes: all of them
    assert row["names"] == [CLASS_NAMES[c] for c in row["classes"]]
    assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert list(row["probabilities"]) == sorted(row["probabilities"], reverse=True)


def test_top_k_param_and_base64_strings(model, fixture_photo):
    text = base64.b64encode(fixture_photo).decode()
    out = model.predict(pd.DataFrame({"image": [fixture_photo]}), params={"top_k": 1})
    assert len(out.iloc[0]["classes"]) == 1
    inner = model.unwrap_python_model()
    as_text = inner.predict(None, pd.DataFrame({"image": [text]}), params={"top_k": 1})
    assert as_text.iloc[0]["classes"] == out.iloc[0]["classes"]


def test_preprocessing_is_the_evaluation_protocol(model, fixture_photo):
    import tensorflow as tf

    from mlimages.data.preprocess import resize_and_center_crop, scale_pixels
    from mlimages.images import load_rgb

    inner = model.unwrap_python_model()
    got = serving.preprocess_image(fixture_photo, inner.config)
    pixels = np.asarray(load_rgb(fixture_photo, shorter_side=256))
    expected = scale_pixels(resize_and_center_crop(tf.constant(pixels), 224, 0.875)).numpy()
    assert got.shape == (224, 224, 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("payload, message", [
    (b"", "empty image"),
    (b"this is not an image at all", "not a JPEG/PNG image"),
    (b"\xff\xd8\xff\xe0 truncated jpeg", "not a JPEG/PNG image"),
])
def test_bad_images_raise_a_clear_400_error(model, payload, message):
    with pytest.raises(MlflowException, match=message) as error:
        model.predict(pd.DataFrame({"image": [payload]}))
    assert error.value.get_http_status_code() == 400


def test_a_50_megapixel_image_is_refused_before_decoding(model):
    with pytest.raises(MlflowException, match="too many pixels") as error:
        model.predict(pd.DataFrame({"image": [make_50_megapixel_jpeg()]}))
    assert error.value.get_http_status_code() == 400


def test_wrong_column_is_named(model, fixture_photo):
    with pytest.raises(MlflowException, match="image") as error:
        model.predict(pd.DataFrame({"img": [fixture_photo]}))
    assert error.value.get_http_status_code() == 400


def test_multi_label_model_returns_every_tag_at_or_above_the_threshold(tracking_store, multi_records, tmp_path,
                                                                       fixture_photo):
    path = tmp_path / "ml.keras"
    build_tiny_classifier(4, seed=3).save(path)
    version = registry.register_keras_model(path, "tiny-serve-ml", classes_file=multi_records.parent / "classes.tsv",
                                            config=registry_config())
    model = mlflow.pyfunc.load_model(f"models:/tiny-serve-ml/{version.version}")
    frame = pd.DataFrame({"image": [fixture_photo]})
    everything = model.predict(frame, params={"threshold": 0.0, "top_k": 1}).iloc[0]  # top_k: no effect
    assert sorted(everything["classes"]) == [0, 1, 2, 3] and everything["names"][0].startswith("tag ")
    assert all(0.0 < p < 1.0 for p in everything["probabilities"])  # independent sigmoids
    middle = sorted(everything["probabilities"])[1]
    some = model.predict(frame, params={"threshold": middle}).iloc[0]
    assert len(some["classes"]) == 3 and min(some["probabilities"]) >= middle
    assert model.predict(frame, params={"threshold": 1.0}).iloc[0]["classes"] == []
    assert len(model.predict(frame, params={"top_k": 2}).iloc[0]["classes"]) == 2  # no threshold: the best 2
    default = model.predict(frame).iloc[0]  # neither: every tag at or above the default 0.5
    assert default["classes"] == [c for c, p in zip(everything["classes"], everything["probabilities"]) if p >= 0.5]


@pytest.mark.parametrize("params, message", [
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"threshold": 1.01}, "threshold must be a number from 0 to 1"),
    ({"threshold": float("nan")}, "threshold must be a number from 0 to 1"),
    ({"treshold": 0.5}, "unknown params ['treshold']"),
])
def test_params_out_of_range_or_unknown_are_400(model, fixture_photo, params, message):
    inner = model.unwrap_python_model()  # MLflow's own wrapper drops unknown params before predict
    with pytest.raises(MlflowException, match=re.escape(message)) as error:
        inner.predict(None, pd.DataFrame({"image": [fixture_photo]}), params=params)
    assert error.value.get_http_status_code() == 400


def test_base64_text_as_bytes_is_decoded(model, fixture_photo):
    """`inputs`/`instances` requests reach predict as the base64 text itself, in a dict of arrays."""
    inner = model.unwrap_python_model()
    as_text = np.array([base64.b64encode(fixture_photo)], dtype=object)
    got = inner.predict(None, {"image": as_text}, params={"top_k": 2})
    want = inner.predict(None, pd.DataFrame({"image": [fixture_photo]}), params={"top_k": 2})
    assert got.iloc[0]["classes"] == want.iloc[0]["classes"]


def test_signature_and_input_example_are_logged(served_model):
    info = mlflow.models.get_model_info(f"models:/{served_model}@champion")
    assert info.signature.inputs.input_names() == ["image"]
    assert {p.name for p in info.signature.params.params} == {"top_k", "threshold"}
    assert info.saved_input_example_info is not None

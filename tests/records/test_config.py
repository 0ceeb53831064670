"""The `records:` params section: the repository's values load, and mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlimages.config import load_params
from mlimages.errors import InputError
from mlimages.records.config import RecordsConfig

from tests.factories import write_params

REPO = Path(__file__).resolve().parents[2]


def test_repository_params_load_with_sparse_labels_by_default():
    config = load_params("records", RecordsConfig, REPO / "params.yaml")
    assert config.dense_labels is False
    assert config.shard_bytes == 128 * 1024 * 1024 and config.min_shards > 1


@pytest.mark.parametrize("override, where", [
    ({"jpeg_quality": 99}, "records.jpeg_quality"),
    ({"num_workers": 0}, "records.num_workers"),
    ({"max_side": 100}, "records.max_side"),  # below shorter_side (256)
    ({"shard_size": 10}, "records"),  # unknown key
])
def test_bad_values_name_the_field(tmp_path, override, where):
    path = write_params(tmp_path / "params.yaml", records=override)
    with pytest.raises(InputError) as error:
        load_params("records", RecordsConfig, path)
    assert error.value.where == f"{path}: {where}"


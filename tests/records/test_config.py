"""The `records:` params section."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlimages.errors import InputError
from mlimages.records.config import RecordsConfig, load_records_config

REPO = Path(__file__).resolve().parents[2]


def test_repository_params_load_with_sparse_labels_by_default():
    config = load_records_config(REPO / "params.yaml")
    assert isinstance(config, RecordsConfig) and config.dense_labels is False
    assert config.shard_bytes == 128 * 1024 * 1024 and config.min_shards > 1


@pytest.mark.parametrize("line, where", [
    ("jpeg_quality: 99", "records.jpeg_quality"),
    ("num_workers: 0", "records.num_workers"),
    ("shard_size: 10", "records"),  # unknown key
])
def test_bad_values_name_the_field(tmp_path, line, where):
    (tmp_path / "params.yaml").write_text(f"records:\n  shorter_side: 64\n  {line}\n")
    with pytest.raises(InputError) as error:
        load_records_config(tmp_path / "params.yaml")
    assert error.value.where.endswith(where)

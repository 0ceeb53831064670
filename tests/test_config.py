"""params.yaml sections become frozen dataclasses; every mistake names the file and field."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
import yaml

from mlimages.cluster.config import ClusterConfig
from mlimages.config import load_params, read_params_file
from mlimages.dedup.config import DedupConfig
from mlimages.demo.config import DemoConfig
from mlimages.errors import InputError, exit_on_input_error
from mlimages.download.config import DownloadConfig
from mlimages.evaluate import EvaluateConfig
from mlimages.lists import ListsConfig
from mlimages.records.config import RecordsConfig
from mlimages.stats import StatsConfig
from mlimages.tracking.registry import RegistryConfig
from mlimages.train.config import FinetuneConfig, PretrainConfig

from tests.factories import REPO_PARAMS, write_params


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = 1


@dataclasses.dataclass(frozen=True)
class Section:
    depth: int
    lr: float = 0.1
    name: str = "x"
    sizes: tuple[int, ...] = (224,)
    mode: Literal["error", "skip"] = "error"
    root: str | None = None
    inner: Inner = Inner()


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_loads_values_converts_lists_and_ints(tmp_path):
    path = write(tmp_path, "s:\n  depth: 50\n  lr: 1\n  sizes: [224, 299]\n  inner: {size: 3}\n")
    config = load_params("s", Section, path)
    assert config == Section(depth=50, lr=1.0, sizes=(224, 299), inner=Inner(3))
    assert isinstance(config.lr, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 1


def test_overrides_are_parsed_as_yaml_scalars(tmp_path):
    path = write(tmp_path, "s:\n  depth: 50\n")
    config = load_params("s", Section, path, overrides={"depth": "101", "mode": "skip", "root": "null"})
    assert (config.depth, config.mode, config.root) == (101, "skip", None)


@pytest.mark.parametrize(
    "body, message",
    [
        ("  depth: 50\n  dept: 3\n", "s: unknown key(s) dept"),
        ("  lr: 0.1\n", "s.depth: missing required key"),
        ("  depth: fifty\n", "s.depth: expected int, got 'fifty'"),
        ("  depth: true\n", "s.depth: expected int"),
        ("  depth: 1\n  mode: maybe\n", "s.mode: must be one of 'error', 'skip'"),
        ("  depth: 1\n  sizes: [224, x]\n", "s.sizes[1]: expected int"),
        ("  depth: 1\n  inner: {width: 2}\n", "s.inner: unknown key(s) width"),
    ],
)
def test_mistakes_name_the_field(tmp_path, body, message):
    path = write(tmp_path, "s:\n" + body)
    with pytest.raises(InputError) as error:
        load_params("s", Section, path)
    assert f"{path}: {message}" in str(error.value)


def test_missing_section_and_file_and_bad_yaml(tmp_path):
    with pytest.raises(InputError, match="missing section 'other'"):
        load_params("other", Section, write(tmp_path, "s: {depth: 1}\n"))
    with pytest.raises(InputError, match="params file not found"):
        load_params("s", Section, tmp_path / "absent.yaml")
    with pytest.raises(InputError, match=r"params.yaml:3: not valid YAML"):
        load_params("s", Section, write(tmp_path, "s:\n  depth: [1\n"))


def test_entry_points_print_one_line_and_exit_2(capsys):
    @exit_on_input_error
    def main():
        raise InputError("confidence 1.5 is outside [0, 1]", "list.txt:7")

    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: list.txt:7: confidence 1.5 is outside [0, 1]\n"


STAGE_SECTIONS = [
    ("demo", DemoConfig), ("lists", ListsConfig), ("records", RecordsConfig), ("dedup", DedupConfig),
    ("stats", StatsConfig), ("evaluate", EvaluateConfig), ("registry", RegistryConfig),
    ("download", DownloadConfig), ("pretrain", PretrainConfig), ("finetune", FinetuneConfig),
    ("cluster", ClusterConfig),
]


@pytest.mark.parametrize("section, cls", STAGE_SECTIONS)
def test_stage_values_live_only_in_params_yaml(tmp_path, section, cls):
    """No defaults beside params.yaml: the file names every key, and a key left out is an error naming it."""
    fields = dataclasses.fields(cls)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    assert set(read_params_file(REPO_PARAMS)[section]) == {f.name for f in fields}
    assert isinstance(load_params(section, cls, REPO_PARAMS), cls)
    path = write_params(tmp_path / "params.yaml")
    params = read_params_file(path)
    del params[section][fields[0].name]
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(InputError) as error:
        load_params(section, cls, path)
    assert str(error.value) == f"{path}: {section}.{fields[0].name}: missing required key"

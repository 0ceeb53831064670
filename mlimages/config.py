"""Configuration as plain data: one frozen dataclass per `params.yaml` section.

`load_params("download", DownloadConfig)` reads one section, checks every key against the
dataclass (unknown or missing keys and wrong types are an `InputError` naming the field) and
returns an immutable object. Stage scripts read hyperparameters only from here; paths come from
`dvc.yaml` or the command line. MLflow `-P key=value` overrides go through `overrides`.

The section dataclasses live beside their users (`mlimages/download/config.py`, ...); this module
only knows how to read them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from mlimages.errors import InputError

T = TypeVar("T")

DEFAULT_PARAMS = "params.yaml"


def read_params_file(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read the whole params file as a dict; a missing or malformed file is an `InputError`."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise InputError("params file not found", str(path)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"not valid YAML ({getattr(error, 'problem', error)})", where) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping of sections at the top level", str(path))
    return data


def load_params(
    section: str,
    cls: type[T],
    path: str | Path = DEFAULT_PARAMS,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Load one section of the params file into the frozen dataclass `cls`.

    Args:
        section: top-level key of the params file, e.g. ``"pretrain"``.
        cls: the frozen dataclass describing that section.
        path: the params file.
        overrides: ``{"lr": "0.1"}`` style values (strings are parsed as YAML scalars) that
            replace the file's values; unknown keys are an error here too.

    Returns:
        An instance of `cls`.
    """
    data = read_params_file(path)
    if section not in data:
        raise InputError(f"missing section '{section}'", str(path))
    values = dict(data[section] or {})
    for key, value in (overrides or {}).items():
        values[key] = yaml.safe_load(value) if isinstance(value, str) else value
    return build_config(cls, values, where=f"{path}: {section}")


def build_config(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """Build dataclass `cls` from a mapping, checking keys and types; errors name `where.key`."""
    if not isinstance(values, Mapping):
        raise InputError(f"expected a mapping, got {type(values).__name__}", where)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)}; expected some of {', '.join(fields)}", where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in values:
            kwargs[name] = _coerce(values[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InputError("missing required key", f"{where}.{name}")
    try:
        return cls(**kwargs)
    except InputError as error:  # a section's own check names "params.yaml: section.key": name the file read
        path = where.split(": ", 1)[0]
        place = error.where or where
        if place.startswith(f"{DEFAULT_PARAMS}: ") and path != DEFAULT_PARAMS:
            place = f"{path}: {place[len(DEFAULT_PARAMS) + 2:]}"
        raise InputError(error.message, place) from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint, converting lists to tuples and ints to floats."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except InputError as error:
                errors.append(error.message)
        raise InputError("; ".join(errors), where)
    if origin is typing.Literal:
        if value not in args:
            raise InputError(f"must be one of {', '.join(map(repr, args))}, got {value!r}", where)
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"expected a list, got {value!r}", where)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise InputError(f"expected {len(args)} values, got {len(value)}", where)
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"expected a mapping, got {value!r}", where)
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value, where)
    return _coerce_scalar(value, hint, where)


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise InputError(f"expected {name}, got {value!r}", where)


def check_fields(config: Any, checks: list[tuple[str, bool, str]], where: str) -> None:
    """Raise for the first failed ``(field, ok, message)`` check, naming ``where.field`` and its value.

    Config dataclasses call this from ``__post_init__`` so a bad value stops at load time, with the
    params key in the message, instead of deep inside the stage that uses it.
    """
    for name, ok, message in checks:
        if not ok:
            raise InputError(f"{message}, got {getattr(config, name)!r}", f"{where}.{name}")

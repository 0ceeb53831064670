"""Tests of the stage scripts and MLproject entry points in pipelines/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_pipeline(name: str):
    """Import `pipelines/<name>.py` as a module (the scripts are not a package)."""
    path = REPO / "pipelines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

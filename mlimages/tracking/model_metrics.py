"""Model quality per registered version as DVC metrics files, read from the registry.

The evaluation step puts each version's headline numbers on it as ``eval.*`` tags
(`mlimages.tracking.champion`); this writes them where `dvc metrics show` and `dvc metrics diff`
read them, committed to git with the code that made them (dvc.yaml's top-level ``metrics:``).
One file is one row of DVC's table, so a version gets one file per evaluated size and the keys
stay the same few columns (``top1``, ``top5``; ``map`` for a multi-label model, evaluated at its
first size), instead of one column per version, metric and size:

    metrics/resnet50-imagenet-v3-64.json   {"top1": 0.4531, "top5": 0.8125}
    metrics/resnet50-ml-v2.json            {"map": 0.3117}

Files are named by the registered name (without a leading ``mlimages-``), ``v`` + version, size,
and sit at the top of metrics/ (data/ and download/ beside them): the path is the table's widest
column, and this keeps a paper-size name (resnet101, 224 px) within 120 columns.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlimages.data_metrics import write_rows
from mlimages.tracking.names import EVAL_PREFIX

NAME_PREFIX = "mlimages-"
DIGITS = 4  # 0.8073 = 80.73%: the paper's precision, and as narrow as the column's header


def version_rows(name: str, version: str, tags: dict[str, str]) -> dict[str, dict]:
    """The rows of one registered version (none when it was never evaluated)."""
    stem = f"{name.removeprefix(NAME_PREFIX)}-v{version}"
    rows: dict[str, dict] = {}
    for key, value in sorted(tags.items()):
        found = re.fullmatch(re.escape(EVAL_PREFIX) + r"top([15])_(\d+)", key)
        if found:
            rows.setdefault(f"{stem}-{found[2]}.json", {})[f"top{found[1]}"] = round(float(value), DIGITS)
    if f"{EVAL_PREFIX}map_all" in tags:
        rows[f"{stem}.json"] = {"map": round(float(tags[f"{EVAL_PREFIX}map_all"]), DIGITS)}
    return rows


def model_rows(client, names: list[str]) -> dict[str, dict]:
    """The rows of every version of the registered models `names`."""
    rows: dict[str, dict] = {}
    for name in names:
        for version in client.search_model_versions(f"name = '{name}'"):
            rows.update(version_rows(name, str(version.version), version.tags))
    return rows


def write_model_metrics(client, names: list[str], out: str | Path) -> list[Path]:
    """Write the rows of `names` to `out` (``metrics``), one JSON file each.

    The folder mirrors the registry: files of these models whose version is gone or no longer
    has the metric are removed; files of other models are left alone.

    Returns:
        The files written.
    """
    out = Path(out)
    rows = model_rows(client, names)
    stems = tuple(f"{name.removeprefix(NAME_PREFIX)}-v" for name in names)
    if out.is_dir():
        for stale in out.glob("*.json"):
            if stale.name.startswith(stems) and stale.name not in rows:
                stale.unlink()
    return write_rows(rows, out)

"""The registered checkpoints side by side, like the paper's results table.

One row per registered version: the checkpoint it came from, its training data (which pretrained
model, or from scratch), top-1/top-5 at every evaluated size, mAP and its aliases. `mlimages
registry list` prints it, and `make demo` ends with it. Versions evaluated with the dedup stage's
leaked list add the clean score beside them (``*_clean``, and ``leaked_left_out``: images left out).
"""

from __future__ import annotations

import re

from mlimages.tracking.names import EVAL_PREFIX, RUN_ID_TAG, STEP_TAG, TRAINING_DATA_TAG
from mlimages.tracking.registry_config import RegistryConfig

LEFT_OUT = "leaked_left_out"  # images the clean score left out (mlimages.evaluate)


def render_versions(client, names: list[str]) -> str:
    """The table of every version of the registered models `names` ("" when there is none)."""
    versions = [v for name in names for v in client.search_model_versions(f"name = '{name}'")]
    versions.sort(key=lambda v: (v.name, int(v.version)))
    aliases: dict[tuple[str, str], list[str]] = {}
    for name in names:
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault((name, str(version)), []).append(alias)
    return format_table(versions, aliases) if versions else ""


def matching_names(client, config: RegistryConfig) -> list[str]:
    """Registered models whose names fit the params templates (any depth)."""
    patterns = [re.compile(re.escape(t).replace(re.escape("{depth}"), r"\d+") + "$")
                for t in (config.pretrained_name, config.finetuned_name)]
    names = [m.name for m in client.search_registered_models()]
    return sorted(n for n in names if any(p.match(n) for p in patterns))


def format_table(versions, aliases: dict[tuple[str, str], list[str]]) -> str:
    """Rows of versions; metric columns are every ``top1_*``/``top5_*`` size found, then mAP."""
    keys = sorted({k[len(EVAL_PREFIX):] for v in versions for k in v.tags if k.startswith(EVAL_PREFIX)})
    sizes = sorted({int(k.split("_")[1]) for k in keys if re.fullmatch(r"top[15]_\d+", k)})
    metric_columns = [f"top{k}_{s}" for s in sizes for k in (1, 5)] + ["map_all"]
    metric_columns += clean_columns(metric_columns, keys)
    header = ["model", "version", "checkpoint", "training data", *metric_columns, "aliases"]
    rows = [header]
    for v in versions:
        tags = v.tags
        checkpoint = f"step {tags.get(STEP_TAG, '?')} of run {tags.get(RUN_ID_TAG, '?')[:8]}"
        values = [_cell(column, tags.get(EVAL_PREFIX + column)) for column in metric_columns]
        names = ",".join(sorted(aliases.get((v.name, str(v.version)), []))) or "-"
        rows.append([v.name, str(v.version), checkpoint, tags.get(TRAINING_DATA_TAG, "?"), *values, names])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def clean_columns(metric_columns: list[str], keys: list[str]) -> list[str]:
    """The clean score's columns (and the count it left out), only when some version has one."""
    clean = [f"{column}_clean" for column in metric_columns if f"{column}_clean" in keys]
    return clean + [LEFT_OUT] if clean else []


def _percent(value: str | None) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}"


def _cell(column: str, value: str | None) -> str:
    """A metric in % or, for the clean score's left-out count, the integer."""
    return str(int(float(value))) if column == LEFT_OUT and value is not None else _percent(value)

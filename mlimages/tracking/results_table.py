"""The registered checkpoints side by side, like the paper's results table.

One row per registered version: the checkpoint it came from, its training data (which pretrained
model, or from scratch), top-1/top-5 at every evaluated size, mAP and its aliases. `mlimages
registry list` prints it, and `make demo` ends with it. Versions evaluated with the dedup stage's
leaked list add the clean score beside them (``*_clean``, and ``leaked_left_out``: images left out).
The checkpoint's step comes from the version's serving model (its source), read for all versions
in one search of the serving models rather than one request per version.
"""

from __future__ import annotations

import re

from mlimages.tracking.names import EVAL_PREFIX, SERVING_TAG, TRAINING_DATA_TAG
from mlimages.tracking.registry_config import RegistryConfig
from mlimages.tracking.rest_registry import RestRegistry
from mlimages.tracking.version_source import VersionSource, serving_model_id, source_from_tags

LEFT_OUT = "leaked_left_out"  # images the clean score left out (mlimages.evaluate)


def render_versions(client, names: list[str]) -> str:
    """The table of every version of the registered models `names` ("" when there is none)."""
    versions = [v for name in names for v in search_all(client, "search_model_versions", f"name = '{name}'")]
    versions.sort(key=lambda v: (v.name, int(v.version)))
    aliases: dict[tuple[str, str], list[str]] = {}
    for name in names:
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault((name, str(version)), []).append(alias)
    return format_table(versions, aliases, read_sources(client, versions)) if versions else ""


def read_sources(client, versions) -> dict[tuple[str, str], VersionSource]:
    """What each version was built from, keyed by (name, version): one search of all serving models."""
    tags = serving_model_tags(client)
    return {(v.name, str(v.version)): source_from_tags(serving_model_id(v), tags.get(serving_model_id(v), {}), v.tags)
            for v in versions}


def serving_model_tags(client) -> dict[str, dict[str, str]]:
    """The tags of every serving LoggedModel by model id, from `RestRegistry` or MLflow's client."""
    if isinstance(client, RestRegistry):
        return client.serving_model_tags()
    from mlflow.entities import ViewType  # imported here: the REST path never imports MLflow

    experiments = [e.experiment_id for e in read_pages(client.search_experiments, view_type=ViewType.ALL)]
    models = read_pages(client.search_logged_models, experiment_ids=experiments,
                        filter_string=f"tags.`{SERVING_TAG}` = 'true'") if experiments else []
    return {m.model_id: m.tags for m in models}


def search_all(client, method: str, filter_string: str | None = None) -> list:
    """Every result of a registry search: `RestRegistry` follows the pages itself, MLflow's client returns
    one page (100 registered models, 10,000 versions) and its next-page token."""
    search = getattr(client, method)
    if isinstance(client, RestRegistry):
        return search(filter_string)
    return read_pages(search, filter_string=filter_string)


def read_pages(search, **kwargs) -> list:
    """Every page of an MLflow search (`search` returns a PagedList with a next-page token)."""
    items, token = [], None
    while True:
        page = search(**kwargs, page_token=token)
        items += list(page)
        token = page.token
        if not token:
            return items


def matching_names(client, config: RegistryConfig) -> list[str]:
    """Registered models whose names fit the params templates (any depth)."""
    patterns = [re.compile(re.escape(t).replace(re.escape("{depth}"), r"\d+") + "$")
                for t in (config.pretrained_name, config.finetuned_name)]
    names = [m.name for m in search_all(client, "search_registered_models")]
    return sorted(n for n in names if any(p.match(n) for p in patterns))


def format_table(versions, aliases: dict[tuple[str, str], list[str]],
                 sources: dict[tuple[str, str], VersionSource]) -> str:
    """Rows of versions; metric columns are every ``top1_*``/``top5_*`` size found, then mAP.

    Args:
        versions: ModelVersions (tags and run id are read).
        aliases: the aliases of each (name, version).
        sources: what each (name, version) was built from (`read_sources`; the step is shown).
    """
    keys = sorted({k[len(EVAL_PREFIX):] for v in versions for k in v.tags if k.startswith(EVAL_PREFIX)})
    sizes = sorted({int(k.split("_")[1]) for k in keys if re.fullmatch(r"top[15]_\d+", k)})
    metric_columns = [f"top{k}_{s}" for s in sizes for k in (1, 5)] + ["map_all"]
    metric_columns += clean_columns(metric_columns, keys)
    header = ["model", "version", "checkpoint", "training data", *metric_columns, "aliases"]
    rows = [header]
    for v in versions:
        tags = v.tags
        step = sources[(v.name, str(v.version))].step
        checkpoint = f"step {'?' if step is None else step} of run {(v.run_id or '?')[:8]}"
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

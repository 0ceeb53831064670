"""`mlimages registry list`: the registered checkpoints side by side, like the paper's results table."""

from __future__ import annotations

import argparse
import re

from mlimages.config import load_params
from mlimages.tracking.registry import RegistryConfig

EVAL = "eval."


def register(subparsers) -> None:
    parser = subparsers.add_parser("registry", help="list registered checkpoints with their metrics")
    commands = parser.add_subparsers(dest="registry_command", required=True)
    show = commands.add_parser("list", help="versions side by side: checkpoint, data, top-1/top-5, mAP, aliases")
    show.add_argument("--name", action="append", default=[], help="registered model(s); default: both from params")
    show.add_argument("--params", default="params.yaml", help="the params file naming the registered models")
    show.set_defaults(func=print_versions)


def print_versions(args: argparse.Namespace) -> int:
    import mlflow

    from mlimages.tracking.runs import configure_tracking

    configure_tracking()
    config = load_params("registry", RegistryConfig, args.params)
    names = args.name or matching_names(mlflow.MlflowClient(), config)
    client = mlflow.MlflowClient()
    print(render_versions(client, names) or "no registered versions (run the evaluate entry point first)")
    return 0


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
    keys = sorted({k[len(EVAL):] for v in versions for k in v.tags if k.startswith(EVAL)})
    sizes = sorted({int(k.split("_")[1]) for k in keys if re.fullmatch(r"top[15]_\d+", k)})
    metric_columns = [f"top{k}_{s}" for s in sizes for k in (1, 5)] + ["map_all"]
    header = ["model", "version", "checkpoint", "training data", *metric_columns, "aliases"]
    rows = [header]
    for v in versions:
        tags = v.tags
        checkpoint = f"step {tags.get('mlimages.step', '?')} of run {tags.get('mlimages.run_id', '?')[:8]}"
        values = [_percent(tags.get(EVAL + column)) for column in metric_columns]
        names = ",".join(sorted(aliases.get((v.name, str(v.version)), []))) or "-"
        rows.append([v.name, str(v.version), checkpoint, tags.get("mlimages.training_data", "?"), *values, names])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _percent(value: str | None) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}"

"""The registry part of the tracking benchmark: `mlimages registry list` over 1,000 versions.

    python benchmarks/bench_tracking.py --part registry

The command runs as users run it (a fresh interpreter, imports included); beside it, interleaved,
the listing as the command did it before it read a tracking server over REST (MLflow imported,
MLflow's client, the same table code), and both listings in-process.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import markdown_table
from mlimages.tracking.names import (DATA_VERSION_TAG, SERVING_TAG, STEP_TAG, TASK_TAG, TRAINING_DATA_TAG,
                                     serving_name)
from tests.team.team_server import MODELS

REPO = Path(__file__).resolve().parent.parent
MODEL = MODELS[1]  # a project model the researcher may register into, and a name params.yaml's template matches


def fill_registry(count: int) -> None:
    """`count` versions of MODEL built as the registry builds them, champion on one: each from its own serving
    LoggedModel (whose tags hold the step), with the tags an evaluation leaves on a version."""
    import mlflow

    client = mlflow.MlflowClient()
    if not client.search_registered_models(f"name = '{MODEL}'"):
        client.create_registered_model(MODEL)  # the team server has it from `mlimages team setup`
    mlflow.set_experiment("mlimages")
    with mlflow.start_run(run_name="bench-registry") as run:
        pass
    tags = {"eval.top1_56": "0.31", "eval.top5_56": "0.80", "eval.top1_64": "0.33", "eval.top5_64": "0.84",
            TRAINING_DATA_TAG: "from scratch", "git_commit": "0" * 40, DATA_VERSION_TAG: "0123456789ab"}
    for number in range(count):
        serving = client.create_logged_model(run.info.experiment_id, name=serving_name(number),
                                             source_run_id=run.info.run_id,
                                             tags={SERVING_TAG: "true", STEP_TAG: str(number), TASK_TAG: "finetune"})
        client.create_model_version(MODEL, f"models:/{serving.model_id}", run.info.run_id, tags=tags,
                                    model_id=serving.model_id)
    client.set_registered_model_alias(MODEL, "champion", str(count // 2))


# The listing as `mlimages registry list` did it before reading servers over REST: MLflow imported, its client.
MLFLOW_CLIENT_LISTING = """
import sys
import mlflow
from mlimages.config import load_params
from mlimages.tracking.registry_config import RegistryConfig
from mlimages.tracking.results_table import matching_names, render_versions
from mlimages.tracking.runs import configure_tracking
configure_tracking()
client = mlflow.MlflowClient()
print(render_versions(client, matching_names(client, load_params("registry", RegistryConfig, sys.argv[1]))))
"""


def time_fresh(command: list[str]) -> tuple[float, str]:
    """Seconds of a command in a fresh interpreter, and what it printed."""
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ)
    return time.perf_counter() - start, done.stdout


def time_registry_list(repeats: int) -> dict:
    """Median seconds of `registry list` over the current store: the command and the former listing, in a
    fresh interpreter each (interleaved), and in-process with MLflow's client and with the command's reader."""
    import mlflow

    from mlimages.cli.registry import open_registry
    from mlimages.tracking.results_table import render_versions

    params = str(REPO / "params.yaml")
    times: dict[str, list[float]] = {"command": [], "former": [], "client": [], "reader": []}
    for _ in range(repeats):
        seconds, shown = time_fresh([str(Path(sys.executable).parent / "mlimages"), "registry", "list", "--params",
                                     params])
        times["command"].append(seconds)
        seconds, former = time_fresh([sys.executable, "-c", MLFLOW_CLIENT_LISTING, params])
        times["former"].append(seconds)
        assert shown == former, "the command and the former listing printed different tables"
        for key, client in (("client", mlflow.MlflowClient()), ("reader", open_registry())):
            start = time.perf_counter()
            render_versions(client, [MODEL])
            times[key].append(time.perf_counter() - start)
    rest = type(open_registry()).__name__ == "RestRegistry"
    return {**{k: statistics.median(v) for k, v in times.items()}, "rows": shown.count("\n") - 2, "rest": rest}


def format_listing(results: dict, args) -> str:
    rows = [[name, str(r["rows"]), f"{r['command']:.2f}", f"{r['former']:.2f}", f"{r['command'] / r['former']:.2f}",
             f"{r['client']:.2f}", f"{r['reader']:.2f}" if r["rest"] else "(MLflow's client)"]
            for name, r in results.items()]
    server = results["team server"]
    return (
        f"`mlimages registry list` (names from params.yaml) over {args.versions:,} registered versions with the tags "
        "an evaluation writes, each built from its own serving LoggedModel, as users run it: a fresh interpreter, imports included. Beside it, in the same run and "
        "interleaved, the listing as the command did it before reading a server over REST (MLflow imported, MLflow's "
        "client, the same table code; both print the same table, checked each time), and both listings in-process. "
        f"Medians of {args.repeats_listing}. The server runs 2 workers on the same 2 cores, with PostgreSQL. "
        f"Load average at the end: {load_average()}.\n\n"
        + markdown_table(["store", "versions listed", "`mlimages registry list` s", "former command s",
                          "ratio", "listing in-process, MLflow client s", "listing in-process, REST s"], rows)
        + f"\n\nA fresh interpreter that only imports mlflow takes {args.import_floor_s:.2f} s here, one that imports "
        f"the command's modules (`mlimages.cli.registry`) {args.command_floor_s:.2f} s. Target: `mlimages registry "
        f"list` < 2 s with {args.versions:,} versions on PostgreSQL: **{server['command']:.2f} s** "
        f"({server['former']:.2f} s before)."
    )


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())

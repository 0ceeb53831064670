"""Tracking overhead of the team server against embedded SQLite, and `mlimages registry list` at 1,000 versions.

Starts what the team tests start: a throwaway PostgreSQL cluster and the team's `mlflow server`
(basic-auth, proxied artifacts) through `mlimages team serve`, on loopback. Then, side by side in
one process, for the embedded store (`sqlite:///`, local artifacts) and the server (as a researcher):

- the demo's training step (ResNet-50 at width x0.25, 56 px, batch 32, as params.yaml trains it),
  end to end through `fit`, timed from the run's own metric timestamps (no start-up in it);
- what tracking costs per step: one `log_metrics` call every `log_every_steps` steps, and one
  checkpoint LoggedModel (the Keras model, uploaded) every `checkpoint_every_epochs` epochs;
- (``--part registry``) 1,000 registered versions with the tags evaluation writes, then `mlimages registry
  list` as users run it (a fresh interpreter, imports included), beside the same listing done the way
  the command did it before it read a server over REST (MLflow imported, MLflow's client), and both
  listings in-process.

Each part writes its own section of BENCHMARKS.md (``tracking``, ``tracking-registry``).

    python benchmarks/bench_tracking.py [--part training|registry] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the PostgreSQL cluster and server the team tests start

from benchmarks.report import markdown_table, write_section  # noqa: E402
from benchmarks.tracking_registry import fill_registry, format_listing, load_average, time_registry_list  # noqa: E402
from tests.team.postgres import PostgresCluster, find_bin  # noqa: E402
from tests.team.team_server import RESEARCHER, start_team_server  # noqa: E402


def use_store(uri: str, credentials: tuple[str, str] | None, asynchronous: bool = False) -> None:
    """Point MLflow at a store, as a user would: the URI, credentials, and the async-logging switch."""
    import mlflow

    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_ENABLE_ASYNC_LOGGING"):
        os.environ.pop(key, None)
    if credentials:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = credentials
    if asynchronous:
        os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "true"  # log_metrics queues; a thread sends
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)


def demo_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return {"pretrain": params["pretrain"], "train_images": params["demo"]["train_images"]}


def time_training(records: dict, steps: int, out: Path) -> float:
    """Seconds per demo training step, from the timestamps of the loss logged at steps 20 .. `steps`."""
    import mlflow

    from mlimages.train.config import PretrainConfig
    from mlimages.train.fit import fit

    section = {**demo_params()["pretrain"], "steps": steps, "epochs": None, "checkpoint_every_epochs": 0,
               "val_examples": 16, "val_batch_size": 16, "shuffle_buffer": 256}
    section = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
    result = fit("pretrain", PretrainConfig(**section), records["train"], records["val"], out)
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "loss")
    first, last = min(history, key=lambda m: m.step), max(history, key=lambda m: m.step)
    return (last.timestamp - first.timestamp) / 1000 / (last.step - first.step)


def time_tracking_calls(repeats: int) -> dict:
    """Median seconds of one `log_metrics` of the training loop and of one checkpoint LoggedModel."""
    import keras
    import mlflow

    from mlimages.models.resnet import build_backbone, build_classifier
    from mlimages.tracking.runs import log_checkpoint

    model = build_classifier(build_backbone(50, width_multiplier=0.25), 39)  # the demo's network
    metric_s, checkpoint_s = [], []
    mlflow.set_experiment("mlimages")
    with mlflow.start_run(run_name="bench-tracking"):
        for step in range(1, 20 * repeats + 1):
            start = time.perf_counter()
            mlflow.log_metrics({"loss": 1.0 / step, "learning_rate": 0.05, "images_per_s": 100.0}, step=step)
            metric_s.append(time.perf_counter() - start)
        for step in range(repeats):
            start = time.perf_counter()
            log_checkpoint(model, 10_000 + step, "pretrain", {"val_map": 0.5})
            checkpoint_s.append(time.perf_counter() - start)
    keras.backend.clear_session()
    return {"metric": statistics.median(metric_s), "checkpoint": statistics.median(checkpoint_s)}


def measure_listing(stores: dict, args) -> dict:
    """The listing over each store (the async switch changes nothing here), 1,000 versions in each."""
    results = {}
    for name, store in stores.items():
        if store[2]:
            continue
        use_store(*store)
        fill_registry(args.versions)
        results[name] = time_registry_list(args.repeats_listing)
    return results


def measure_training(stores: dict, records: dict, folder: Path, args) -> dict:
    """Every measurement for every store, training runs interleaved so load changes hit both alike."""
    results = {name: {"step": []} for name in stores}
    for repeat in range(args.repeats):
        for name, store in stores.items():
            use_store(*store)
            results[name]["step"].append(time_training(records, args.steps, folder / f"{name}-{repeat}"))
    for name, store in stores.items():
        use_store(*store)
        results[name].update(time_tracking_calls(3))
        results[name]["step"] = statistics.median(results[name]["step"])
    return results


def time_import_floor(module: str, repeats: int) -> float:
    """Median seconds of a fresh interpreter that imports `module` and does nothing: part of any command that does."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tracking_per_step_s(result: dict) -> float:
    """Tracking seconds per step at the demo's cadence of metric logs and checkpoints."""
    params = demo_params()
    pretrain = params["pretrain"]
    steps_per_epoch = params["train_images"] // pretrain["batch_size"]
    checkpoint_steps = pretrain["checkpoint_every_epochs"] * steps_per_epoch
    return result["metric"] / pretrain["log_every_steps"] + result["checkpoint"] / checkpoint_steps


def format_training(results: dict, args) -> str:
    pretrain = demo_params()["pretrain"]
    base = results["embedded sqlite"]
    rows = []
    for name, result in results.items():
        per_step = tracking_per_step_s(result)
        rows.append([name, f"{1000 * result['step']:.0f}", f"{result['step'] / base['step']:.3f}",
                     f"{1000 * result['metric']:.1f}", f"{result['checkpoint']:.2f}", f"{1000 * per_step:.2f}",
                     f"{100 * per_step / base['step']:.2f}%"])
    server = results["team server"]
    queued = results["team server, async logging"]
    added = (tracking_per_step_s(server) - tracking_per_step_s(base)) / base["step"]
    return (
        f"Demo training step: ResNet-50 x{pretrain['width_multiplier']}, {pretrain['image_size']} px, batch "
        f"{pretrain['batch_size']}; loss, learning rate and images/s logged every {pretrain['log_every_steps']} "
        f"steps, a checkpoint LoggedModel every {pretrain['checkpoint_every_epochs']} epochs. Step times: median of "
        f"{args.repeats} runs of {args.steps} steps per store, interleaved; call times: medians. The server runs "
        f"2 workers on the same 2 cores, with PostgreSQL. Load average at the end: {load_average()}.\n\n"
        + markdown_table(["store", "demo step ms (end to end)", "ratio to sqlite", "log_metrics ms",
                          "checkpoint LoggedModel s", "tracking ms per step", "share of a sqlite step"], rows)
        + f"\n\nTarget: the server adds < 5% to a demo step: **{100 * added:.2f}%** from the tracking calls "
        f"({100 * (tracking_per_step_s(queued) - tracking_per_step_s(base)) / base['step']:.2f}% with "
        "`MLFLOW_ENABLE_ASYNC_LOGGING=true`, which queues metrics for a background thread); end to end "
        f"{100 * (server['step'] / base['step'] - 1):+.1f}% and {100 * (queued['step'] / base['step'] - 1):+.1f}%, "
        "where run-to-run noise on a shared machine is of the same size."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, runs and versions")
    parser.add_argument("--part", choices=("training", "registry"), action="append",
                        help="only this part (repeatable); default both")
    args = parser.parse_args()
    args.steps, args.repeats, args.versions = (60, 1, 100) if args.quick else (100, 2, 1000)
    args.repeats_listing = 3
    parts = args.part or ["training", "registry"]
    cluster = PostgresCluster(find_bin())
    cluster.start()
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
            folder = Path(tmp)
            server = start_team_server(cluster, Path(tempfile.mkdtemp(prefix="bench-team-", dir=tmp)))
            (folder / "sqlite").mkdir()
            os.chdir(folder / "sqlite")  # the embedded store's artifacts go to ./mlruns
            researcher = (RESEARCHER, server.passwords[RESEARCHER])
            stores = {"embedded sqlite": (f"sqlite:///{folder / 'sqlite' / 'mlflow.db'}", None, False),
                      "team server": (server.url, researcher, False),
                      "team server, async logging": (server.url, researcher, True)}
            sections = [run_part(part, stores, folder, args) for part in parts]
            os.chdir(REPO)
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
    for name, title, part, body in sections:
        write_section(name, title, f"python benchmarks/bench_tracking.py --part {part}"
                      + (" --quick" if args.quick else ""), body)
        print(body)


def run_part(part: str, stores: dict, folder: Path, args) -> tuple[str, str, str, str]:
    """Measure one part; returns its BENCHMARKS.md section (name, title, part, body)."""
    if part == "training":
        from train.fakes import write_records

        records = {"train": write_records(folder / "ml" / "train", 256, "multi", seed=1),
                   "val": write_records(folder / "ml" / "val", 16, "multi", num_shards=1, seed=2)}
        return ("tracking", "Team tracking server against embedded SQLite", part,
                format_training(measure_training(stores, records, folder, args), args))
    args.import_floor_s = time_import_floor("mlflow", 3)
    args.command_floor_s = time_import_floor("mlimages.cli.registry", 3)
    return ("tracking-registry", "`mlimages registry list` on the team server", part,
            format_listing(measure_listing(stores, args), args))


if __name__ == "__main__":
    main()

"""Every worker node gone mid-download: the stage stops after `cluster.node_wait_s` with one line naming the
shards not done, keeps what was committed, and a rerun on a new node resumes per sample."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import STORE_BYTES, WORKER_CPUS
from tests.cluster.lists import count_samples, fault_routes, write_list
from tests.download.fault_server import FAST, Outcome
from tests.factories import write_params

pytestmark = pytest.mark.slow

NODE_WAIT_S = 5.0
# Ray marks a killed node dead after its health checks fail (about 15 s by default); a loaded machine adds more.
RAY_NOTICES_S = 60.0


def stage_args(tmp_path: Path, server) -> tuple[list[str], Path]:
    """The download stage's command line on 240 slow lines (every 9th a 404), 12 shards, one fetch per task."""
    fault_routes(server)
    settings = dataclasses.replace(FAST, samples_per_shard=20, concurrency=1)
    section = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()}
    params = write_params(tmp_path / "params.yaml", download=section,
                          cluster={"engine": "ray", "address": "", "node_wait_s": NODE_WAIT_S})
    sources = [server.url(f"/slow/{7000 + i}.jpg" if i % 9 else f"/missing/{7000 + i}.jpg") for i in range(240)]
    list_path, out = write_list(tmp_path, sources), tmp_path / "images"
    return ["--list", str(list_path), "--out", str(out), "--report", str(tmp_path / "report.json"),
            "--params", str(params)], out


def remove_every_worker_node(cluster, out: Path, killed: dict) -> None:
    """Once the three attempts run (12 shards, 4 per task) and some stored samples: kill both worker nodes."""
    while len(list(out.glob(".attempts/*/*.tar.partial"))) < 3:
        time.sleep(0.02)
    killed["committed"] = sorted(p.name for p in out.glob("*.tar"))
    for node in cluster.worker_nodes.copy():
        cluster.remove_node(node, allow_graceful=False)
    killed["at"] = time.monotonic()


def test_the_run_stops_when_every_worker_node_is_gone_and_a_rerun_resumes(ray_cluster, image_server, tmp_path,
                                                                         caplog):
    from tests.pipelines import load_pipeline

    argv, out = stage_args(tmp_path, image_server)
    killed = {}
    killer = threading.Thread(target=remove_every_worker_node, args=(ray_cluster, out, killed), daemon=True)
    killer.start()
    caplog.set_level(logging.WARNING)
    try:
        assert load_pipeline("download_images").main(argv) == 1
        stopped_at = time.monotonic()
    finally:
        killer.join(timeout=60)
        for _ in range(2):  # the next tests find two workers again
            ray_cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE_BYTES)
        ray_cluster.wait_for_nodes()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert "no Ray node could run a task for 5 s" in errors[0] and "shards not done (shards " in errors[0]
    assert NODE_WAIT_S <= stopped_at - killed["at"] <= NODE_WAIT_S + RAY_NOTICES_S
    assert set(killed["committed"]) <= {p.name for p in out.glob("*.tar")}  # nothing committed is lost
    stored_before = count_samples(out)
    fetched_before = sum(n for path, n in image_server.hits.items() if path.startswith("/slow/7"))

    assert load_pipeline("download_images").main(argv) == 0
    outcome = Outcome(out, {})  # refuses a sample stored twice
    reachable = {i + 1 for i in range(240) if i % 9}
    assert set(outcome.samples) == reachable and sorted(outcome.statuses) == list(range(1, 241))
    fetched = sum(n for path, n in image_server.hits.items() if path.startswith("/slow/7"))
    assert stored_before > 0 and fetched - fetched_before <= len(reachable) - stored_before  # resumed per sample
    assert not (out / ".attempts").exists()


def test_a_node_that_joins_within_the_wait_runs_the_shards(ray_cluster, image_server, tmp_path):
    """The run starts with no worker node; one joins after a few seconds, well within `node_wait_s`: every shard
    runs on it."""
    import ray

    from mlimages.cluster.config import ClusterConfig
    from mlimages.cluster.engines import download_engine
    from mlimages.download import download
    from tests.factories import params_config

    for node in ray_cluster.worker_nodes.copy():
        ray_cluster.remove_node(node, allow_graceful=True)
    deadline = time.monotonic() + RAY_NOTICES_S
    while ray.cluster_resources().get("CPU", 0) >= 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    sources = [image_server.url(f"/ok/{8000 + i}.jpg") for i in range(60)]
    engine = download_engine(params_config("cluster", ClusterConfig, engine="ray", address="", node_wait_s=120.0))
    reports = []
    run = threading.Thread(target=lambda: reports.append(download(
        write_list(tmp_path, sources), tmp_path / "images", tmp_path / "report.json",
        dataclasses.replace(FAST, samples_per_shard=10), engine=engine)), daemon=True)
    run.start()
    try:
        time.sleep(3.0)
        assert run.is_alive() and not list((tmp_path / "images").glob("*.tar"))  # waiting for a node
        # Ray adds a node from the main thread only (it sets signal handlers)
        ray_cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE_BYTES)
        run.join(timeout=300)
    finally:
        ray_cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE_BYTES)
        ray_cluster.wait_for_nodes()
    report = reports[0]
    assert report["stored"] == 60 and report["shards"] == 6
    assert (report["run"]["nodes"], report["run"]["attempts"], report["run"]["retries"]) == (1, 2, 0)


def test_the_records_build_stops_when_no_node_can_transcode(ray_cluster, tmp_path):
    """With every worker node gone, the records build's map step stops after `node_wait_s` with one line."""
    import ray

    from mlimages.cluster.config import ClusterConfig
    from mlimages.cluster.mappers import ClusterLost
    from mlimages.cluster.records_engine import ray_map_ordered
    from tests.factories import params_config

    for node in ray_cluster.worker_nodes.copy():
        ray_cluster.remove_node(node, allow_graceful=True)
    deadline = time.monotonic() + RAY_NOTICES_S
    while ray.cluster_resources().get("CPU", 0) >= 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    cluster = params_config("cluster", ClusterConfig, engine="ray", address="", node_wait_s=NODE_WAIT_S,
                            records_chunk=4)
    started = time.monotonic()
    try:
        with pytest.raises(ClusterLost) as lost:
            list(ray_map_ordered(str.upper, [f"image-{i}" for i in range(20)], 1, cluster))
        waited = time.monotonic() - started
    finally:
        for _ in range(2):  # the next tests find two workers again
            ray_cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE_BYTES)
        ray_cluster.wait_for_nodes()
    assert NODE_WAIT_S <= waited <= NODE_WAIT_S + RAY_NOTICES_S
    assert "\n" not in str(lost.value) and "no Ray node could run a task for 5 s" in str(lost.value)
    assert "the split was not written" in str(lost.value)

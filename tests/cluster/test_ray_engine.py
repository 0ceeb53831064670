"""The Ray engine on a head and two worker nodes: same samples, statuses and records as the local engine;
the stage scripts; the per-host cap and pause held across nodes; a worker node lost mid-download."""

from __future__ import annotations

import dataclasses
import functools
import logging
import tarfile
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlimages.cluster.config import ClusterConfig
from mlimages.cluster.engines import download_engine
from mlimages.cluster.mappers import records_mapper
from mlimages.download import download
from mlimages.download.tarstream import scan_samples
from tests.download.fault_server import FAST, Outcome, make_jpeg
from tests.cluster.conftest import WORKER_CPUS
from tests.cluster.lists import (
    digest, fault_list, fault_routes, keeping_bar, records_of, run, stored_sources, write_list,
)
from tests.factories import params_config, write_params

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAY = params_config("cluster", ClusterConfig, engine="ray", address="")
ONE_SHARD, TWO_SHARDS = (dataclasses.replace(RAY, shards_per_task=n) for n in (1, 2))  # more tasks than CPUs
LOCAL = params_config("cluster", ClusterConfig)


def test_ray_download_and_records_match_the_local_engine(ray_cluster, image_server, tmp_path, hierarchy_file):
    from mlimages.records.build import build_ml_images
    from mlimages.records.ordered_map import map_ordered
    from mlimages.records.config import RecordsConfig

    fault_routes(image_server)
    sources = fault_list(image_server, 300)
    local = run(tmp_path / "local", sources, download_engine(LOCAL), samples_per_shard=25, processes=2)
    image_server.hits.clear()  # the flaky routes fail their first hit again
    on_ray = run(tmp_path / "ray", sources, download_engine(RAY), samples_per_shard=25)
    assert sorted(on_ray.statuses) == list(range(1, 301))  # one record per input line
    assert digest(on_ray) == digest(local)
    assert {on_ray.status(i + 1) for i in range(3, 300, 7)} >= {"not_found", "ok", "not_image"}
    assert on_ray.status(21) == "duplicate"
    assert {k: v for k, v in on_ray.report.items() if k != "run"} == {k: v for k, v in local.report.items()
                                                                       if k != "run"}
    assert not (tmp_path / "ray" / "images" / ".attempts").exists()
    ran = on_ray.report["run"]  # what ran, not the local process count: 12 shards, 4 per task, 2 CPUs per node
    assert (ran["engine"], ran["nodes"], ran["attempts"], ran["retries"]) == ("ray", 2, 3, 0)
    assert 2 <= ran["processes"] <= 3
    assert local.report["run"]["processes"] == 2 and "nodes" not in local.report["run"]

    config = params_config("records", RecordsConfig, min_shards=3)
    build_ml_images(tmp_path / "local" / "images", hierarchy_file, tmp_path / "rec-local", config, mapper=map_ordered)
    build_ml_images(tmp_path / "ray" / "images", hierarchy_file, tmp_path / "rec-ray", config,
                    mapper=records_mapper(dataclasses.replace(RAY, records_chunk=16)))
    local_records, ray_records = records_of(tmp_path / "rec-local"), records_of(tmp_path / "rec-ray")
    assert len([name for name in ray_records if name.endswith(".tfrecord")]) >= 3
    assert ray_records == local_records


def test_attempts_leave_no_thread_behind_in_the_worker_processes(ray_cluster, image_server, tmp_path):
    """A Ray worker runs shard after shard: a thread left per attempt would grow it with the list."""
    import ray

    from mlimages.cluster.connect import WORKER_ENV

    fault_routes(image_server)
    sources = [image_server.url(f"/ok/{i}.jpg") for i in range(2000, 2120)]
    on_ray = run(tmp_path / "ray", sources, download_engine(ONE_SHARD), samples_per_shard=10)
    assert on_ray.report["run"]["attempts"] == 12

    def threads(hold_s: float) -> tuple[bool, list[str]]:  # a closure: sent by value
        import sys

        time.sleep(hold_s)  # hold the CPU, so the probes spread over the worker processes
        return "mlimages.cluster.shard_task" in sys.modules, [t.name for t in threading.enumerate()]

    probe = ray.remote(num_cpus=1, runtime_env=WORKER_ENV)(threads)  # the attempts' pool of worker processes
    seen = ray.get([probe.remote(0.5) for _ in range(2 * WORKER_CPUS)])
    ran_attempts = [names for ran, names in seen if ran]
    assert ran_attempts, "no probe landed in a worker process that ran an attempt"
    assert all(not [name for name in names if "releases" in name] for names in ran_attempts), ran_attempts


def test_the_stage_scripts_run_on_ray_from_the_params(ray_cluster, image_server, tmp_path, hierarchy_file):
    """download_images then build_tfrecords, unchanged DVC commands, `cluster: {engine: ray}` in the params."""
    from tests.pipelines import load_pipeline

    settings = dataclasses.replace(FAST, samples_per_shard=10)
    download_section = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()}
    params = write_params(tmp_path / "params.yaml", download=download_section, cluster={"engine": "ray", "address": ""})
    list_path = write_list(tmp_path, [image_server.url(f"/ok/{i}.jpg") for i in range(40)])
    assert load_pipeline("download_images").main(["--list", str(list_path), "--out", str(tmp_path / "images"),
                                                  "--report", str(tmp_path / "d.json"), "--params", str(params)]) == 0
    assert Outcome(tmp_path / "images", {}).samples.keys() == set(range(1, 41))
    assert load_pipeline("build_tfrecords").main(["--images", str(tmp_path / "images"), "--hierarchy",
                                                  str(hierarchy_file), "--out", str(tmp_path / "records"),
                                                  "--report", str(tmp_path / "r.json"), "--params", str(params)]) == 0
    assert '"written": 40' in (tmp_path / "r.json").read_text(encoding="utf-8")


def test_relative_paths_reach_workers_that_run_elsewhere(ray_cluster, image_server, tmp_path, monkeypatch,
                                                         hierarchy_file):
    """A DVC stage names its files relative to the repository; a worker runs in the folder its node was
    started in (here the suite's), not the driver's: the download's shards still land in the driver's
    folder, and the records build's tasks read the images from there."""
    from mlimages.records.build import build_ml_images
    from mlimages.records.config import RecordsConfig

    write_list(tmp_path, [image_server.url(f"/ok/{i}.jpg") for i in range(9400, 9420)])
    monkeypatch.chdir(tmp_path)
    report = download(Path("list.tsv"), Path("images"), Path("report.json"),
                      dataclasses.replace(FAST, samples_per_shard=10), engine=download_engine(RAY))
    assert report["stored"] == 20 and set(Outcome(tmp_path / "images", {}).samples) == set(range(1, 21))
    built = build_ml_images(Path("images"), hierarchy_file, Path("records"), params_config("records", RecordsConfig),
                            mapper=records_mapper(dataclasses.replace(RAY, records_chunk=4)))
    assert (built["written"], built["skipped"]) == (20, 0)


def test_an_image_gone_before_its_task_ran_is_the_local_engines_error(ray_cluster, tmp_path):
    """The task, not the driver, reads the image: a read that fails on a node is the local engine's one-line
    `InputError`, not Ray's wrapped traceback."""
    from mlimages.errors import InputError
    from mlimages.records.config import RecordsConfig
    from mlimages.records.image_shards import ImageSample, StoredImage
    from mlimages.records.ordered_map import map_ordered
    from mlimages.records.transcode import transcode_sample

    gone = ImageSample("00000.tar:k", 1, "", StoredImage(str(tmp_path / "00000.tar"), 512, 100), (0,), (1.0,))
    work = functools.partial(transcode_sample, config=params_config("records", RecordsConfig))
    for mapper in (map_ordered, records_mapper(RAY)):
        with pytest.raises(InputError) as caught:
            list(mapper(work, [gone], 2))
        assert type(caught.value) is InputError and caught.value.where == str(tmp_path / "00000.tar")
        assert str(caught.value).endswith("cannot read the image of 00000.tar:k (No such file or directory); was "
                                          "the folder changed while the build ran?")


def test_a_bad_line_stops_the_ray_run_with_the_local_engines_error(ray_cluster, image_server, tmp_path):
    """Line 33 (shard 3, in the first Ray task's shards 0-3) has a label that is not a class number: the same
    one-line error as locally, no shard after it committed; with the line fixed, the rerun fetches nothing
    that was stored (the attempt's folder is kept for it)."""
    from mlimages.errors import InputError

    errors, config = {}, dataclasses.replace(FAST, samples_per_shard=10)
    for offset, (name, engine) in enumerate((("local", download_engine(LOCAL)), ("ray", download_engine(RAY)))):
        folder, paths = tmp_path / name, [f"/ok/{9000 + 100 * offset + i}.jpg" for i in range(60)]
        list_path = write_list(folder, [image_server.url(path) for path in paths])
        good = list_path.read_text(encoding="utf-8")
        lines = good.splitlines(keepends=True)
        lines[32] = lines[32].split("\t")[0] + "\tcat:1\n"
        list_path.write_text("".join(lines), encoding="utf-8")
        with pytest.raises(InputError) as error:
            download(list_path, folder / "images", folder / "report.json", config, engine=engine)
        errors[name] = (error.value.message, error.value.where.replace(str(folder), "FOLDER"))
        assert (folder / "images" / "00000.tar").exists() and not (folder / "images" / "00003.tar").exists()
        list_path.write_text(good, encoding="utf-8")
        download(list_path, folder / "images", folder / "report.json", config, engine=engine)
        assert set(Outcome(folder / "images", {}).samples) == set(range(1, 61))
        assert max(image_server.hits[path] for path in paths) == 1
    assert errors["ray"] == errors["local"] and "33" in errors["ray"][1]


def test_cluster_wide_cap_on_one_host(ray_cluster, image_server, tmp_path, caplog):
    """Four tasks on two nodes, four fetch workers each, one host with a fixed cap of 3."""
    server = image_server
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def counted(handler, hits):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        handler.send_body(200, make_jpeg(zlib.crc32(handler.path.encode()) % 1000))

    server.routes["/c/"] = counted
    caplog.set_level(logging.INFO, logger="mlimages.cluster")
    outcome = run(tmp_path, [server.url(f"/c/{i}.jpg") for i in range(120)], download_engine(TWO_SHARDS),
                  samples_per_shard=15, concurrency=4, per_host_concurrency=3, per_host_concurrency_min=3,
                  per_host_concurrency_max=3)
    assert outcome.report["stored"] == 120
    assert state["most"] == 3  # reached, never passed, with 16 fetch workers on the cluster
    assert "on 2 nodes" in caplog.text


def test_a_503_pauses_the_host_on_every_node(ray_cluster, image_server, tmp_path, caplog):
    """One 503 with Retry-After: 2 from a host that tasks on both nodes are fetching: no node asks it
    again until the pause is over (requests already sent when the 503 left are allowed a grace)."""
    server, arrivals, refused = image_server, [], []

    def route(handler, hits):
        now = time.monotonic()
        arrivals.append(now)
        if len(arrivals) == 30:
            refused.append(now)
            return handler.send_body(503, b"", "text/plain", {"Retry-After": "2"})
        time.sleep(0.02)
        handler.send_body(200, make_jpeg(zlib.crc32(handler.path.encode()) % 1000))

    server.routes["/p/"] = route
    caplog.set_level(logging.INFO, logger="mlimages.cluster")
    outcome = run(tmp_path, [server.url(f"/p/{i}.jpg") for i in range(160)], download_engine(TWO_SHARDS),
                  samples_per_shard=20, concurrency=3, max_retry_after_s=5.0)
    assert outcome.report["stored"] == 160 and refused
    paused = [t - refused[0] for t in arrivals if 0.5 < t - refused[0] < 1.9]
    assert paused == []
    assert "on 2 nodes" in caplog.text


def test_a_worker_node_lost_mid_download(ray_cluster, image_server, tmp_path, caplog):
    """Every reachable image stored once, every line recorded once, archives whole, no temporary files."""
    fault_routes(image_server)
    sources = [image_server.url(f"/slow/{i}.jpg" if i % 9 else f"/missing/{i}.jpg") for i in range(320)]
    out = tmp_path / "images"
    victim = ray_cluster.list_all_nodes()[-1]

    def remove_when_started():  # four attempts run, two on each node: the victim surely holds some
        while len(list(out.glob(".attempts/*/*.tar.partial"))) < 3:
            time.sleep(0.02)
        ray_cluster.remove_node(victim, allow_graceful=False)

    killer = threading.Thread(target=remove_when_started, daemon=True)
    killer.start()
    caplog.set_level(logging.WARNING, logger="mlimages.cluster")
    bars = []
    try:
        outcome = run(tmp_path, sources, keeping_bar(download_engine(TWO_SHARDS), bars), samples_per_shard=40,
                      concurrency=1)
    finally:
        killer.join(timeout=60)
        ray_cluster.add_node(num_cpus=2, object_store_memory=80 * 2**20)  # the next module finds two workers
    assert "lost" in caplog.text  # an attempt was retried on the other node
    assert bars[0].bar.n == 320  # the retries' lines counted once on the bar, as in the report
    ran = outcome.report["run"]
    assert ran["retries"] >= 1 and ran["attempts"] == 4 + ran["retries"] and ran["nodes"] == 2
    assert sorted(outcome.statuses) == list(range(1, 321))
    reachable = {i + 1 for i in range(320) if i % 9}
    assert set(outcome.samples) == reachable  # Outcome refuses a sample stored twice
    assert {line for line, r in outcome.statuses.items() if r["status"] == "ok"} == reachable
    for archive in sorted(out.glob("*.tar")):
        with archive.open("rb") as handle:
            samples, end = scan_samples(handle)
        assert end + 1024 == archive.stat().st_size  # complete: the end-of-archive blocks follow the last sample
        with tarfile.open(archive) as readable:
            assert len(readable.getmembers()) == 2 * len(samples)
    assert sorted(p.name for p in out.iterdir() if not p.name[:5].isdigit()) == ["fingerprint.json"]
    assert not [p for p in out.iterdir() if p.name.endswith((".partial", ".tmp"))]


def test_a_rerun_after_the_whole_cluster_stopped_resumes_per_sample(image_server, tmp_path):
    """The stage on a private Ray (`address: ""`), killed with its whole cluster mid-run, then run again."""
    import os
    import signal
    import subprocess
    import sys

    fault_routes(image_server)
    settings = dataclasses.replace(FAST, samples_per_shard=20, concurrency=2)
    section = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()}
    params = write_params(tmp_path / "params.yaml", download=section, cluster={"engine": "ray", "address": ""})
    sources = [image_server.url(f"/slow/{5000 + i}.jpg") for i in range(200)]
    list_path, out = write_list(tmp_path, sources), tmp_path / "images"
    command = [sys.executable, "pipelines/download_images.py", "--list", str(list_path), "--out", str(out),
               "--report", str(tmp_path / "report.json"), "--params", str(params)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while sum(1 for _ in out.glob(".attempts/*/*.tar.partial")) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # some samples stored, the shards unfinished
    os.killpg(process.pid, signal.SIGKILL)  # the driver, its private Ray and every task at once
    process.wait()
    time.sleep(1.0)  # a task that outlived its driver by a moment ends at its next call to the dead coordinator
    assert list(out.glob(".attempts/*/*.tar.partial")), "the kill should have interrupted shards"
    stored_before, hits_before = stored_sources(out), dict(image_server.hits)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = Outcome(out, {})  # refuses a sample stored twice
    assert set(outcome.samples) == set(range(1, 201)) and sorted(outcome.statuses) == list(range(1, 201))
    paths = [urlsplit(url).path for url in stored_before]
    fetched_again = [path for path in paths if image_server.hits[path] > hits_before[path]]
    assert stored_before and not fetched_again  # nothing stored before the kill was fetched again
    assert not (out / ".attempts").exists()



"""Memory of the download against list length and per node, local engine vs Ray engine, at equal work per node.

    python -m benchmarks.bench_cluster --part memory

The list is the download benchmark's mostly failing one (missing local files, every 50th line a
real photo), 20,000 and 200,000 lines. Equal work per node: the local engine with N worker
processes x 32 requests against a Ray worker node with N CPUs running N shard tasks x 32 (the head,
with no CPUs, holds the driver and its coordinator process). Each run is its own process, one after the
other. Read per run: the driver's VmHWM, the largest worker process's VmHWM, and the node's
memory counted once (`cluster_nodes.NodeSampler`: the peak of the summed Pss of the node's
processes; local: the driver and its workers; Ray: raylet, agents, log monitor and workers, the
fixed daemons shown apart). `ray.cluster_utils` runs one log monitor per machine (on the head), so
its worker node is what `ray start --include-log-monitor=False` makes; the log monitor a plain
`ray start` adds is read on the head. Ray 2.60 has no documented option that drops the dashboard
agent or the runtime-env agent of a node.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.cluster_memory import status_mb
from benchmarks.cluster_nodes import NodeSampler, local_node_pids, ray_node_pids
from benchmarks.report import markdown_table

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = 32
STORE_BYTES = 80 * 2**20
LENGTH_RUNS = (("local", 20_000, 1), ("ray", 20_000, 1), ("local", 200_000, 1), ("ray", 200_000, 1))
RUNS = (  # contender, lines, worker processes per node; the length runs twice: a peak varies from run to run
    *LENGTH_RUNS, ("local", 20_000, 2), ("ray", 20_000, 2), *LENGTH_RUNS,
)
DAEMONS = ("raylet", "dashboard agent", "runtime-env agent", "log monitor")


def failing_list(path: Path, photos: list[Path], length: int) -> Path:
    with path.open("w") as handle:
        for i in range(length):
            source = photos[i % len(photos)].as_uri() if i % 50 == 0 else (path.parent / f"gone/{i}.jpg").as_uri()
            handle.write(f"{source}\t1:1\n")
    return path


def memory_child(contender: str, list_path: Path, out: Path, processes: int) -> dict:
    """One run in this process: the download of `list_path`, sampled; its measurements."""
    from benchmarks.download_mixes import repo_download_config
    from benchmarks.download_scale import peak_rss_mb
    from mlimages.cluster.config import ClusterConfig
    from mlimages.cluster.engines import download_engine
    from mlimages.config import load_params
    from mlimages.download import download

    config = dataclasses.replace(repo_download_config(), concurrency=CONCURRENCY, processes=processes, min_side=1)
    engines = dataclasses.replace(load_params("cluster", ClusterConfig, REPO / "params.yaml"),
                                  engine="ray" if contender.startswith("ray") else "local", address="",
                                  tasks_in_flight=processes)
    cluster = start_cluster(processes, contender == "ray-lean") if engines.engine == "ray" else None
    try:
        node = next(iter(cluster.worker_nodes)) if cluster else None
        sampler = NodeSampler((lambda: ray_node_pids(node)) if node else local_node_pids,
                              driver=None if node else os.getpid())
        head = NodeSampler(lambda: ray_node_pids(cluster.head_node)) if cluster else None
        report = download(list_path, out, out.parent / f"{out.name}.json", config, engine=download_engine(engines))
        result = sampler.stop()  # before the workers go (Ray) or after they went (local)
        if head:
            result["head"] = head.stop()
    finally:
        if cluster:
            import ray

            ray.shutdown()
            cluster.shutdown()
    return {**result, "driver_mb": peak_rss_mb(), "driver_end_anon_mb": status_mb().get("RssAnon", 0.0),
            "lines": report["lines"], "stored": report["stored"]}


def start_cluster(cpus: int, lean: bool):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 0, "object_store_memory": STORE_BYTES, "include_dashboard": False})
    extra = {"include_log_monitor": False} if lean else {}
    cluster.add_node(num_cpus=cpus, object_store_memory=STORE_BYTES, **extra)
    cluster.wait_for_nodes()
    return cluster


def bench_memory(env: dict) -> list[dict]:
    """Every run of `RUNS`, each in its own process; the lists are made once."""
    from benchmarks.download_mixes import make_photos

    rows = []
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        photos = make_photos(work, quick=True)
        lists = {length: failing_list(work / f"list_{length}.tsv", photos, length) for length in {r[1] for r in RUNS}}
        for number, (contender, length, processes) in enumerate(RUNS):
            out = work / f"run{number}"
            command = [sys.executable, "-m", "benchmarks.bench_cluster", "--child", f"memory:{contender}",
                       "--list", str(lists[length]), "--out", str(out), "--count", str(processes)]
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
            if done.returncode != 0:
                raise SystemExit(f"{contender} {length} failed:\n{done.stderr[-4000:]}")
            run = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"contender": contender, "length": length, "processes": processes, **run})
            print(contender, length, processes, json.dumps(run), file=sys.stderr)
    return rows


def main_memory() -> None:
    from benchmarks.report import write_section

    load_before = os.getloadavg()
    rows = bench_memory(dict(os.environ))
    body = render_memory(rows, load_before, os.getloadavg())
    write_section("cluster-memory", "Data stages: memory per node, local engine vs Ray engine",
                  "python -m benchmarks.bench_cluster --part memory", body)
    print(body)


def find(rows: list[dict], contender: str, length: int, processes: int) -> dict:
    return find_all(rows, contender, length, processes)[0]


def find_all(rows: list[dict], contender: str, length: int, processes: int) -> list[dict]:
    """Every repeat of a run, in the order they ran."""
    return [r for r in rows if (r["contender"], r["length"], r["processes"]) == (contender, length, processes)]


def bound_mb(processes: int) -> float:
    """The design bound on bodies in memory per node: processes x (concurrency + decode workers) x max body."""
    from benchmarks.download_mixes import repo_download_config
    from mlimages.download.feed import decode_workers

    config = dataclasses.replace(repo_download_config(), processes=processes)
    return processes * (CONCURRENCY + decode_workers(config)) * config.max_body_bytes / 1e6


def length_rows(rows: list[dict]) -> list[list[str]]:
    table = []
    for contender in ("local", "ray"):
        for length, run in [(n, run) for n in sorted({r["length"] for r in rows})
                            for run in find_all(rows, contender, n, 1)]:
            worker = "- (in the driver)" if contender == "local" else (
                f"{run['worker_hwm_mb']:.0f} (reached {run['hwm_at_s']:.0f} s into {run['run_s']:.0f} s)")
            ran = "driver" if contender == "local" else "worker"
            anon, threads = run["end_anon_mb"].get(ran, 0.0), run["end_threads"].get(ran, 0)
            table.append([contender, f"{length:,}", f"{run['stored']:,}", f"{run['driver_mb']:.0f}", worker,
                          f"{run['node_pss_mb']:.0f}", f"{run['driver_end_anon_mb']:.0f}", f"{anon:.0f} / {threads:.0f}"])
    return table


def node_rows(rows: list[dict], length: int) -> list[list[str]]:
    table = []
    for processes in sorted({r["processes"] for r in rows}):
        local, ray = find(rows, "local", length, processes), find(rows, "ray", length, processes)
        roles = ray["roles_pss_mb"]
        daemons = sum(roles.get(name, 0.0) for name in DAEMONS)
        table.append([f"{processes} x {CONCURRENCY}", f"{local['node_pss_mb']:.0f}", f"{ray['node_pss_mb']:.0f}",
                      f"{ray['node_pss_mb'] / local['node_pss_mb']:.2f}",
                      " + ".join(f"{roles.get(name, 0.0):.0f}" for name in DAEMONS[:3]) + f" = {daemons:.0f}",
                      f"{roles.get('worker', 0.0):.0f}", f"{local['worker_hwm_mb'] or local['driver_mb']:.0f}",
                      f"{ray['worker_hwm_mb']:.0f}", f"{bound_mb(processes):.0f}"])
    return table


def growth(rows: list[dict], short: int, long: int) -> str:
    """What each reading did from the short list to the long one, as the mean of the repeats (each repeat in
    brackets); "flat" = under 10% more at 10x the lines."""
    parts = []
    for name, contender, key in (("local driver", "local", "driver_mb"), ("local node", "local", "node_pss_mb"),
                                 ("Ray driver", "ray", "driver_mb"), ("Ray worker", "ray", "worker_hwm_mb"),
                                 ("Ray worker node", "ray", "node_pss_mb")):
        before, after = ([run[key] for run in find_all(rows, contender, n, 1)] for n in (short, long))
        verdict = "flat" if statistics.mean(after) < 1.1 * statistics.mean(before) else "GROWS"
        parts.append(f"{name} {statistics.mean(before):.0f} ({_each(before)}) -> {statistics.mean(after):.0f} "
                     f"({_each(after)}) MB ({verdict})")
    return ", ".join(parts)


def _each(values: list[float]) -> str:
    return ", ".join(f"{value:.0f}" for value in values)


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def targets(rows: list[dict], short: int, long: int) -> str:
    counts = sorted({r["processes"] for r in rows})
    local_worker = find(rows, "local", short, counts[-1])["worker_hwm_mb"]
    ray_worker = find(rows, "ray", short, counts[-1])["worker_hwm_mb"]
    nodes = [(find(rows, "local", short, p)["node_pss_mb"], find(rows, "ray", short, p)["node_pss_mb"]) for p in counts]
    measured = "; ".join(f"{p} x {CONCURRENCY}: Ray {ray:.0f} MB against local {local:.0f} MB ({ray - local:+.0f})"
                         for p, (local, ray) in zip(counts, nodes))
    bounds = " / ".join(f"{bound_mb(p):.0f} + {local:.0f}" for p, (local, _) in zip(counts, nodes))
    within = all(ray <= bound_mb(p) + local for p, (local, ray) in zip(counts, nodes))
    lengths = growth(rows, short, long)
    kept = [_each([run["end_anon_mb"].get("worker", 0.0) for run in find_all(rows, "ray", n, 1)])
            for n in (short, long)]
    return f"""Target: peak memory per node within the local engine's bound:
- per process (VmHWM of the largest worker, {counts[-1]} x {CONCURRENCY}): {met(ray_worker <= local_worker)}, Ray
  {ray_worker:.0f} MB against local {local_worker:.0f} MB: Ray's runtime in every worker process (the layers in
  the section above).
- per node, Pss counted once, at equal work, against the local engine's measured node:
  {met(all(ray <= local for local, ray in nodes))} ({measured}): Ray's fixed daemons on the node come on top
  of the same work. Against the local engine's design bound (bodies in flight + the local node's own memory:
  {bounds} MB): {met(within)}.
- against list length ({short:,} -> {long:,} lines, 1 x {CONCURRENCY}): {met("GROWS" not in lengths)}: {lengths}.
  Anonymous memory left in the Ray worker after the run: {kept[0]} -> {kept[1]} MB."""


def render_memory(rows: list[dict], load_before, load_after) -> str:
    lengths = sorted({r["length"] for r in rows})
    short, long = lengths[0], lengths[-1]
    head = find(rows, "ray", short, 1)["head"]
    log_monitor = head["roles_pss_mb"].get("log monitor", 0.0)
    load = ", ".join(f"{a:.1f}" for a in load_before) + " before; " + ", ".join(f"{a:.1f}" for a in load_after)
    return f"""The download's mostly failing list (missing local files, every 50th line a real photo), concurrency
{CONCURRENCY} per worker process; max body 20 MB. Local = this machine running the local engine (the driver and
its worker processes; with 1 process the driver runs the shards itself). Ray = a head with no CPUs (the
driver's node: driver, its coordinator, GCS, dashboard) and one worker node with as many CPUs as the
local engine has processes, running as many shard tasks x {CONCURRENCY}. Each run in its own process, one after
the other. Node memory = the peak, over samples every 0.25 s, of the summed Pss (/proc/PID/smaps_rollup) of
the node's processes: shared pages counted once. Load average (1, 5, 15 min) {load} after.

Against list length (1 process x {CONCURRENCY} per node, each length run twice; MB; driver and worker = VmHWM):

{markdown_table(["engine", "lines", "stored", "driver", "largest worker", "node (Pss)", "driver RssAnon at the end",
                 "RssAnon / threads at the end in the process that ran the shards"], length_rows(rows))}

Per node, counted once, at equal work ({short:,} lines; MB). Ray's fixed daemons on the worker node are
raylet + dashboard agent + runtime-env agent (each its own peak Pss; the raylet's includes the object store
pages it maps). A worker node started with `ray start` also runs a log monitor ({log_monitor:.0f} MB Pss,
measured on the head here: `ray.cluster_utils` starts one per machine); `ray start --include-log-monitor=False`
drops it (worker output then stays in the node's log files). The head here: {head['node_pss_mb']:.0f} MB
Pss without the driver.

{markdown_table(["work per node", "local node", "Ray worker node", "Ray / local", "Ray daemons", "Ray workers",
                 "local largest worker (VmHWM)", "Ray largest worker (VmHWM)", "design bound on bodies"],
                node_rows(rows, short))}

{targets(rows, short, long)}
"""

"""What a download worker process holds before its first shard, Ray worker against local worker, in layers.

The Ray worker's layers are read by probe tasks pinned to one worker node, run one after the other
so they land in the same worker process: an idle worker (Ray's runtime and interpreter), then the
same worker once it has deserialized a task argument (Ray then builds the job's serialization
context, which imports every serialization add-on it finds installed: pydantic, starlette, pyarrow),
then after importing the task path of the download engine (`mlimages.cluster.shard_task`). The
local worker's one layer is a spawned process that imports what `engines.work_in_process` needs.
Every figure is VmRSS (resident), split into anonymous memory and file-backed pages (shared
libraries, shared between the processes of a node); the peaks (VmHWM) come from the runs.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

FIELDS = ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads")


def status_mb(pid: int | str = "self") -> dict[str, float]:
    """The memory lines of /proc/PID/status, in MB, and its thread count (empty when the process is gone)."""
    found = {}
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = text.split(":")[0]
            if name in FIELDS:
                found[name] = int(text.split()[1]) / (1 if name == "Threads" else 1024)
    except OSError:
        pass
    return found


def ray_worker_layers() -> list[dict]:
    """Three probes in one Ray worker process of one worker node: idle, after an argument, after our imports."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from mlimages.cluster.connect import WORKER_ENV

    def probe(argument=None, ours: bool = False) -> dict:  # sent by value: the workers cannot import benchmarks/
        import sys

        if ours:
            import mlimages.cluster.shard_task  # noqa: F401
        found = {"pid": os.getpid(), "pyarrow": "pyarrow" in sys.modules, "modules": len(sys.modules)}
        for text in Path("/proc/self/status").read_text().splitlines():
            if text.split(":")[0] in FIELDS[:4]:  # the memory lines
                found[text.split(":")[0]] = int(text.split()[1]) / 1024
        return found

    node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1)
    remote = ray.remote(num_cpus=1, runtime_env=WORKER_ENV)(probe).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
    layers = [ray.get(remote.remote()), ray.get(remote.remote(b"an argument")),
              ray.get(remote.remote(b"an argument", True))]
    if len({layer["pid"] for layer in layers}) != 1:
        raise SystemExit("the memory probes ran in different Ray worker processes; run the benchmark again")
    return layers


def local_probe(results) -> None:
    import sys

    import mlimages.download.engines  # noqa: F401 - the local worker's target module
    import mlimages.download.task  # noqa: F401 - what its arguments unpickle into

    results.put({"pid": os.getpid(), "modules": len(sys.modules), **status_mb()})


def local_worker_layer() -> dict:
    """A spawned process with the local worker's imports (it starts as `engines.run_local` starts its workers)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=local_probe, args=(results,))
    process.start()
    layer = results.get(timeout=120)
    process.join()
    return layer


def ray_node_peak_mb(node) -> float:
    """Peak memory of one Ray worker node: the VmHWM of its raylet, the raylet's children (workers,
    agents) and the node's other processes, added up (shared pages counted in each process)."""
    pids = {info.process.pid for infos in node.all_processes.values() for info in infos}
    pids |= children_of({info.process.pid for info in node.all_processes.get("raylet", [])})
    return sum(status_mb(pid).get("VmHWM", 0.0) for pid in pids)


def children_of(parents: set[int]) -> set[int]:
    """The processes whose parent is one of `parents` (from /proc: Ray's workers are its raylets' children)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent in parents:
                children.add(int(entry.name))
    return children


def layer_rows(local: dict, ray: dict) -> list[list[str]]:
    """The benchmark table's rows: what a download worker holds, layer by layer (the probes above), then its peak."""
    ray_layers, local_layer = ray["layers"], local["layers"][0]
    return [["a worker before its first shard (interpreter, runtime; local: with our modules)",
             mb(local_layer), mb(ray_layers[0])],
            ["+ Ray's serialization add-ons (pydantic, starlette, pyarrow), once it got a task argument", "-",
             mb(ray_layers[1])],
            ["+ the download task's modules (`mlimages.cluster.shard_task`)", "-", mb(ray_layers[2])],
            ["peak during the download (VmHWM)", f"{local['workers_mb']:.0f}", f"{ray['workers_mb']:.0f}"]]


def mb(layer: dict) -> str:
    return f"{layer['VmRSS']:.0f} ({layer['RssAnon']:.0f} + {layer['RssFile']:.0f})"


def ray_worker_peak_mb(cluster) -> float:
    """The largest VmHWM among the worker processes of this cluster's worker nodes (children of their raylets)."""
    raylets = {node.all_processes["raylet"][0].process.pid for node in cluster.worker_nodes}
    return max((status_mb(pid).get("VmHWM", 0.0) for pid in children_of(raylets)), default=0.0)


def local_workers_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

"""The Ray engine against the local engine on this machine, side by side: download and records build.

    python -m benchmarks.bench_cluster [--quick]
    python -m benchmarks.bench_cluster --part memory   (memory per node and against list length: cluster_lengths)

Download: the download benchmark's latency-bound "spread" mix (100 ms round trips plus two for a
new TLS connection, 15% 404s, 2% URLs that never answer, 16 loopback hosts) with equal
concurrency: the local engine on 2 worker processes x `concurrency`, the Ray engine on a head and
two 1-CPU worker nodes (2 tasks in flight x `concurrency`, each task `shards_per_task` shards of the
params). Each contender runs in its own
process and downloads the list twice into fresh folders: the first run pays the start of worker
processes (Ray: the workers import the code when their first task arrives), the second is the
engine's steady state. Records: the same image shard built into records by 2 threads (local) and
by Ray tasks on the two worker nodes (2 chunks in flight); the outputs must be byte-identical.

Peak memory (VmHWM): the contender's driver process, and its largest worker (a local worker
process; a Ray worker process of this cluster, found under its raylets). The contenders run one
after the other, alternating, best of `--repeats`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.cluster_cpu import tree_cpu_s  # noqa: E402
from benchmarks.cluster_memory import (  # noqa: E402
    layer_rows, local_worker_layer, local_workers_peak_mb, ray_node_peak_mb, ray_worker_layers, ray_worker_peak_mb,
)
from benchmarks.download_mixes import latency_bound_s, make_mix, make_photos, repo_download_config  # noqa: E402
from benchmarks.download_scale import (  # noqa: E402
    BENCH_ATTEMPTS, BENCH_BACKOFF_S, BENCH_DEADLINE_S, peak_rss_mb, spread_list, tls_env,
)
from benchmarks.download_server import start_server, write_certificate  # noqa: E402
from benchmarks.report import markdown_table, write_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = 32
STORE_BYTES = 80 * 2**20


def download_config(count: int):
    return dataclasses.replace(
        repo_download_config(), concurrency=CONCURRENCY, processes=2, deadline_s=BENCH_DEADLINE_S,
        read_timeout_s=BENCH_DEADLINE_S, max_attempts=BENCH_ATTEMPTS, backoff_base_s=BENCH_BACKOFF_S,
        samples_per_shard=max(10, count // 8), min_side=1)


def start_cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 0, "object_store_memory": STORE_BYTES, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=STORE_BYTES)
    cluster.wait_for_nodes()
    return ray, cluster


def child(args: argparse.Namespace) -> dict:
    """One contender: two downloads into fresh folders, then the records build; its measurements."""
    from mlimages.cluster.config import ClusterConfig
    from mlimages.config import load_params

    ray, cluster = start_cluster() if args.child == "ray" else (None, None)
    engines = dataclasses.replace(load_params("cluster", ClusterConfig, REPO / "params.yaml"), engine=args.child,
                                  address="", tasks_in_flight=2)
    try:
        result = {"layers": ray_worker_layers() if cluster else [local_worker_layer()]}
        result.update(child_download(args, engines))
        result["download_workers_mb"] = ray_worker_peak_mb(cluster) if cluster else local_workers_peak_mb()
        result["download_node_mb"] = max(ray_node_peak_mb(node) for node in cluster.worker_nodes) if cluster else 0.0
        result["download_driver_mb"] = peak_rss_mb()
        result.update(child_records(args, engines))
        result["records_workers_mb"] = ray_worker_peak_mb(cluster) if cluster else 0.0
    finally:
        if cluster:
            ray.shutdown()
            cluster.shutdown()
    return result


def child_download(args: argparse.Namespace, engines) -> dict:
    from mlimages.cluster.engines import download_engine
    from mlimages.download import download

    config, out, runs = download_config(args.count), Path(args.out), []
    for number in range(2):
        started, cpu = time.monotonic(), tree_cpu_s()
        report = download(Path(args.list), out / f"dl{number}", out / f"dl{number}.json", config,
                          engine=download_engine(engines))
        runs.append({"wall_s": time.monotonic() - started, "cpu_s": tree_cpu_s() - cpu, "stored": report["stored"],
                     "lines": report["lines"]})
    return {"downloads": runs}


def child_records(args: argparse.Namespace, engines) -> dict:
    from mlimages.cluster.mappers import records_mapper
    from mlimages.records.build import build_ml_images
    from mlimages.config import load_params
    from mlimages.records.config import RecordsConfig

    out = Path(args.out) / "records"
    params = load_params("records", RecordsConfig, REPO / "params.yaml")
    config = dataclasses.replace(params, num_workers=2, min_shards=2)
    started, cpu = time.monotonic(), tree_cpu_s()
    report = build_ml_images(Path(args.images), Path(args.hierarchy), out, config, mapper=records_mapper(engines))
    return {"records_s": time.monotonic() - started, "records_cpu_s": tree_cpu_s() - cpu,
            "records_written": report["written"],
            "records_driver_mb": peak_rss_mb(), "records_digest": digest_folder(out)}


def digest_folder(folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def run_child(contender: str, work: Path, paths: dict, count: int, env: dict) -> dict:
    out = Path(tempfile.mkdtemp(dir=work, prefix=contender))
    command = [sys.executable, "-m", "benchmarks.bench_cluster", "--child", contender, "--out", str(out),
               "--count", str(count)] + [f"--{name}={value}" for name, value in paths.items()]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{contender} contender failed:\n{done.stderr[-4000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), **sizes(out)}


def sizes(out: Path) -> dict:
    """Bytes per stored image (download shards, with their status files) and per record (records folder)."""
    stored = json.loads((out / "dl1.json").read_text())["stored"]
    shard_bytes = sum(p.stat().st_size for p in (out / "dl1").iterdir() if p.name[:5].isdigit())
    index = json.loads((out / "records" / "index.json").read_text())
    return {"bytes_per_image": shard_bytes / stored, "bytes_per_record": index["bytes"] / index["count"]}


def prepare(work: Path, quick: bool, count: int, images: int) -> tuple[dict, list[str]]:
    """The list, the image shard and the hierarchy the contenders share."""
    from benchmarks.bench_records import load_label_sets, load_photos, write_image_shard

    kinds = make_mix("spread", count)
    server_photos = make_photos(work, quick)
    (work / "shards").mkdir()
    photos, _ = load_photos()
    write_image_shard(work / "shards" / "00000.tar", photos, images, load_label_sets())
    hierarchy = work / "hierarchy.txt"
    hierarchy.write_text("category_index\tcategory_id\tindex_of_parent_category\tcategory name\n"
                         + "".join(f"{i}\tn{i:08d}\t-1\tc{i}\n" for i in range(11_166)))
    return {"images": work / "shards", "hierarchy": hierarchy, "photos": server_photos}, kinds


def bench(quick: bool, repeats: int) -> tuple[dict, dict, dict]:
    """Run the contenders alternately; returns the setup and each contender's best runs."""
    count, images = (600, 96) if quick else (1500, 960)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        inputs, kinds = prepare(work, quick, count, images)
        certificate = write_certificate(work)
        server, base_url = start_server(inputs.pop("photos"), 0.1, 30.0, 2, certificate)
        inputs["list"] = spread_list(work / "spread.tsv", base_url, kinds)
        runs: dict[str, list[dict]] = {"local": [], "ray": []}
        try:
            for _ in range(repeats):
                for contender in runs:
                    runs[contender].append(run_child(contender, work, inputs, count, tls_env(certificate)))
        finally:
            server.terminate()
    records = yaml.safe_load((REPO / "params.yaml").read_text())["records"]
    cluster = yaml.safe_load((REPO / "params.yaml").read_text())["cluster"]
    setup = {"count": count, "images": images, "repeats": repeats, "load_before": load_before,
             "shards_per_task": cluster["shards_per_task"], "records_chunk": cluster["records_chunk"],
             "shorter_side": records["shorter_side"], "jpeg_quality": records["jpeg_quality"],
             "load_after": os.getloadavg(), "bound_s": latency_bound_s(kinds, "ours", 2 * CONCURRENCY)}
    return setup, best(runs["local"]), best(runs["ray"])


def best(runs: list[dict]) -> dict:
    """The fastest time of each measurement over the repeats (the machine is shared: noise only adds)."""
    first = runs[0]
    return {"cold_s": min(r["downloads"][0]["wall_s"] for r in runs),
            "warm_s": min(r["downloads"][1]["wall_s"] for r in runs),
            "cold_cpu_s": min(r["downloads"][0]["cpu_s"] for r in runs),
            "warm_cpu_s": min(r["downloads"][1]["cpu_s"] for r in runs),
            "records_cpu_s": min(r["records_cpu_s"] for r in runs),
            "stored": first["downloads"][1]["stored"], "lines": first["downloads"][1]["lines"],
            "records_s": min(r["records_s"] for r in runs), "written": first["records_written"],
            "digests": {r["records_digest"] for r in runs},
            "driver_mb": max(r["download_driver_mb"] for r in runs),
            "workers_mb": max(r["download_workers_mb"] for r in runs),
            "records_driver_mb": max(r["records_driver_mb"] for r in runs),
            "records_workers_mb": max(r["records_workers_mb"] for r in runs),
            "node_mb": max(r["download_node_mb"] for r in runs), "layers": runs[0]["layers"],
            "bytes_per_image": first["bytes_per_image"], "bytes_per_record": first["bytes_per_record"]}


def time_rows(local: dict, ray: dict) -> list[list[str]]:
    rows = []
    for label, key in (("download, first run (worker start-up included)", "cold_s"),
                       ("download, second run (steady state)", "warm_s"), ("records build", "records_s")):
        unit = local["written"] if key == "records_s" else local["stored"]
        cpu = key.replace("_s", "_cpu_s")
        rows.append([label, f"{local[key]:.1f}", f"{ray[key]:.1f}", f"{unit / local[key]:.1f}",
                     f"{unit / ray[key]:.1f}", f"{ray[key] / local[key]:.2f}", f"{local[cpu]:.1f}", f"{ray[cpu]:.1f}"])
    return rows


def render(setup: dict, local: dict, ray: dict) -> str:
    rows = time_rows(local, ray)
    memory = [["download", f"{local['driver_mb']:.0f}", f"{local['workers_mb']:.0f}", f"{ray['driver_mb']:.0f}",
               f"{ray['workers_mb']:.0f}"],
              ["records build", f"{local['records_driver_mb']:.0f}", "-", f"{ray['records_driver_mb']:.0f}",
               f"{ray['records_workers_mb']:.0f}"]]
    identical = len(local["digests"] | ray["digests"]) == 1
    layers = layer_rows(local, ray)
    load = ", ".join(f"{a:.1f}" for a in setup["load_before"]) + " before; " + ", ".join(
        f"{a:.1f}" for a in setup["load_after"]) + " after"
    return f"""Download: the latency-bound "spread" mix, {setup['count']} lines ({local['stored']} stored), equal
concurrency: local = 2 worker processes x {CONCURRENCY}; Ray = head + two 1-CPU worker nodes, 2 tasks of
{setup['shards_per_task']} shards x {CONCURRENCY}. Round trips alone bound the run at {setup['bound_s']:.1f} s. Records:
{setup['images']} images (the release photos, cycled; one image shard) by 2 local threads vs Ray tasks on the two
worker nodes ({setup['records_chunk']} images per task).
Best of {setup['repeats']}, contenders alternating. **This machine is shared with other work**: load
average (1, 5, 15 min) {load}; its 2 cores also run the loopback server, the raylets and the drivers.

{markdown_table(["run", "local s", "Ray s", "local per s", "Ray per s", "Ray / local time", "local CPU s",
                 "Ray CPU s"], rows)}

CPU s: user + system seconds of the contender's process and every process below it (`cluster_cpu`; Ray: the test
cluster's daemons and workers, the run's coordinator), least over the repeats.

Peak memory (VmHWM, MB):

{markdown_table(["part", "local driver", "local largest worker", "Ray driver", "Ray largest worker"], memory)}

What a download worker process holds (VmRSS, MB: resident = anonymous + file-backed; the file-backed
pages are shared libraries, shared by the processes of a node). A Ray worker node at its peak (raylet,
its workers and agents, each process's VmHWM added up): {ray['node_mb']:.0f} MB.

{markdown_table(["layer", "local worker", "Ray worker"], layers)}

Records byte-identical between the engines (and across repeats): {"yes" if identical else "NO"}.
Storage: {local['bytes_per_image'] / 1e3:.0f} kB per stored image in the download's shards (the server's photos,
0.8-12 MP, stored as fetched), {local['bytes_per_record'] / 1e3:.1f} kB per record (release photos, shorter side
{setup['shorter_side']} px, JPEG quality {setup['jpeg_quality']}).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller list and fewer photos")
    parser.add_argument("--repeats", type=int, default=2)
    for name in ("child", "out", "list", "images", "hierarchy"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--part", choices=["speed", "memory"], default="speed")
    args = parser.parse_args()
    if args.child and args.child.startswith("memory:"):
        from benchmarks.cluster_lengths import memory_child

        print(json.dumps(memory_child(args.child.split(":")[1], Path(args.list), Path(args.out), args.count)))
        return
    if args.part == "memory":
        from benchmarks.cluster_lengths import main_memory

        return main_memory()
    if args.child:
        print(json.dumps(child(args)))
        return
    setup, local, ray = bench(args.quick, args.repeats)
    command = "python -m benchmarks.bench_cluster" + (" --quick" if args.quick else "") + (
        f" --repeats {args.repeats}" if args.repeats != 2 else "")
    write_section("cluster", "Data stages: local engine vs Ray engine", command, render(setup, local, ray))
    print(render(setup, local, ray))


if __name__ == "__main__":
    main()

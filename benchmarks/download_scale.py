"""The download benchmark's scale part: worker processes, default concurrency, adaptive host caps.

    python -m benchmarks.bench_download --part scale [--quick]

1. CPU-bound mix (20 ms round trips, no hangs, mixed image sizes, 16 loopback hosts): images/s and
   CPU per stored image for 1 and 2 worker processes side by side, and the one process's ceiling
   from the time it holds the interpreter lock: a probe thread wakes every millisecond and needs the
   lock to run; the share of wake-ups that waited (> 0.5 ms late) is the share of time the lock
   was held, so one process can store at most images/s / share. A 32-core host runs 32 processes.
2. Latency-bound mixes (100 ms round trips, photos, 16 hosts) at the defaults, and a sweep of the
   per-process `concurrency` that chose the default: share of the round-trip ceiling, peak memory.
3. One host with 3% URLs that never answer, at the defaults (30 s deadline, 3 attempts), beside a
   second host that starts answering 503 mid-run: images/s of the good URLs, and the 503 host's
   request rate before and after it began to refuse.
"""

from __future__ import annotations

import json
import os
import random
import resource
import ssl
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from benchmarks.download_mixes import repo_download_config
from benchmarks.download_server import HOSTS, host_url, start_server, write_certificate
from mlimages.download import download

BENCH_ATTEMPTS, BENCH_DEADLINE_S, BENCH_BACKOFF_S = 2, 2.0, 0.2  # the latency mixes' own settings
SWEEP = [16, 32, 64, 128]


class LockProbe:
    """Estimates the share of time this process's interpreter lock is held (see the module docstring)."""

    def __init__(self):
        self.late = self.total = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            start = time.perf_counter()
            time.sleep(0.001)
            self.late += time.perf_counter() - start > 0.0015
            self.total += 1

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.late / max(1, self.total)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1]) / 1024
    return 0.0


def child_scale(list_path: Path, out: Path, overrides: dict, probe: bool) -> dict:
    """One contender, in its own process: a download with the defaults plus `overrides`; its measurements."""
    config = replace(repo_download_config(), min_side=1, **overrides)
    lock = LockProbe() if probe else None
    start_wall, start_cpu, start_children = time.monotonic(), time.process_time(), children_cpu_s()
    report = download(list_path, out, out.parent / f"{out.name}.json", config)
    wall = time.monotonic() - start_wall
    cpu = time.process_time() - start_cpu + children_cpu_s() - start_children
    children_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"urls": report["lines"], "stored": report["stored"], "wall_s": wall, "cpu_s": cpu,
            "peak_mb": peak_rss_mb(), "children_peak_mb": children_peak_mb,
            "processes": report["run"]["processes"], "lock_busy": lock.stop() if lock else None}


def spread_list(path: Path, base_url: str, kinds: list[str]) -> Path:
    """One line per kind, the lines spread round-robin over the loopback hosts."""
    with path.open("w") as handle:
        for i, kind in enumerate(kinds):
            handle.write(f"{host_url(base_url, i)}/{kind}/{i}\t1:1\n")
    return path


def bench_cpu_bound(work: Path, photos: list[Path], count: int, run_child) -> list[list]:
    certificate = write_certificate(work)
    server, base_url = start_server(photos, 0.02, 0.0, 2, certificate)
    env = tls_env(certificate)
    list_path = spread_list(work / "cpu.tsv", base_url, ["img"] * count)
    runs = {}
    try:
        for processes in (1, 2):
            overrides = {"processes": processes, "samples_per_shard": max(10, count // 40)}
            runs[processes] = measure_child(run_child, server.pid, list_path, work / f"cpu{processes}", overrides,
                                            env, probe=processes == 1)
    finally:
        server.terminate()
    rows = []
    for processes, run in runs.items():
        rate = run["stored"] / run["wall_s"]
        ceiling = f"{rate / run['lock_busy']:.0f}" if run["lock_busy"] else "-"
        rows.append([processes, f"{run['wall_s']:.1f}", run["stored"], f"{rate:.1f}",
                     f"{rate * runs[1]['wall_s'] / runs[1]['stored']:.2f}x", f"{1000 * run['cpu_s'] / run['stored']:.1f}",
                     f"{(run['cpu_s'] + run['server_cpu_s']) / run['wall_s']:.2f}",
                     f"{run['lock_busy']:.2f}" if run["lock_busy"] is not None else "-", ceiling,
                     f"{run['peak_mb']:.0f} + {run['children_peak_mb']:.0f}"])
    return rows


def bench_latency(work: Path, photos: list[Path], count: int, make_mix, bound_s, run_child) -> list[list]:
    """The latency-bound mixes at the defaults; the 'no timeouts' mix also at the other concurrencies."""
    certificate = write_certificate(work)
    server, base_url = start_server(photos, 0.1, 30.0, 2, certificate)
    env, rows = tls_env(certificate), []
    try:
        for mix in ("no timeouts", "spread", "clustered"):
            kinds = make_mix(mix, count)
            list_path = spread_list(work / f"lat_{mix.replace(' ', '_')}.tsv", base_url, kinds)
            for concurrency in SWEEP if mix == "no timeouts" else [repo_download_config().concurrency]:
                overrides = {"concurrency": concurrency, "deadline_s": BENCH_DEADLINE_S,
                             "read_timeout_s": BENCH_DEADLINE_S, "max_attempts": BENCH_ATTEMPTS,
                             "backoff_base_s": BENCH_BACKOFF_S, "samples_per_shard": max(10, count // 8)}
                out = work / f"lat-{len(rows)}"
                run = measure_child(run_child, server.pid, list_path, out, overrides, env)
                bound = bound_s(kinds, "ours", concurrency * run["processes"])
                rows.append([mix, concurrency, run["processes"], f"{run['wall_s']:.1f}", f"{bound:.1f}",
                             f"{100 * bound / run['wall_s']:.0f}%", f"{run['stored'] / run['wall_s']:.1f}",
                             f"{(run['cpu_s'] + run['server_cpu_s']) / run['wall_s']:.2f}",
                             f"{run['peak_mb']:.0f} + {run['children_peak_mb']:.0f}"])
    finally:
        server.terminate()
    return rows


def bench_one_host(work: Path, photos: list[Path], count: int, quick: bool, run_child) -> dict:
    """Host A: 97% images, 3% never answer; host B (every 5th line): images, then 503 from 5 s on."""
    certificate = write_certificate(work)
    server, base_url = start_server(photos, 0.1, 120.0, 2, certificate, busy_after_s=5.0)
    rng = random.Random(1)
    lines = []
    for i in range(count):
        if i % 5 == 4:
            lines.append(f"{host_url(base_url, 1)}/busy/{i}")
        else:
            lines.append(f"{base_url}/{'slow' if rng.random() < 0.03 else 'img'}/{i}")
    list_path = work / "one_host.tsv"
    list_path.write_text("".join(f"{line}\t1:1\n" for line in lines))
    overrides = {"deadline_s": 5.0, "read_timeout_s": 5.0, "watchdog_s": 30.0} if quick else {}
    try:
        run = measure_child(run_child, server.pid, list_path, work / "one-host", overrides, tls_env(certificate))
        arrivals = fetch_stats(base_url, certificate[0])
    finally:
        server.terminate()
    good = sorted(arrivals.get("img", []))
    busy = sorted(arrivals.get("busy", []))
    switch = busy[0] + 5.0 if busy else 0.0
    return {"run": run, "lines": count, "hanging": sum("/slow/" in line for line in lines),
            "good_rate": len(good) / (good[-1] - good[0]) if len(good) > 1 else 0.0,
            "busy_before": sum(switch - 2 <= t < switch for t in busy) / 2,
            "busy_after": sum(switch + 1 <= t < switch + 3 for t in busy) / 2,
            "busy_later": sum(switch + 3 <= t < switch + 13 for t in busy) / 10,
            "settings": overrides or "defaults"}


def measure_child(run_child, server_pid: int, list_path: Path, out: Path, overrides: dict, env: dict,
                  probe: bool = False) -> dict:
    from benchmarks.bench_download import process_cpu_s

    server_cpu = process_cpu_s(server_pid)
    args = ["--child", "scale", "--list", str(list_path), "--out", str(out), "--overrides", json.dumps(overrides)]
    run = run_child(args + (["--probe"] if probe else []), env)
    run["server_cpu_s"] = process_cpu_s(server_pid) - server_cpu
    return run


def tls_env(certificate: tuple[Path, Path]) -> dict:
    return {**os.environ, "SSL_CERT_FILE": str(certificate[0]), "REQUESTS_CA_BUNDLE": str(certificate[0])}


def fetch_stats(base_url: str, ca_file: Path) -> dict:
    context = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(f"{base_url}/stats", context=context, timeout=30) as response:
        return json.loads(response.read())


__all__ = ["HOSTS", "bench_cpu_bound", "bench_latency", "bench_one_host", "child_scale", "SWEEP"]


def render_scale(setup: dict, cpu: list[list], latency: list[list], one_host: dict) -> str:
    """The section of BENCHMARKS.md for this part."""
    from benchmarks.report import markdown_table

    cpu_header = ["processes", "wall s", "stored", "images/s", "vs 1 process", "CPU ms / stored image (all processes)",
                  "cores busy (with server)", "lock busy share", "1-process lock ceiling images/s", "peak RSS MB (parent + largest child)"]
    lat_header = ["mix", "concurrency per process", "processes", "wall s", "round-trip bound s", "of ceiling", "images/s",
                  "cores busy (with server)", "peak RSS MB (parent + largest child)"]
    run = one_host["run"]
    return f"""{"Quick run (`--quick`)" if setup["quick"] else "Full run"}. The loopback HTTPS server (own process, real TLS) answers on
{HOSTS} loopback addresses, standing for hosts; new connections pay 2 extra round trips. Load average (1 min) before:
{setup["load_before"]:.1f}, after: {setup["load_after"]:.1f}; the machine was shared with other work while this ran,
so CPU-bound ratios are noisy: rerun on a quiet machine for clean figures.

**CPU-bound mix** ({setup["cpu_count"]:,} URLs, all images of mixed sizes ({setup["cpu_photos"]}), 20 ms round trips,
concurrency {repo_download_config().concurrency} per process):

{markdown_table(cpu_header, cpu)}

"Lock busy share" is measured in the single process by a probe thread that needs the interpreter lock every
millisecond (a wake-up more than 0.5 ms late waited for it); the single process's ceiling is its images/s divided by
that share: the most one interpreter can store however many cores it has. A host with N cores runs N processes
(the default), each with its own lock; the shared part is the coordinator: one round trip to take a host slot per
request (slots go back in batches).

**Latency-bound mixes** ({setup["latency_count"]:,} URLs each, photos of 0.8-12 MP, 100 ms round trips, 85% images,
15% 404s, 2% silent URLs in the last two mixes; the mixes' own 2 s deadline and 2 attempts; everything else at the
defaults, with `concurrency` swept on the first mix). "Round-trip bound" is the time the round trips and timeouts
alone impose with concurrency x processes requests in flight (CPU taken as free); "of ceiling" is bound / wall:

{markdown_table(lat_header, latency)}

**One host with 3% silent URLs** ({one_host["lines"]:,} lines: four fifths on host A, of which {one_host["hanging"]}
never answer; every fifth on host B, which answers 503 from 5 s after its first request on). Settings:
{one_host["settings"]}. Stored {run["stored"]:,} images in {run["wall_s"]:.1f} s ({run["stored"] / run["wall_s"]:.1f}
images/s over the whole run, whose end waits for the silent URLs' last attempts); host A's good URLs were requested at
**{one_host["good_rate"]:.1f} per second** from first to last (target: 5x the 5.4 images/s measured on this mix with
the previous fixed cap of 8 per host).
Host B's request rate: {one_host["busy_before"]:.1f}/s in the 2 s before it began refusing, {one_host["busy_after"]:.1f}/s
in the 2 s from 1 s after, {one_host["busy_later"]:.1f}/s over the 10 s after that (its pause is `host_backoff_s`, its
cap halved).
"""

"""Run a download: check the output folder, run this worker's shard tasks on an engine, report.

The checks that concern the whole folder (settings fingerprint, shards past the end of the list)
run here, before any task; each shard task (`task`) then checks its own records against the list,
fetches, and commits its shard. The local engine (`engines.run_local`) spreads the tasks over
`processes` worker processes. In each process the pool has `decode_workers` more workers than
`concurrency`, the cap on requests in flight, so workers decoding what they fetched do not leave
the network idle. Memory per process holds the open shards' status records, one shard's lines, a
body per worker, at most two queued tasks per worker and at most `retries.MAX_WAITING` lines
waiting for a retry, whatever the list length. With Open Images' mirror on, its index is built
here once, before any fetch, and each process opens it read-only (`fallback`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from mlimages.download.config import DownloadConfig
from mlimages.download.engines import run_local
from mlimages.download.fallback import prepare_mirror
from mlimages.download.fingerprint import prepare_output
from mlimages.download.listfile import count_lines, count_wanted_lines
from mlimages.download.progress import Progress
from mlimages.download.staleness import remove_shards_past_end
from mlimages.download.summary import build_report, log_summary, write_report
from mlimages.download.task import ShardTask, TaskSettings
from mlimages.errors import InputError

log = logging.getLogger(__name__)


def download(list_path: Path, out: Path, report_path: Path, config: DownloadConfig, shard_index: int = 0,
             num_shards: int = 1, retry_failures: bool = False, force: bool = False, engine=run_local) -> dict:
    """Download the images of a list into shards of `out`; returns the report (also written).

    Args:
        list_path: the prepared list (`source<TAB>class:confidence ...` per line).
        out: the shard folder, e.g. ``data/images/train``.
        report_path: where the JSON metrics go.
        config: the `download:` params.
        shard_index, num_shards: this worker's part of the shards (shard % num_shards == shard_index).
        retry_failures: also retry permanent failures of earlier runs.
        force: discard what is stale instead of stopping: every shard when the settings changed,
            else only the shards the list no longer matches (see `staleness`).
    """
    if not 0 <= shard_index < num_shards:
        raise InputError(f"--shard-index must be in [0, {num_shards}), got {shard_index}", "command line")
    line_count = count_lines(list_path)
    total = count_wanted_lines(line_count, config.samples_per_shard, shard_index, num_shards)
    prepare_mirror(config)  # a bad metadata CSV stops the run before anything is fetched or changed
    prepare_output(out, config, force)
    remove_shards_past_end(out, list_path, line_count, config.samples_per_shard, shard_index, num_shards, force)
    settings = TaskSettings(config, retry_failures=retry_failures, force=force)
    shard_count = -(-line_count // config.samples_per_shard)
    tasks = [ShardTask(list_path, index, settings, out) for index in range(shard_index, shard_count, num_shards)]
    progress = Progress(total, config.failure_window, config.failure_warning_rate)
    start = time.monotonic()
    try:
        with logging_redirect_tqdm():
            tally = engine(tasks, progress)
    finally:
        progress.close()
    processes = min(config.process_count, len(tasks)) or 1
    report = build_report(tally, time.monotonic() - start, shard_index, num_shards, processes)
    write_report(report, report_path)
    log_summary(report, out)
    return report



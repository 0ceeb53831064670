"""DVC stage download_images: fetch one split's images into shard archives.

    python pipelines/download_images.py --list data/lists/val.tsv --out data/images/val \
        --report reports/download/val.json [--shard-index I --num-shards N] [--retry-failures] [--force]

Rerunning the same command resumes: finished lines are skipped, retryable failures are retried.
The `cluster:` params choose the engine: this machine's processes, or shard tasks on a Ray cluster.
With --force, what is stale is discarded instead of stopping the run: every shard after a change of
the settings in fingerprint.json, else only the shards whose lines changed in the list.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mlimages.cluster.config import ClusterConfig
from mlimages.cluster.engines import download_engine
from mlimages.config import load_params
from mlimages.download import DownloadConfig, download
from mlimages.download.engines import WorkerDied
from mlimages.errors import exit_on_input_error


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", required=True, type=Path, help="prepared list (source<TAB>class:confidence ...)")
    parser.add_argument("--out", required=True, type=Path, help="shard folder, e.g. data/images/train")
    parser.add_argument("--report", required=True, type=Path, help="JSON metrics file")
    parser.add_argument("--shard-index", type=int, default=0, help="this worker's index (with --num-shards)")
    parser.add_argument("--num-shards", type=int, default=1, help="workers sharing the list (every N-th shard each)")
    parser.add_argument("--retry-failures", action="store_true", help="also retry permanent failures")
    parser.add_argument("--force", action="store_true", help="discard stale shards (other settings, or a changed list)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return parser.parse_args(argv)


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_params("download", DownloadConfig, args.params)
    engine = download_engine(load_params("cluster", ClusterConfig, args.params))
    try:
        report = download(args.list, args.out, args.report, config, shard_index=args.shard_index,
                          num_shards=args.num_shards, retry_failures=args.retry_failures, force=args.force,
                          engine=engine)
    except WorkerDied as error:
        logging.error("download incomplete: %s", error)
        return 1
    if report["lines"] and not report["stored"]:
        logging.error("no image could be stored (see %s/*.jsonl for why); is the network up?", args.out)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""dataset_stats stage: the paper's statistics table and plots, from the built TFRecords.

    python pipelines/dataset_stats.py --train data/tfrecords/ml-images/train --val data/tfrecords/ml-images/val \
        [--finetune data/tfrecords/imagenet] --out reports/stats
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.stats import StatsConfig, write_dataset_stats


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="multi-label train records folder")
    parser.add_argument("--val", required=True, help="multi-label val records folder")
    parser.add_argument("--finetune", help="single-label records folder holding train/ and val/ (ImageNet)")
    parser.add_argument("--out", required=True, help="folder for summary.json, plot CSVs and PNGs")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `stats` section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = load_params("stats", StatsConfig, args.params)
    finetune = (Path(args.finetune) / "train", Path(args.finetune) / "val") if args.finetune else None
    write_dataset_stats(args.train, args.val, args.out, config, finetune)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

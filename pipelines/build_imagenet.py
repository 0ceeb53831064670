"""build_imagenet stage: a local ILSVRC-2012 layout -> single-label TFRecords (train and val).

    python pipelines/build_imagenet.py --root R --dictionary D \
        --out data/tfrecords/imagenet --report reports/tfrecords/imagenet.json [--params params.yaml]
"""

from __future__ import annotations

import argparse
import logging

from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.files import write_report
from mlimages.records.config import RecordsConfig
from mlimages.records.imagenet import build_imagenet


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder with train/<wnid>/*.JPEG and val/")
    parser.add_argument("--dictionary", required=True, help="class names, imagenet2012_dictionary.txt format")
    parser.add_argument("--out", required=True, help="folder to write train/, val/ and classes.tsv into")
    parser.add_argument("--report", required=True, help="JSON report: counts, skipped images, shards")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `records` section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = load_params("records", RecordsConfig, args.params)
    report = build_imagenet(args.root, args.dictionary, args.out, config)
    write_report(report, args.report)
    for split in ("train", "val"):
        logging.info("%s: %d records written, %d images skipped", split, report[split]["written"],
                     report[split]["skipped"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

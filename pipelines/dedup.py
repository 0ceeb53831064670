"""dedup stage: near-duplicate groups in the training images and copies of evaluation images.

    python pipelines/dedup.py --train data/images/train --val data/images/val \
        --imagenet data/demo/imagenet --out data/dedup --report reports/dedup/summary.json \
        --sheet reports/dedup/contact_sheet.png [--params params.yaml]
"""

from __future__ import annotations

import argparse
import logging

from mlimages.config import load_params
from mlimages.dedup.config import DedupConfig
from mlimages.dedup.stage import run_dedup
from mlimages.errors import exit_on_input_error
from mlimages.files import write_report


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="training split folder of NNNNN.tar image shards")
    parser.add_argument("--val", required=True, help="ML-Images val split folder of image shards")
    parser.add_argument("--imagenet", required=True, help="finetune task in ILSVRC-2012 layout (its val/ is used)")
    parser.add_argument("--out", required=True, help="folder for train/, val/ and leaked.tsv")
    parser.add_argument("--report", required=True, help="summary JSON (DVC metrics)")
    parser.add_argument("--sheet", required=True, help="contact-sheet PNG of the largest groups and leaked pairs")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `dedup` section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = load_params("dedup", DedupConfig, args.params)
    summary = run_dedup(args.train, args.val, args.imagenet, args.out, args.sheet, config)
    write_report(summary, args.report)
    logging.info("%d groups (%d images), leaked: %s", summary["groups"], summary["images_in_groups"],
                 {name: s["train_images_leaked"] for name, s in summary["leaked"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

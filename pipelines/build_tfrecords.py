"""build_tfrecords stage: one split of downloaded image shards -> TFRecord shards + index.json.

    python pipelines/build_tfrecords.py --images data/images/train --hierarchy H \
        --out data/tfrecords/ml-images/train --report reports/tfrecords/ml-images-train.json \
        [--dedup data/dedup/train] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import logging

from mlimages.cluster.config import ClusterConfig
from mlimages.cluster.mappers import ClusterLost, records_mapper
from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.files import write_report
from mlimages.records.build import build_ml_images
from mlimages.records.config import RecordsConfig


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of NNNNN.tar image shards (one split)")
    parser.add_argument("--hierarchy", required=True, help="dictionary_and_semantic_hierarchy.txt")
    parser.add_argument("--out", required=True, help="split folder to write")
    parser.add_argument("--report", required=True, help="JSON report: counts, skipped images, shards")
    parser.add_argument("--dedup", help="the dedup stage's folder for this split (leaked images, duplicate groups)")
    parser.add_argument("--legacy-dense-labels", action="store_true",
                        help="also store the dense float32 label vector (for readers of the original layout)")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `records` section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = load_params("records", RecordsConfig, args.params)
    mapper = records_mapper(load_params("cluster", ClusterConfig, args.params))  # the `cluster:` params: threads here or Ray tasks
    try:
        report = build_ml_images(args.images, args.hierarchy, args.out, config, dense_labels=args.legacy_dense_labels,
                                 dedup=args.dedup, mapper=mapper)
    except ClusterLost as error:
        logging.error("records not built: %s", error)
        return 1
    write_report(report, args.report)
    logging.info("%d records written, %d images skipped %s", report["written"], report["skipped"],
                 report["skipped_by_reason"] or "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

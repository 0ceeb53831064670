"""Pretrain the ResNet on multi-label records with the adaptive loss (MLproject entry point `pretrain`).

    python pipelines/pretrain.py --train data/tfrecords/ml-images/train --val data/tfrecords/ml-images/val \
        --out models/pretrain [--params params.yaml] [--steps 200 --batch_size 32 ...]

Any further `--KEY VALUE` overrides that key of the `pretrain:` params section. Running the same
command again resumes the run from its last checkpoint, inside the same MLflow run.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mlimages.config import load_params
from mlimages.errors import exit_on_input_error
from mlimages.tracking.outbox import TrackingLost
from mlimages.tracking.runs import configure_tracking
from mlimages.train.fit import TrainingDiverged, WorkerLost, fit
from mlimages.train.config import PretrainConfig, parse_overrides


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="multi-label record folder (training split)")
    parser.add_argument("--val", required=True, help="multi-label record folder (validation split)")
    parser.add_argument("--out", required=True, help="checkpoints, model.keras and summary.json")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `pretrain` section")
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_params("pretrain", PretrainConfig, args.params, parse_overrides(extra))
    configure_tracking()
    try:
        fit(config, args.train, args.val, args.out)
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except WorkerLost as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    except TrackingLost as error:
        print(f"error: {error}", file=sys.stderr)
        return 5
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Finetune on single-label records from a pretrained backbone (MLproject entry point `finetune`).

    python pipelines/finetune.py --train data/tfrecords/imagenet/train --val data/tfrecords/imagenet/val \
        --out models/finetune --init-model models:/mlimages-resnet101-ml@champion [--epochs 3 ...]

`--init-model` takes models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-ID, runs:/RUN_ID/checkpoint,
a .keras file or a training output folder; `scratch` (or empty) trains from scratch. Any further `--KEY VALUE`
overrides that key of the `finetune:` params section. The same command again resumes.
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
from mlimages.train.config import FinetuneConfig, parse_overrides


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="single-label record folder (training split)")
    parser.add_argument("--val", required=True, help="single-label record folder (validation split)")
    parser.add_argument("--out", required=True, help="checkpoints, model.keras and summary.json")
    parser.add_argument("--init-model", default="scratch", help="pretrained model URI or path; `scratch`: none")
    parser.add_argument("--params", default="params.yaml", help="params file; reads its `finetune` section")
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_params("finetune", FinetuneConfig, args.params, parse_overrides(extra))
    configure_tracking()
    try:
        fit(config, args.train, args.val, args.out, init_model=args.init_model)
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

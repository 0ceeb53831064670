"""Pretrain the ResNet on multi-label records with the adaptive loss (MLproject entry point `pretrain`).

    python pipelines/pretrain.py --train data/tfrecords/ml-images/train --val data/tfrecords/ml-images/val \
        --out models/pretrain [--params params.yaml] [--steps 200 --batch_size 32 ...]

Any further `--KEY VALUE` overrides that key of the `pretrain:` params section. Running the same
command again resumes the run from its last checkpoint, inside the same MLflow run.
"""

from __future__ import annotations

import sys

from mlimages.errors import exit_on_input_error
from mlimages.train.config import PretrainConfig
from mlimages.train.entry_point import read_training_args, run_training, training_parser


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0], PretrainConfig)
    args, config = read_training_args(parser, PretrainConfig, argv)
    return run_training(config, args.train, args.val, args.out)


if __name__ == "__main__":
    sys.exit(main())

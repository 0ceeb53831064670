"""Finetune on single-label records from a pretrained backbone (MLproject entry point `finetune`).

    python pipelines/finetune.py --train data/tfrecords/imagenet/train --val data/tfrecords/imagenet/val \
        --out models/finetune --init-model models:/mlimages-resnet101-ml@champion [--epochs 3 ...]

`--init-model` takes models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-ID, runs:/RUN_ID/checkpoint,
a .keras file or a training output folder; `scratch` (or empty) trains from scratch. Any further `--KEY VALUE`
overrides that key of the `finetune:` params section. The same command again resumes.
"""

from __future__ import annotations

import sys

from mlimages.errors import exit_on_input_error
from mlimages.train.config import FinetuneConfig
from mlimages.train.entry_point import read_training_args, run_training, training_parser


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0], FinetuneConfig)
    parser.add_argument("--init-model", default="scratch", help="pretrained model URI or path; `scratch`: none")
    args, config = read_training_args(parser, FinetuneConfig, argv)
    return run_training(config, args.train, args.val, args.out, init_model=args.init_model)


if __name__ == "__main__":
    sys.exit(main())

"""`mlimages classify --model URI IMAGE...`: top-k classes of photos as TSV (the original demo's job).

The model is a registered serving model (``models:/NAME@champion``, ``models:/NAME/3``), so the
photos go through exactly the preprocessing the served model applies. Output, one line per class:
``image<TAB>rank<TAB>class<TAB>name<TAB>probability``. Missing files are reported before the model
loads; every image that could not be classified is named at the end, with exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlimages.cli.inputs import check_image_files, report_skipped
from mlimages.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="top-k class names and probabilities of images (TSV)")
    parser.add_argument("--model", required=True, help="registered model URI, e.g. models:/NAME@champion")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (when no --threshold is given)")
    parser.add_argument("--threshold", type=float,
                        help="instead of the top k: every class with at least this probability (0 to 1)")
    parser.add_argument("images", nargs="+", help="JPEG/PNG files")
    parser.set_defaults(func=classify)


def load_serving_model(uri: str):
    """Load the pyfunc at `uri`, checking that it is an mlimages serving model."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlimages.tracking.runs import configure_tracking

    configure_tracking()
    try:
        model = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as error:
        raise InputError(f"cannot load the model ({str(error).splitlines()[0]})", uri) from None
    from mlimages.tracking.serving import ImageClassifier

    if getattr(model.unwrap_python_model(), "contract", None) != ImageClassifier.contract:
        raise InputError("not an mlimages serving model (use a registered version: models:/NAME@ALIAS)", uri)
    return model


def classify(args: argparse.Namespace) -> int:
    import pandas as pd
    from mlflow.exceptions import MlflowException

    if args.top_k < 1 or not (args.threshold is None or 0.0 <= args.threshold <= 1.0):
        raise InputError("--top-k must be >= 1 and --threshold between 0 and 1", "command line")
    readable, skipped = check_image_files(args.images, "command line")
    model = load_serving_model(args.model)
    params = {"top_k": args.top_k} if args.threshold is None else {"threshold": args.threshold}
    print("image\trank\tclass\tname\tprobability")
    for path in readable:
        try:
            data = Path(path).read_bytes()
            row = model.predict(pd.DataFrame({"image": [data]}), params=params).iloc[0]
        except (OSError, MlflowException) as error:
            skipped.append(path)
            print(f"skipped {path}: {getattr(error, 'strerror', None) or getattr(error, 'message', None) or error}",
                  file=sys.stderr)
            continue
        for rank, (index, name, prob) in enumerate(zip(row["classes"], row["names"], row["probabilities"]), 1):
            print(f"{path}\t{rank}\t{index}\t{name}\t{prob:.6f}")
    return report_skipped(skipped, len(args.images))

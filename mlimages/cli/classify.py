"""`mlimages classify --model URI IMAGE...`: top-k classes of photos as TSV (the original demo's job).

The model is a registered serving model (``models:/NAME@champion``, ``models:/NAME/3``), so the
photos go through exactly the preprocessing the served model applies. Output, one line per class:
``image<TAB>rank<TAB>class<TAB>name<TAB>probability``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlimages.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="top-k class names and probabilities of images (TSV)")
    parser.add_argument("--model", required=True, help="registered model URI, e.g. models:/NAME@champion")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image")
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

    if not isinstance(model.unwrap_python_model(), ImageClassifier):
        raise InputError("not an mlimages serving model (use a registered version: models:/NAME@ALIAS)", uri)
    return model


def classify(args: argparse.Namespace) -> int:
    import pandas as pd
    from mlflow.exceptions import MlflowException

    model = load_serving_model(args.model)
    failed = []
    print("image\trank\tclass\tname\tprobability")
    for path in args.images:
        try:
            data = Path(path).read_bytes()
            row = model.predict(pd.DataFrame({"image": [data]}), params={"top_k": args.top_k}).iloc[0]
        except (OSError, MlflowException) as error:
            failed.append(path)
            print(f"error: {path}: {getattr(error, 'message', None) or error}", file=sys.stderr)
            continue
        for rank, (index, name, prob) in enumerate(zip(row["classes"], row["names"], row["probabilities"]), 1):
            print(f"{path}\t{rank}\t{index}\t{name}\t{prob:.6f}")
    if failed:
        raise InputError(f"{len(failed)} of {len(args.images)} image(s) could not be classified: {', '.join(failed)}")
    return 0

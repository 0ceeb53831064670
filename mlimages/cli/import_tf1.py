"""`mlimages import-tf1 CHECKPOINT --num-classes N --out model.keras [--register NAME]`.

Converts a released Tencent ML-Images TF1 checkpoint (`ckpt-resnet101-mlimages`: 11,166 classes,
`ckpt-resnet101-mlimages-imagenet`: 1,000 classes) into a `.keras` model of this project, and
optionally registers it in the MLflow model registry.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

from mlimages.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser("import-tf1", help="convert a released TF1 checkpoint to a .keras model")
    parser.add_argument("checkpoint", help="checkpoint prefix (e.g. ckpt/model.ckpt-440000) or its folder")
    parser.add_argument("--num-classes", type=int, required=True, help="11166 (ML-Images) or 1000 (ImageNet)")
    parser.add_argument("--out", required=True, help="where to write the model, ending in .keras")
    parser.add_argument("--register", metavar="NAME", help="also register the model under this name")
    parser.set_defaults(func=import_checkpoint)


def import_checkpoint(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".keras":
        raise InputError("the output file must end in .keras", "--out")
    register_fn = find_registry_function() if args.register else None
    from mlimages.models.tf1_import import load_tf1_classifier

    model = load_tf1_classifier(args.checkpoint, args.num_classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    log.info("wrote %s (%d parameters)", out, model.count_params())
    if register_fn is not None:
        register_fn(str(out), args.register)
        log.info("registered %s as %s", out, args.register)
    return 0


def find_registry_function():
    """`mlimages.tracking.registry.register_keras_model`, checked before the slow conversion starts."""
    try:
        registry = importlib.import_module("mlimages.tracking.registry")
    except ImportError:
        registry = None
    function = getattr(registry, "register_keras_model", None)
    if function is None:
        raise InputError("registry support is unavailable (mlimages.tracking.registry.register_keras_model)", "--register")
    return function

"""The `mlimages` console script: user tools around the pipeline and the registry.

Each command group lives in its own module exposing `register(subparsers)`, which adds its
parser and sets `func` to a callable taking the parsed arguments. Modules are imported only
when listed here, so `mlimages hierarchy ...` does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mlimages.errors import exit_on_input_error

# (command, module, one-line help). The module is imported only when its command runs.
COMMANDS = [
    ("hierarchy", "mlimages.cli.hierarchy", "inspect a semantic hierarchy file"),
    ("import-tf1", "mlimages.cli.import_tf1", "convert a released TF1 checkpoint to a .keras model"),
    ("records", "mlimages.cli.records", "convert and inspect TFRecord folders"),
    ("registry", "mlimages.cli.registry", "list registered checkpoints with their metrics"),
    ("classify", "mlimages.cli.classify", "top-k class names and probabilities of images (TSV)"),
    ("features", "mlimages.cli.features", "pooled features of images to .npy or .parquet"),
    ("cluster", "mlimages.cli.cluster", "the TF_CONFIG of each host of a multi-host training"),
]


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlimages", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module, help_text in COMMANDS:
        if name == chosen:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return args.func(args) or 0

"""The `mlimages` console script: user tools around the pipeline and the registry.

Each command group lives in its own module exposing `register(subparsers)`, which adds its
parser and sets `func` to a callable taking the parsed arguments. Modules are imported only
when listed here, so `mlimages hierarchy ...` does not pay for importing TensorFlow.

Exit status: 0 done; 1 finished, but some input was skipped or a check failed (each one named
on stderr); 2 stopped at bad input before doing anything (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mlimages.cli.logs import configure_logging, import_tensorflow_quietly
from mlimages.errors import exit_on_input_error

# (command, module, one-line help). The module is imported only when its command runs.
COMMANDS = [
    ("hierarchy", "mlimages.cli.hierarchy", "inspect a semantic hierarchy file"),
    ("import-tf1", "mlimages.cli.import_tf1", "convert a released TF1 checkpoint to a .keras model"),
    ("records", "mlimages.cli.records", "convert and inspect TFRecord folders"),
    ("registry", "mlimages.cli.registry", "list registered checkpoints with their metrics"),
    ("classify", "mlimages.cli.classify", "top-k class names and probabilities of images (TSV)"),
    ("features", "mlimages.cli.features", "pooled features of images to .npy or .parquet"),
    ("team", "mlimages.cli.team", "the team's MLflow server on PostgreSQL: serve, setup accounts"),
    ("cluster", "mlimages.cli.cluster", "the TF_CONFIG of each host of a multi-host training"),
]
# Commands that import TensorFlow (all but these), quietly and before their module loads.
WITHOUT_TENSORFLOW = {"hierarchy", "registry", "team", "cluster"}


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option that has a default worth stating (not None or off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, []) or action.help is None:
            return action.help or ""
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose help shows defaults; subcommand parsers inherit the class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="mlimages", description=__doc__.splitlines()[0],
                    epilog="exit status: 0 done; 1 finished, but skipped input or failed a check (each named on "
                           "stderr); 2 stopped at bad input (one line on stderr)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and TensorFlow's own logs (silenced otherwise)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_command(argv)
    for name, module, help_text in COMMANDS:
        if name == chosen:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The first word that is not an option: the command."""
    return next((a for a in argv if not a.startswith("-")), None)


@exit_on_input_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = chosen_command(argv)
    before_command = argv[: argv.index(command)] if command else argv
    # Before any command module runs: TensorFlow reads its log settings when it is first imported.
    verbose = bool({"-v", "--verbose"} & set(before_command))
    configure_logging(verbose)
    wants_help = bool({"-h", "--help"} & set(argv))
    if not verbose and not wants_help and command in {name for name, _, _ in COMMANDS} - WITHOUT_TENSORFLOW:
        import_tensorflow_quietly()
    args = build_parser(argv).parse_args(argv)
    return args.func(args) or 0

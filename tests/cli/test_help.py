"""Every `mlimages ... --help` states the default of every option that has one."""

from __future__ import annotations

import argparse
import re

import pytest

from mlimages import cli


def all_parsers(parser: argparse.ArgumentParser):
    """`parser` and every subcommand parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from all_parsers(child)


@pytest.mark.parametrize("command", [name for name, _, _ in cli.COMMANDS])
def test_every_option_with_a_default_shows_it(command):
    examined = 0
    for parser in all_parsers(cli.build_parser([command])):
        if parser.prog.split()[-1] != command and command not in parser.prog.split():
            continue  # the other commands' placeholders (not loaded)
        examined += 1
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
                continue
            assert action.help, f"{parser.prog} {action.option_strings[0]} has no help text"
            assert re.search(rf"\(default: {re.escape(str(action.default))}\)", text), (parser.prog, action.dest)
    assert examined > 0


def test_help_does_not_import_tensorflow_quietly_or_fail(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["records", "inspect", "--help"])
    assert exit_info.value.code == 0
    assert "(default: 10)" in " ".join(capsys.readouterr().out.split())

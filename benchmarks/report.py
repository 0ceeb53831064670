"""Write one benchmark's table into BENCHMARKS.md, beside the command that produced it.

Each benchmark owns one section, delimited by HTML comments, so benchmarks can be rerun one at a
time without touching the others' results.
"""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
TITLE = "# Benchmarks\n\nEvery table below is written by the command shown above it; ratios compare runs made side by side in the same process.\n"


def machine() -> str:
    """A short description of where the numbers were taken."""
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, command: str, body: str) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md.

    Args:
        name: stable identifier, e.g. ``"download"``.
        title: the section heading.
        command: the exact command that reproduces the section.
        body: markdown (tables and short notes).
    """
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else TITLE
    stamp = datetime.date.today().isoformat()
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command}`  \nMachine: {machine()}; run {stamp}.\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text, encoding="utf-8")

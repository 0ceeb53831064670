"""Files written whole or not at all, and the stage reports written that way.

A stage that is killed half-way must not leave a truncated file that the next run or DVC would take
for a finished one, so text goes to a temporary name beside its target and is renamed over it (a
rename within one folder is atomic). Kept free of TensorFlow: every stage writes a report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` (creating its folder) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_report(report: dict, path: str | Path) -> None:
    """Write a stage report (a DVC metrics file) as indented JSON, atomically."""
    write_atomic(path, json.dumps(report, indent=2) + "\n")

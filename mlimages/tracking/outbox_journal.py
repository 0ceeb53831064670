"""The tracking outbox's queue: a JSON-lines file on disk, read from a cursor.

Training appends one line per item; the outbox's sender reads the line at the cursor, sends it, and
moves the cursor past it. The file is the queue, so memory holds one item at a time however long the
server is away, and a process killed at any moment leaves every unsent item (and maybe the one in
flight, which the sender made safe to send twice) for the next attempt to replay. Once the cursor
reaches the end, the file and the cursor go: an empty journal is no file at all (and its folder goes
when the outbox closes, `remove_empty_folder`).

Not thread-safe by itself: the outbox calls it under its lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from mlimages.errors import InputError

JOURNAL = "outbox.jsonl"
CURSOR = "outbox.cursor"  # {"offset": bytes already sent, "line": lines already sent}

_log = logging.getLogger(__name__)


class OutboxJournal:
    """The items of one run's outbox folder, oldest first (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path, self.cursor_path = self.folder / JOURNAL, self.folder / CURSOR
        self.offset, self.line = self._read_cursor()
        self._drop_torn_tail()

    def append(self, item: dict[str, Any]) -> None:
        """Add `item` at the end (a whole line: a reader never sees half of it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(item) + "\n")

    def peek(self) -> dict[str, Any] | None:
        """The oldest unsent item, or None when everything is sent."""
        if not self.path.is_file():
            return None
        with self.path.open("rb") as journal:
            journal.seek(self.offset)
            line = journal.readline()
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            raise InputError("not a JSON line of the tracking outbox", f"{self.path}:{self.line + 1}") from None

    def pop(self) -> None:
        """Mark the oldest item sent; drop the journal when that was the last one."""
        with self.path.open("rb") as journal:
            journal.seek(self.offset)
            self.offset += len(journal.readline())
        self.line += 1
        if self.offset >= self.path.stat().st_size:
            self._drop()
            return
        temporary = self.cursor_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"offset": self.offset, "line": self.line}), encoding="utf-8")
        temporary.replace(self.cursor_path)

    def count_unsent(self) -> int:
        if not self.path.is_file():
            return 0
        with self.path.open("rb") as journal:
            journal.seek(self.offset)
            return sum(1 for _ in journal)

    def remove_empty_folder(self) -> None:
        """No empty folder among the training outputs. Only once nothing more is appended: training
        creates the folder before it writes a snapshot there."""
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def _drop(self) -> None:
        """The cursor first: a kill between the two leaves the journal to replay whole (sends are safe to
        repeat), never a cursor past the end of the next journal."""
        self.cursor_path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        self.offset = self.line = 0

    def _read_cursor(self) -> tuple[int, int]:
        if not self.cursor_path.is_file():
            return 0, 0
        try:
            cursor = json.loads(self.cursor_path.read_text(encoding="utf-8"))
            return int(cursor["offset"]), int(cursor["line"])
        except (ValueError, KeyError, TypeError):
            raise InputError("not a cursor of the tracking outbox (expected offset and line)",
                             str(self.cursor_path)) from None

    def _drop_torn_tail(self) -> None:
        """A process killed while appending leaves half a line: that item was never kept, so it goes,
        with a log line."""
        if not self.path.is_file():
            self._drop()  # a cursor without its journal is of no use
            return
        with self.path.open("rb") as journal:
            journal.seek(0, 2)
            size = journal.tell()
            journal.seek(max(0, size - 1))
            whole = size if journal.read() in (b"", b"\n") else None
        if whole is None:  # rare (after a kill): the one case that reads the whole file
            data = self.path.read_bytes()
            whole = data.rfind(b"\n") + 1
            _log.warning("%s ends in half a line (a write cut off): dropped", self.path)
            with self.path.open("r+b") as journal:
                journal.truncate(whole)
        if self.offset >= whole:
            self._drop()

"""The dedup stage's files, and the one reader the record builder and evaluation use.

Per split folder (``data/dedup/train``, ``data/dedup/val``), facts rather than decisions, so the
record builder applies its own params (`records.drop_leaked`, `records.merge_duplicates`):

- ``excluded.tsv``: ``key<TAB>reason<TAB>detail`` for each image a clean build may leave out;
  reason ``leaked`` (it is a copy of an evaluation image) or ``duplicate`` (another member of
  its group is kept);
- ``groups.jsonl``: one near-duplicate group a line: ``{"group", "exact", "keep", "keys",
  "labels", "confidences"}``; labels are the union over the group, highest confidence per class.

And ``leaked.tsv`` beside them: ``eval_set<TAB>eval_name<TAB>train_key<TAB>distance``, where
eval_name is the record filename of the evaluation image (its URL for ML-Images val, its
ImageNet id for the finetune val set): what a clean score leaves out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mlimages.errors import InputError
from mlimages.files import write_atomic

EXCLUDED_FILE, GROUPS_FILE, LEAKED_FILE = "excluded.tsv", "groups.jsonl", "leaked.tsv"
LEAKED, DUPLICATE = "leaked", "duplicate"
EXCLUDED_HEADER = "key\treason\tdetail\n"
LEAKED_HEADER = "eval_set\teval_name\ttrain_key\tdistance\n"


@dataclass(frozen=True)
class Exclusions:
    """What the record builder needs from one split's dedup folder.

    Attributes:
        leaked: keys of training images that copy an evaluation image.
        duplicates: keys of group members that are not their group's kept image.
        merged_labels: kept key -> (labels, confidences), the union over its group.
    """

    leaked: frozenset[str] = frozenset()
    duplicates: frozenset[str] = frozenset()
    merged_labels: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = field(default_factory=dict)


def write_split_folder(folder: Path, excluded: list[tuple[str, str, str]], groups: list[dict]) -> None:
    """Write ``excluded.tsv`` (rows key, reason, detail) and ``groups.jsonl`` of one split."""
    write_atomic(folder / EXCLUDED_FILE, EXCLUDED_HEADER + "".join("\t".join(row) + "\n" for row in excluded))
    write_atomic(folder / GROUPS_FILE, "".join(json.dumps(group, sort_keys=True) + "\n" for group in groups))


def write_leaked(path: Path, rows: list[tuple[str, str, str, int]]) -> None:
    """Write ``leaked.tsv`` from (eval_set, eval_name, train_key, distance) rows."""
    write_atomic(path, LEAKED_HEADER + "".join(f"{s}\t{n}\t{k}\t{d}\n" for s, n, k, d in rows))


def load_exclusions(folder) -> Exclusions:
    """Read one split's ``excluded.tsv`` and ``groups.jsonl``; a malformed line is an `InputError`."""
    folder = Path(folder)
    leaked, duplicates = set(), set()
    for where, fields in _read_tsv(folder / EXCLUDED_FILE, EXCLUDED_HEADER, 3):
        if fields[1] not in (LEAKED, DUPLICATE):
            raise InputError(f"reason must be {LEAKED} or {DUPLICATE}, got {fields[1]!r}", where)
        (leaked if fields[1] == LEAKED else duplicates).add(fields[0])
    merged = {}
    path = folder / GROUPS_FILE
    for number, text in enumerate(_read_text(path).splitlines(), start=1):
        try:
            group = json.loads(text)
            merged[group["keep"]] = (tuple(int(v) for v in group["labels"]),
                                     tuple(float(v) for v in group["confidences"]))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"not a group record ({type(error).__name__}: {error})", f"{path}:{number}") from None
    return Exclusions(frozenset(leaked), frozenset(duplicates), merged)


def load_leaked_names(path, eval_set: str) -> frozenset[str]:
    """Record filenames of the images of `eval_set` (``ml_images_val``, ``finetune_val``) with a training copy.

    This is the hook of the clean score: evaluate the records whose filename is not in this set.
    """
    return frozenset(fields[1] for _, fields in _read_tsv(Path(path), LEAKED_HEADER, 4) if fields[0] == eval_set)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("dedup output not found (has the dedup stage run?)", str(path)) from None


def _read_tsv(path: Path, header: str, columns: int):
    lines = _read_text(path).splitlines()
    if not lines or lines[0] + "\n" != header:
        raise InputError(f"expected the header {header.strip()!r}", f"{path}:1")
    for number, text in enumerate(lines[1:], start=2):
        fields = text.split("\t")
        if len(fields) != columns:
            raise InputError(f"expected {columns} tab-separated fields, got {len(fields)}", f"{path}:{number}")
        yield f"{path}:{number}", fields

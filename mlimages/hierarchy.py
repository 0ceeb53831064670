"""The semantic hierarchy: ML-Images' 11,166 WordNet categories in a forest of trees.

File format (`dictionary_and_semantic_hierarchy.txt`), one header line then one line per category::

    category_index<TAB>category_id<TAB>index_of_parent_category<TAB>category name

Parent `-1` marks a root. Parents may be listed after their children, so the file is read whole,
then checked (unknown parents, duplicates, cycles) before anything uses it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping

from mlimages.errors import InputError

HEADER = "category_index\tcategory_id\tindex_of_parent_category\tcategory name"


@dataclass(frozen=True)
class Category:
    index: int
    wnid: str
    parent: int  # -1 for a root
    name: str


class Hierarchy:
    """An immutable forest of categories, indexed by category index.

    Args:
        categories: every category; parents must exist and there must be no cycle.
        source: where the categories came from, used in error messages.
    """

    def __init__(self, categories: Iterable[Category], source: str = "<hierarchy>"):
        self.source = source
        self.categories: dict[int, Category] = {c.index: c for c in categories}
        self.by_wnid: dict[str, int] = {c.wnid: c.index for c in self.categories.values()}
        kids: dict[int, list[int]] = {i: [] for i in self.categories}
        for c in self.categories.values():
            if c.parent != -1:
                kids[c.parent].append(c.index)
        self._children = {i: tuple(sorted(k)) for i, k in kids.items()}

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, index: int) -> bool:
        return index in self.categories

    @cached_property
    def roots(self) -> tuple[int, ...]:
        return tuple(sorted(i for i, c in self.categories.items() if c.parent == -1))

    @cached_property
    def leaves(self) -> tuple[int, ...]:
        return tuple(sorted(i for i, k in self._children.items() if not k))

    @cached_property
    def depths(self) -> dict[int, int]:
        """Edges from each category's root to the category (a root has depth 0)."""
        depths: dict[int, int] = {}
        stack = [(root, 0) for root in self.roots]
        while stack:
            index, depth = stack.pop()
            depths[index] = depth
            stack.extend((child, depth + 1) for child in self._children[index])
        return depths

    def children(self, index: int) -> tuple[int, ...]:
        return self._children[index]

    def depth(self, index: int) -> int:
        return self.depths[index]

    def ancestors(self, index: int) -> tuple[int, ...]:
        """Ancestors of `index`, nearest first, root last (the category itself excluded)."""
        path = []
        parent = self.categories[index].parent
        while parent != -1:
            path.append(parent)
            parent = self.categories[parent].parent
        return tuple(path)

    def path_from_root(self, index: int) -> tuple[int, ...]:
        return tuple(reversed(self.ancestors(index))) + (index,)

    def root_of(self, index: int) -> int:
        return self.path_from_root(index)[0]

    def close(self, labels: Mapping[int, float]) -> dict[int, float]:
        """Close a label set under ancestors.

        An ancestor that was not labelled takes the highest confidence among its labelled
        descendants; an ancestor that was labelled keeps the larger of its own and that value.
        """
        closed = dict(labels)
        for index, confidence in labels.items():
            for ancestor in self.ancestors(index):
                if closed.get(ancestor, -1.0) < confidence:
                    closed[ancestor] = confidence
        return closed

    def resolve(self, key: str) -> int:
        """A category from its index (``"1041"``) or WordNet id (``"n04310904"``)."""
        if key.lstrip("-").isdigit() and int(key) in self.categories:
            return int(key)
        if key in self.by_wnid:
            return self.by_wnid[key]
        raise InputError(f"no category with index or WordNet id '{key}'", self.source)

    def stats(self) -> dict:
        """Size and shape of the forest, in the terms of the paper's statistics."""
        depths = list(self.depths.values())
        roots = {self.categories[r].name: 0 for r in self.roots}
        for index in self.categories:
            roots[self.categories[self.root_of(index)].name] += 1
        return {
            "categories": len(self),
            "roots": len(self.roots),
            "leaves": len(self.leaves),
            "longest_path_edges": max(depths),
            "mean_path_edges": round(statistics.fmean(depths), 4),
            "root_sizes": roots,
        }


def load_hierarchy(path: str | Path) -> Hierarchy:
    """Read and check a hierarchy file; any defect is an `InputError` naming `path:line`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("hierarchy file not found", str(path)) from None
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", str(path)) from None
    if not lines or not lines[0].startswith("category_index"):
        raise InputError(f"expected the header line '{HEADER}'", f"{path}:1")
    categories: dict[int, Category] = {}
    line_of: dict[int, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        category = _parse_line(line, f"{path}:{number}")
        if category.index in categories:
            raise InputError(
                f"duplicate category index {category.index} (first on line {line_of[category.index]})",
                f"{path}:{number}",
            )
        categories[category.index] = category
        line_of[category.index] = number
    if not categories:
        raise InputError("no categories", str(path))
    _check_parents(categories, line_of, path)
    return Hierarchy(categories.values(), source=str(path))


def _parse_line(line: str, where: str) -> Category:
    columns = line.rstrip("\r\n").split("\t", 3)
    if len(columns) != 4:
        raise InputError(f"expected 4 tab-separated columns, got {len(columns)}", where)
    index, wnid, parent, name = columns
    try:
        index_value, parent_value = int(index), int(parent)
    except ValueError:
        raise InputError(f"category index and parent must be integers, got '{index}' and '{parent}'", where) from None
    if index_value < 0 or parent_value < -1:
        raise InputError(f"negative index {index_value} or parent {parent_value}", where)
    return Category(index_value, wnid.strip(), parent_value, name.strip())


def _check_parents(categories: dict[int, Category], line_of: dict[int, int], path: Path) -> None:
    for index, category in categories.items():
        if category.parent != -1 and category.parent not in categories:
            raise InputError(f"unknown parent {category.parent} of category {index}", f"{path}:{line_of[index]}")
    state: dict[int, int] = {}  # 1 = on the current walk, 2 = known to reach a root
    for start in categories:
        walk = []
        index = start
        while index != -1 and state.get(index) != 2:
            if state.get(index) == 1:
                cycle = walk[walk.index(index):]
                raise InputError(
                    f"cycle in parents: {' -> '.join(map(str, cycle + [index]))}", f"{path}:{line_of[index]}"
                )
            state[index] = 1
            walk.append(index)
            index = categories[index].parent
        for visited in walk:
            state[visited] = 2


def format_hierarchy(categories: Iterable[Category]) -> str:
    """The file text for `categories`, header first, in the order given."""
    rows = [HEADER] + [f"{c.index}\t{c.wnid}\t{c.parent}\t{c.name}" for c in categories]
    return "\n".join(rows) + "\n"

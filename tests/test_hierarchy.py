"""mlimages.hierarchy and `mlimages hierarchy`: the real file, closure, and broken files."""

from __future__ import annotations

import json

import pytest

from mlimages.cli import main as cli_main
from mlimages.errors import InputError
from mlimages.hierarchy import HEADER, Category, Hierarchy, format_hierarchy, load_hierarchy


@pytest.fixture(scope="module")
def real(hierarchy_file):
    return load_hierarchy(hierarchy_file)


def test_real_file_counts(real):
    stats = real.stats()
    assert stats["categories"] == 11166
    assert stats["roots"] == 4
    assert real.roots == (0, 1, 2, 3)
    assert stats["leaves"] == 9219
    assert stats["longest_path_edges"] == 16
    assert stats["mean_path_edges"] == pytest.approx(7.4711, abs=1e-4)
    assert stats["root_sizes"] == {
        "thing": 67, "matter": 1046, "object, physical object": 10038, "atmospheric phenomenon": 15,
    }
    assert sum(stats["root_sizes"].values()) == 11166


def test_real_file_depths_and_ancestors(real):
    assert real.depth(2) == 0
    assert real.depth(4097) == 7
    assert real.ancestors(4097) == (4089, 4063, 1837, 1054, 1041, 865, 2)
    assert real.path_from_root(4097)[0] == 2 == real.root_of(4097)
    assert real.resolve("n04530566") == 4097 == real.resolve("4097")
    assert 4097 in real.children(4089)
    assert all(real.depth(child) == real.depth(4089) + 1 for child in real.children(4089))


def test_closure_takes_highest_confidence_of_descendants(real):
    closed = real.close({4767: 0.9})
    assert closed == {4767: 0.9, 4765: 0.9, 1067: 0.9, 1041: 0.9, 865: 0.9, 2: 0.9}
    # 4097 (vessel) and 4767 share ancestors 1041, 865, 2: those take the larger confidence.
    closed = real.close({4767: 0.6, 4097: 0.8})
    assert closed[1041] == closed[865] == closed[2] == 0.8
    assert closed[4765] == closed[1067] == 0.6 and closed[4089] == 0.8
    # A labelled ancestor keeps the larger of its own confidence and its descendants'.
    assert real.close({4767: 0.6, 1067: 0.3})[1067] == 0.6
    closed = real.close({4767: 0.6, 1067: 0.9})
    assert closed[1067] == closed[1041] == 0.9 and closed[4765] == 0.6
    assert real.close(closed) == closed  # closing twice changes nothing


def test_unknown_key_is_input_error(real):
    with pytest.raises(InputError, match="no category"):
        real.resolve("n99999999")


def test_stats_cli_text_and_json(hierarchy_file, capsys):
    assert cli_main(["hierarchy", "stats", str(hierarchy_file)]) == 0
    text = capsys.readouterr().out
    assert "categories          11166" in text
    assert "root categories     4" in text
    assert "longest path        16 edges" in text
    assert "10038  object, physical object" in text
    assert cli_main(["hierarchy", "stats", str(hierarchy_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["categories"] == 11166 and data["leaves"] == 9219


def test_show_cli_prints_path_from_root(hierarchy_file, capsys):
    assert cli_main(["hierarchy", "show", str(hierarchy_file), "n04530566"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2\tn00002684\tobject, physical object"
    assert lines[-1] == "              4097\tn04530566\tvessel, watercraft"
    assert len(lines) == 8


def write(tmp_path, rows: list[str]):
    path = tmp_path / "hierarchy.txt"
    path.write_text("\n".join([HEADER] + rows) + "\n", encoding="utf-8")
    return path


GOOD = ["0\tn00000001\t-1\troot", "1\tn00000002\t0\tchild", "2\tn00000003\t1\tgrandchild"]


@pytest.mark.parametrize(
    "rows, line, message",
    [
        (GOOD[:2] + ["2\tn00000003\t1"], 4, "expected 4 tab-separated columns, got 3"),
        (GOOD[:2] + ["two\tn00000003\t1\tgrandchild"], 4, "must be integers"),
        (GOOD[:2] + ["2\tn00000003\t7\tgrandchild"], 4, "unknown parent 7 of category 2"),
        (GOOD + ["1\tn00000004\t0\tagain"], 5, "duplicate category index 1 (first on line 3)"),
        (["0\tn00000001\t-1\troot", "1\tn00000002\t2\ta", "2\tn00000003\t1\tb"], None, "cycle in parents"),
    ],
    ids=["columns", "non-integer", "unknown-parent", "duplicate", "cycle"],
)
def test_broken_files_name_file_and_line(tmp_path, rows, line, message):
    path = write(tmp_path, rows)
    with pytest.raises(InputError) as raised:
        load_hierarchy(path)
    error = raised.value
    assert message in error.message
    assert error.where.startswith(f"{path}:")
    if line is not None:
        assert error.where == f"{path}:{line}"
    assert "\n" not in str(error)


def test_broken_file_through_cli_is_one_line_and_status_2(tmp_path, capsys):
    path = write(tmp_path, GOOD[:2] + ["2\tn00000003\t9\tgrandchild"])
    with pytest.raises(SystemExit) as raised:
        cli_main(["hierarchy", "stats", str(path)])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}:4: unknown parent 9 of category 2\n"


def test_missing_header_and_missing_file(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text("0\tn00000001\t-1\troot\n", encoding="utf-8")
    with pytest.raises(InputError, match="header"):
        load_hierarchy(path)
    with pytest.raises(InputError, match="not found"):
        load_hierarchy(tmp_path / "absent.txt")


def test_parents_may_come_after_children_and_format_round_trips(tmp_path):
    categories = [Category(2, "n00000003", 1, "b"), Category(1, "n00000002", 0, "a"), Category(0, "n00000001", -1, "r")]
    path = tmp_path / "h.txt"
    path.write_text(format_hierarchy(categories), encoding="utf-8")
    loaded = load_hierarchy(path)
    assert loaded.ancestors(2) == (1, 0)
    assert sorted(loaded.categories.values(), key=lambda c: c.index) == sorted(categories, key=lambda c: c.index)
    assert Hierarchy(categories).stats()["longest_path_edges"] == 2

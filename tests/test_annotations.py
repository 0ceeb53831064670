"""mlimages.annotations: list lines, both separators, every kind of bad line, the shared tiny list."""

from __future__ import annotations

import pytest

from mlimages.annotations import Annotation, format_line, parse_line, read_annotations, source_kind
from mlimages.errors import InputError
from mlimages.hierarchy import load_hierarchy


def is_class(index: int) -> bool:
    return 0 <= index < 10


@pytest.mark.parametrize(
    "source, kind",
    [
        ("http://example.org/a.jpg", "url"),
        ("https://farm2.staticflickr.com/2034/1557324960_1ae893fed8_o.jpg", "url"),
        ("file:///data/demo/images/train/00001_ab.jpg", "file"),
        ("n04310904/n04310904_8388.JPEG", "imagenet"),
    ],
)
def test_source_kinds(source, kind):
    assert source_kind(source) == kind
    assert parse_line(f"{source}\t1:1", "x:1", is_class).source == source


@pytest.mark.parametrize("separator", ["\t", " ", "  ", " \t "])
def test_any_whitespace_separates(separator):
    line = separator.join(["https://a.org/x.jpg", "3:0.9", "1:1", "7:0"]) + "\n"
    annotation = parse_line(line, "x:1", is_class)
    assert annotation == Annotation("https://a.org/x.jpg", ((1, 1.0), (3, 0.9), (7, 0.0)))
    assert annotation.classes == (1, 3, 7) and annotation.confidences == (1.0, 0.9, 0.0)


def test_blank_line_is_none_and_repeated_class_keeps_max():
    assert parse_line("  \t \n", "x:1", is_class) is None
    assert parse_line("https://a.org/x.jpg 2:0.4 2:0.8 2:0.5", "x:1", is_class).labels == ((2, 0.8),)


def test_source_without_labels_is_allowed():
    assert parse_line("https://a.org/x.jpg", "x:1", is_class).labels == ()


@pytest.mark.parametrize(
    "line, message",
    [
        ("ftp://a.org/x.jpg 1:1", "first token must be a URL"),
        ("images/x.jpg 1:1", "first token must be a URL"),
        ("https://a.org/x.jpg 1", "malformed label token '1'"),
        ("https://a.org/x.jpg one:1", "malformed label token 'one:1'"),
        ("https://a.org/x.jpg 1:high", "malformed label token '1:high'"),
        ("https://a.org/x.jpg 1:", "malformed label token '1:'"),
        ("https://a.org/x.jpg 12:1", "unknown class index 12"),
        ("https://a.org/x.jpg -1:1", "unknown class index -1"),
        ("https://a.org/x.jpg 1:1.5", "confidence 1.5 of class 1 is outside [0, 1]"),
        ("https://a.org/x.jpg 1:-0.1", "confidence -0.1 of class 1 is outside [0, 1]"),
    ],
    ids=["scheme", "relative", "no-colon", "bad-index", "bad-confidence", "empty-confidence",
         "unknown-class", "negative-class", "confidence-high", "confidence-low"],
)
def test_bad_lines_name_their_place(line, message):
    with pytest.raises(InputError) as raised:
        parse_line(line, "list.txt:7", is_class)
    assert message in raised.value.message
    assert raised.value.where == "list.txt:7"
    assert str(raised.value).startswith("list.txt:7: ")


def test_format_line_round_trips():
    annotation = Annotation("file:///a%20b/x.png", ((0, 1.0), (4, 0.7), (9, 0.123457)))
    line = format_line(annotation)
    assert line == "file:///a%20b/x.png\t0:1\t4:0.7\t9:0.123457"
    assert parse_line(line, "x:1", is_class) == annotation


def write_list(tmp_path, lines):
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


LINES = ["https://a.org/1.jpg 1:1", "", "https://a.org/2.jpg 99:1", "bad 1:1", "https://a.org/3.jpg 2:0.5"]


def test_read_error_mode_stops_at_first_bad_line(tmp_path):
    path = write_list(tmp_path, LINES)
    read = []
    with pytest.raises(InputError) as raised:
        for annotation in read_annotations(path, is_class):
            read.append(annotation.source)
    assert raised.value.where == f"{path}:3"
    assert read == ["https://a.org/1.jpg"]  # work before the bad line was delivered


def test_read_skip_mode_counts_and_names_bad_lines(tmp_path):
    path = write_list(tmp_path, LINES)
    bad: list[str] = []
    sources = [a.source for a in read_annotations(path, is_class, on_bad_line="skip", bad_lines=bad)]
    assert sources == ["https://a.org/1.jpg", "https://a.org/3.jpg"]
    assert bad == [
        f"{path}:3: unknown class index 99",
        f"{path}:4: first token must be a URL (http://, https://, file:) or an ImageNet id, got 'bad'",
    ]


def test_read_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list(read_annotations(tmp_path / "absent.txt", is_class))
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"https://a.org/1.jpg 1:1\nhttps://a.org/\xe9.jpg 1:1\n")
    with pytest.raises(InputError) as raised:
        list(read_annotations(path, is_class))
    assert "UTF-8" in raised.value.message and raised.value.where.startswith(str(path))


def test_shared_tiny_list_parses_with_both_separators(shared_data, tmp_path):
    hierarchy = load_hierarchy(shared_data / "dictionary_and_semantic_hierarchy.txt")
    original = shared_data / "train_urls_tiny.txt"
    with_tabs = list(read_annotations(original, hierarchy.__contains__))
    assert len(with_tabs) == 100
    assert all(source_kind(a.source) == "url" for a in with_tabs)
    first = with_tabs[0]
    assert first.source == "https://farm2.staticflickr.com/2034/1557324960_1ae893fed8_o.jpg"
    assert first.classes == (2, 865, 1041, 1054, 1837, 4063, 4089, 4097, 4129, 4132)
    assert with_tabs[1].labels == ((4765, 0.9), (4767, 0.9))
    spaced = tmp_path / "spaces.txt"
    spaced.write_text(original.read_text(encoding="utf-8").replace("\t", " "), encoding="utf-8")
    assert list(read_annotations(spaced, hierarchy.__contains__)) == with_tabs
    # Our formatted lines read back to the same annotations.
    ours = tmp_path / "ours.txt"
    ours.write_text("".join(format_line(a) + "\n" for a in with_tabs), encoding="utf-8")
    assert list(read_annotations(ours, hierarchy.__contains__)) == with_tabs

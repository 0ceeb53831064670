"""Open Images mirror index: URL -> mirror URL and MD5, bad CSVs named by line, flat memory."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlimages.download.mirror import CACHE_KIB, MirrorIndex, build_mirror_index, md5_matches
from mlimages.errors import InputError

HEADER = ("ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,OriginalSize,"
          "OriginalMD5\n")
TEMPLATE = "http://127.0.0.1:9/mirror/{image_id}.jpg"


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def row(number: int) -> str:
    image_id = f"{number:016x}"
    return (f"{image_id},train,https://farm{number % 9}.staticflickr.com/{number}/{number}_abc.jpg,"
            f"https://www.flickr.com/photos/x/{number},https://creativecommons.org/licenses/by/2.0/,"
            f"https://www.flickr.com/people/x/,\"Some, Author\",\"A title\",{1000 + number},"
            f"{md5_b64(image_id.encode())}\n")


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for begin in range(0, rows, 50_000):
            handle.write("".join(row(n) for n in range(begin, min(rows, begin + 50_000))))
    return path


def test_lookup_gives_the_mirror_url_and_md5(tmp_path):
    csv_path = write_csv(tmp_path / "meta.csv", 1_000)
    with MirrorIndex(csv_path, tmp_path / "mirror.sqlite", TEMPLATE) as index:
        entry = index.lookup("https://farm7.staticflickr.com/TESTS/TESTS_abc.jpg".replace("TESTS", "7"))
        assert entry.image_id == f"{7:016x}" and entry.mirror_url == f"http://127.0.0.1:9/mirror/{7:016x}.jpg"
        assert md5_matches(entry.image_id.encode(), entry.md5) and not md5_matches(b"other", entry.md5)
        assert index.lookup("https://example.com/not-listed.jpg") is None


def test_index_is_reused_until_the_csv_changes(tmp_path):
    csv_path = write_csv(tmp_path / "meta.csv", 10)
    index_path = tmp_path / "mirror.sqlite"
    MirrorIndex(csv_path, index_path, TEMPLATE).close()
    built = index_path.stat().st_mtime_ns
    MirrorIndex(csv_path, index_path, TEMPLATE).close()
    assert index_path.stat().st_mtime_ns == built
    write_csv(csv_path, 20)
    with MirrorIndex(csv_path, index_path, TEMPLATE) as index:
        assert index.lookup("https://farm1.staticflickr.com/19/19_abc.jpg").image_id == f"{19:016x}"


def test_md5_in_hex_or_base64():
    assert md5_matches(b"abc", hashlib.md5(b"abc").hexdigest().upper())
    assert md5_matches(b"abc", md5_b64(b"abc")) and not md5_matches(b"abd", md5_b64(b"abc"))


@pytest.mark.parametrize("text,where,message", [
    ("ImageID,OriginalURL\nx,https://a/b.jpg\n", ":1", "missing column(s) OriginalMD5"),
    (HEADER + row(1) + row(2) + "0002,train,https://a/b.jpg\n" + row(4), ":4", "expected 10 fields, got 3"),
    (HEADER + row(1) + row(2).replace("https://", "ftp://"), ":3", "http(s) OriginalURL"),
    (HEADER + row(1) + 'x,train,"https://a/b.jpg"x,\n' + row(3), ":3", "not a readable CSV row"),
    ("", ":1", "empty metadata CSV"),
])
def test_bad_csv_is_a_one_line_error_naming_file_and_line(tmp_path, text, where, message):
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as error:
        build_mirror_index(csv_path, tmp_path / "mirror.sqlite")
    assert str(error.value).startswith(f"{csv_path}{where}: ") and message in str(error.value)
    assert "\n" not in str(error.value) and not (tmp_path / "mirror.sqlite").exists()


def test_template_must_name_the_image_id(tmp_path):
    csv_path = write_csv(tmp_path / "meta.csv", 1)
    for bad in ("http://mirror/{id}.jpg", "http://mirror/fixed.jpg"):
        with pytest.raises(InputError, match="mirror URL template"):
            MirrorIndex(csv_path, tmp_path / "mirror.sqlite", bad)


PEAK_SCRIPT = """
import json, sys
from mlimages.download.mirror import MirrorIndex

def peak_kib():  # this process's own high-water mark (ru_maxrss would include the parent's at fork)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = peak_kib()
with MirrorIndex(sys.argv[1], sys.argv[2], "https://mirror/{image_id}.jpg") as index:
    found = index.lookup(sys.argv[3])
print(json.dumps({"before_kib": before, "peak_kib": peak_kib(), "image_id": found.image_id}))
"""


def peak_memory(tmp_path: Path, rows: int) -> dict:
    csv_path = write_csv(tmp_path / f"meta-{rows}.csv", rows)
    url = f"https://farm{(rows - 1) % 9}.staticflickr.com/{rows - 1}/{rows - 1}_abc.jpg"
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(csv_path), str(tmp_path / f"m-{rows}.sqlite"), url],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["image_id"] == f"{rows - 1:016x}"  # the last row was loaded and indexed
    return result


def test_a_million_row_csv_joins_in_flat_memory_under_300_mb(tmp_path):
    small, large = peak_memory(tmp_path, 100_000), peak_memory(tmp_path, 1_000_000)
    assert large["peak_kib"] < 300 * 1024
    # growth over the interpreter is bounded by SQLite's page cache, the index sorter (which
    # spills to temp files beyond the same size) and one batch, not by the rows (3M rows: as 1M)
    for result in (small, large):
        assert result["peak_kib"] - result["before_kib"] < 2 * CACHE_KIB + 16 * 1024

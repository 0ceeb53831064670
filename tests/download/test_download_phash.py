"""The pHash of every stored image: in its sample's .json and status record, and read by the dedup stage."""

from __future__ import annotations

import io

from PIL import Image

from mlimages.dedup.hashes import hash_image_shards
from mlimages.dedup.phash import compute_phash, format_phash, phash_of_bytes
from mlimages.download.outcome import MIRROR, Result
from mlimages.download.shards import Shard

from .fault_server import make_jpeg, make_photo, run_download


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_phash_is_stored_in_the_sample_and_status_and_used_by_dedup(server, tmp_path):
    photos = {"/a.jpg": make_photo(1), "/b.png": make_photo(2, fmt="PNG"), "/c.jpg": make_photo(3, size=(40, 30))}
    for path, data in photos.items():
        server.routes[path] = lambda h, hits, data=data, path=path: h.send_body(
            200, data, "image/png" if path.endswith(".png") else "image/jpeg")
    outcome = run_download(tmp_path, [server.url(path) for path in photos])
    assert [outcome.status(line) for line in (1, 2, 3)] == ["ok", "ok", "ok"]
    for line in (1, 3):  # stored as fetched: hashed from the check's decode, the backfill's scale (here: full)
        stored = outcome.images[outcome.samples[line]["key"]]
        assert outcome.samples[line]["phash"] == outcome.statuses[line]["phash"] == format_phash(phash_of_bytes(stored))
        assert outcome.samples[line]["phash"] == format_phash(compute_phash(Image.open(io.BytesIO(stored))))
    png = outcome.images[outcome.samples[2]["key"]]  # re-encoded: hashed from the pixels that were encoded
    assert outcome.samples[2]["phash"] == outcome.statuses[2]["phash"]
    assert distance(outcome.samples[2]["phash"], format_phash(phash_of_bytes(png))) <= 2
    table = hash_image_shards(outcome.out, workers=1)
    assert table.backfilled == 0  # every hash read from the .json, none decoded again
    assert [format_phash(int(h)) for h in table.phashes] == [outcome.samples[line]["phash"] for line in (1, 2, 3)]


def test_a_sample_whose_status_line_was_lost_keeps_its_hash_and_source(tmp_path):
    shard = Shard(tmp_path, 0, retry_failures=False)
    result = Result(1, "k" * 32, "http://x/a.jpg", ((3, 1.0),), "ok", jpeg=make_jpeg(1), phash="00ff00ff00ff00ff",
                    via=MIRROR, url="http://m/a.jpg")
    shard.record(result)
    shard.close()
    shard.log_partial.write_text("", encoding="utf-8")  # killed after the sample, before its status line
    status = Shard(tmp_path, 0, retry_failures=False).statuses[1]
    assert (status["status"], status["phash"], status["served_by"]) == ("ok", "00ff00ff00ff00ff", "mirror")

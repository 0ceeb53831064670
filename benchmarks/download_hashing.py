"""What storing the pHash costs the downloader, as a share of its CPU per stored image, in one run.

    python -m benchmarks.bench_download --part hashing [--quick]

Per photo, least CPU of several calls: the validation of a JPEG stored as fetched before hashing
(header checks, then a 1/8-scale decode to prove the data complete) against ours now (header
checks, a decode at the dedup backfill's scale, at least 128 pixels a side, and the hash from it),
and the hash alone. The share is the mean added CPU over the photos against the downloader's CPU
per stored image, measured in the same run: our downloader fetching the same photos, each equally
often, from the HTTPS loopback server of the download benchmark (100 ms round trips). Also how far
the stored hash is from the backfill's, and from a hash of the former check's 1/8-scale decode.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from PIL import Image

from benchmarks.download_mixes import RTT_S, SETUP_RTTS, SLOW_S, make_photos, repo_download_config
from benchmarks.download_resize import cpu_per_call
from benchmarks.download_server import start_server, write_certificate
from benchmarks.report import markdown_table, write_section
from mlimages.dedup.phash import compute_phash, phash_of_bytes
from mlimages.download.validate import PHASH_DRAFT, can_store_as_is, make_stored_image
from mlimages.images import open_image

WEB_SIZES = [(500, 375), (1024, 768)]  # ImageNet's typical size, Flickr's "large"
TARGET_SHARE = 0.10


def make_web_photos(folder: Path, photos: list[Path]) -> list[Path]:
    """The release's photos (the largest of `photos`) scaled to the usual web sizes."""
    made = []
    for photo in [p for p in photos if not p.name.startswith("gen_")]:
        with Image.open(photo) as image:
            for width, height in WEB_SIZES:
                path = folder / f"{photo.stem}_{width}.jpg"
                image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(path, "JPEG", quality=90)
                made.append(path)
    return made


def previous_check(data: bytes, config) -> Image.Image:
    """The validation of an as-fetched JPEG before hashing: header checks, then a 1/8-scale decode."""
    image = open_image(data, config.limits)
    if not can_store_as_is(image, config.max_side):
        raise ValueError("the benchmark's photos must take the as-fetched path")
    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()
    return image


def per_photo(photos: list[Path], repeats: int) -> tuple[list[list], list[float]]:
    """A row per photo and the CPU seconds hashing added to each."""
    config = replace(repo_download_config(), min_side=1)
    rows, added = [], []
    for photo in photos:
        data = photo.read_bytes()
        before = cpu_per_call(lambda: previous_check(data, config), repeats)
        ours = cpu_per_call(lambda: make_stored_image(data, config), repeats)
        decoded = Image.open(io.BytesIO(data))
        decoded.draft("RGB", PHASH_DRAFT)
        decoded.load()
        hash_only = cpu_per_call(lambda: compute_phash(decoded), repeats)
        stored = int(make_stored_image(data, config).phash, 16)
        eighth_off = (compute_phash(previous_check(data, config)) ^ stored).bit_count()
        backfill_off = (phash_of_bytes(data) ^ stored).bit_count()
        added.append(max(0.0, ours - before))
        with Image.open(photo) as image:
            size = f"{decoded.width}x{decoded.height} of {image.width}x{image.height}"
        rows.append([photo.name, size, f"{1000 * before:.2f}", f"{1000 * ours:.2f}", f"{1000 * hash_only:.2f}",
                     f"{1000 * added[-1]:.2f}", backfill_off, eighth_off])
    return rows, added


def download_cpu_per_image(work: Path, photos: list[Path], count: int, run_child, write_list) -> dict:
    """Our downloader on `count` image URLs cycling through `photos`: its CPU seconds per stored image."""
    certificate = write_certificate(work)
    server, base_url = start_server(photos, RTT_S, SLOW_S, SETUP_RTTS, certificate)
    env = {**os.environ, "SSL_CERT_FILE": str(certificate[0]), "REQUESTS_CA_BUNDLE": str(certificate[0])}
    try:
        list_path = write_list(work / "hashing.tsv", [f"{base_url}/img/{i}" for i in range(count)])
        run = run_child(["--child", "ours", "--out", str(work / "hashing"), "--list", str(list_path),
                         "--concurrency", "16"], env)
    finally:
        server.terminate()
    return {"stored": run["stored"], "cpu_per_image_s": run["cpu_s"] / max(1, run["stored"])}


def main_hashing(quick: bool, run_child, write_list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        photos = make_photos(work, quick)
        photos += make_web_photos(work, photos)
        rows, added = per_photo(photos, repeats=3 if quick else 7)
        download = download_cpu_per_image(work, photos, 300 if quick else 1000, run_child, write_list)
    command = "python -m benchmarks.bench_download --part hashing" + (" --quick" if quick else "")
    write_section("download-hashing", "pHash in the downloader", command, render(rows, added, download))


def render(rows: list[list], added: list[float], download: dict) -> str:
    header = ["photo", "decoded at, of", "check before hashing ms", "ours (check + hash) ms", "hash alone ms",
              "added ms", "bits from backfill", "bits from a 1/8-scale hash"]
    mean_added = sum(added) / len(added)
    share = mean_added / download["cpu_per_image_s"]
    verdict = "met" if share < TARGET_SHARE else "not met"
    return f"""Validation CPU of a JPEG stored as fetched, least of several calls: before hashing (header checks and
a 1/8-scale decode) and ours (header checks, a decode at the dedup backfill's scale, at least 128 px a side,
so a stored hash equals a backfilled one bit for bit, and the hash). Photos: generated 1-12 MP JPEGs, the
release's sample photos, and those scaled to {", ".join(f"{w}x{h}" for w, h in WEB_SIZES)}. The last two columns:
Hamming distance of the stored hash to the dedup backfill's hash of the same bytes (`phash_of_bytes`), and to
a hash taken from the former 1/8-scale check decode (why the check decodes at the backfill's scale now).

{markdown_table(header, rows)}

Our downloader fetching these photos ({download["stored"]} stored, each photo equally often; HTTPS loopback,
{1000 * RTT_S:.0f} ms round trips, concurrency 16), in the same run: {1000 * download["cpu_per_image_s"]:.1f} CPU ms
per stored image. Hashing adds {1000 * mean_added:.2f} ms per image on average over the photos:
{100 * share:.1f}% of the download's CPU per image (target: under {100 * TARGET_SHARE:.0f}%: {verdict}).
5-minute load average at the end: {os.getloadavg()[1]:.1f} (a shared machine inflates both sides alike).
"""


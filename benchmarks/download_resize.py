"""CPU per image of the downloader's resize path against a full decode and the floor of any DCT-scaled decode."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

from benchmarks.download_baseline import full_decode
from benchmarks.download_mixes import repo_download_config
from mlimages.download.validate import make_stored_image
from mlimages.images import encode_jpeg


def bench_resize(photos: list[Path], repeats: int) -> list[list]:
    """A row per photo: ms of a full decode, of the same job from it, of ours, of a 1/8-scale decode, and ratios."""
    config = replace(repo_download_config(), max_side=512, min_side=1)
    rows = []
    for photo in photos:
        data = photo.read_bytes()
        stored = make_stored_image(data, config)
        decode = cpu_per_call(lambda: full_decode(data), repeats)
        same_job = cpu_per_call(lambda: encode_jpeg(full_decode(data).resize(
            (stored.width, stored.height), Image.Resampling.BICUBIC, reducing_gap=2.0), 90), repeats)
        ours = cpu_per_call(lambda: make_stored_image(data, config), repeats)
        floor = cpu_per_call(lambda: eighth_scale_decode(data), repeats)
        with Image.open(photo) as image:
            size = f"{image.width}x{image.height} ({image.width * image.height / 1e6:.1f} MP)"
        rows.append([photo.name, size, f"{1000 * decode:.1f}", f"{1000 * same_job:.1f}", f"{1000 * ours:.1f}",
                     f"{1000 * floor:.1f}", f"{ours / decode:.2f}", f"{ours / same_job:.2f}", f"{floor / decode:.2f}"])
    return rows


def eighth_scale_decode(data: bytes) -> Image.Image:
    """The least a DCT-scaled decode can do: DC coefficients only, but every entropy-coded bit is read."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (image.width // 8, image.height // 8))
    image.load()
    return image


def cpu_per_call(function, repeats: int) -> float:
    """The least CPU time of `repeats` calls: robust to other work on a shared machine."""
    function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return min(times)

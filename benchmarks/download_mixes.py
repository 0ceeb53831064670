"""The download benchmark's inputs: photo-like JPEGs, the latency mixes, and their round-trip bounds.

Shared by the comparison with the original design (`bench_download`) and the scale part
(`download_scale`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
from PIL import Image

from mlimages.config import load_params
from mlimages.download import DownloadConfig

REPO = Path(__file__).resolve().parent.parent


def repo_download_config() -> DownloadConfig:
    """The repository's `download:` params, the values a user runs with (the dataclass has no defaults)."""
    return load_params("download", DownloadConfig, REPO / "params.yaml")
SHARED = Path(os.environ.get("MLIMAGES_SHARED", REPO.parent / "shared"))
SHARED_PHOTOS = SHARED / "data" / "tencent-ml-images" / "images"
RTT_S, SETUP_RTTS, SLOW_S, DEADLINE_S = 0.1, 2, 30.0, 2.0
OURS_ATTEMPTS, OURS_BACKOFF_S = 2, 0.2  # ours retries a timeout once (it is retryable); the baseline never
MIXES = {  # 85% images and 15% 404s, then 2% of the lines turned into URLs that never answer
    "no timeouts": "every URL answers; dead photos answer at once, as on the release's image host",
    "spread": "the silent URLs scattered at random",
    "clustered": "the silent URLs in one run of consecutive lines, as when a host is down",
}


def make_photo(megapixels: float, seed: int, path: Path) -> Path:
    """A photo-like JPEG (smooth gradients plus grain) of about `megapixels`, 4:3."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = [127 + 100 * np.sin(x / (37 + 11 * c) + y / (53 + 7 * c) + seed) for c in range(3)]
    pixels = np.stack(base, axis=-1) + rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


def make_photos(folder: Path, quick: bool) -> list[Path]:
    sizes = [1, 4, 12] if quick else [1, 2, 4, 8, 12]
    photos = [make_photo(mp, i, folder / f"gen_{mp}mp.jpg") for i, mp in enumerate(sizes)]
    return photos + sorted(SHARED_PHOTOS.glob("*.jpg"))


def make_mix(mix: str, count: int, seed: int = 0) -> list[str]:
    """The kind of each line (`img`, `missing` or `slow`) of one of the `MIXES`."""
    rng = random.Random(seed)
    kinds = rng.choices(["img", "missing"], weights=[85, 15], k=count)
    dead = count // 50
    start = rng.randrange(count - dead)
    positions = range(start, start + dead) if mix == "clustered" else rng.sample(range(count), dead)
    for position in positions:
        kinds[position] = "img" if mix == "no timeouts" else "slow"
    return kinds


def latency_bound_s(kinds: list[str], contender: str, concurrency: int) -> float:
    """Seconds the round trips and timeouts alone impose on a contender (CPU taken as free).

    The baseline opens a connection per URL and each thread runs its own slice, so its slowest
    slice decides. Ours reuses connections (a timeout costs one, so each attempt after it pays the
    handshakes again) and shares the work, so the total divides evenly over the workers; a line
    waiting out its back-off holds no worker.
    """
    setup_s = SETUP_RTTS * RTT_S
    if contender.startswith("baseline"):
        cost = {"img": setup_s + RTT_S, "missing": setup_s + RTT_S, "slow": setup_s + DEADLINE_S}
        size = -(-len(kinds) // concurrency)
        return max(sum(cost[k] for k in kinds[i:i + size]) for i in range(0, len(kinds), size))
    cost = {"img": RTT_S, "missing": RTT_S, "slow": OURS_ATTEMPTS * (DEADLINE_S + setup_s)}
    return setup_s + sum(cost[k] for k in kinds) / concurrency  # each worker's first connection, then even shares

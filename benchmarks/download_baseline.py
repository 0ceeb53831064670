"""The download benchmark's baseline: the original release's design, written for the benchmark.

`download_urls_multithreading.py` gives each of N threads a contiguous slice of the list, fetches
with urllib (a new connection per URL), never retries, and waits for its threads by spinning on
`isAlive()`. The issue adds a full decode of every image, as validation would need.
"""

from __future__ import annotations

import io
import threading
import urllib.request
from pathlib import Path

from PIL import Image


def download_like_original(list_path: Path, out: Path, concurrency: int, timeout_s: float,
                           spin: bool) -> tuple[int, int]:
    """Download `list_path` into `out`; returns (images stored, lines).

    With `spin`, the main thread waits as the released script does, `while thread.isAlive(): pass`,
    so it competes for the interpreter lock with the workers; without, it joins them.
    """
    urls = [line.split("\t")[0] for line in list_path.read_text().splitlines()]
    out.mkdir(parents=True, exist_ok=True)
    size = -(-len(urls) // concurrency)
    stored = [0] * concurrency

    def work(thread: int) -> None:
        for number in range(thread * size, min(len(urls), (thread + 1) * size)):
            try:
                data = urllib.request.urlopen(urls[number], timeout=timeout_s).read()
                full_decode(data)
                (out / f"{number}.jpg").write_bytes(data)
                stored[thread] += 1
            except Exception:
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        if spin:
            while thread.is_alive():
                pass
        thread.join()
    return sum(stored), len(urls)


def full_decode(data: bytes) -> Image.Image:
    """What the original did with every image: decode at full size (no copy when already RGB)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")

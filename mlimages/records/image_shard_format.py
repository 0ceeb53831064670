"""The image-shard contract between the downloader, which writes it, and the record builder, which reads it.

A split folder of downloaded images holds shards named by a five-digit number (``00007.tar``,
with its ``00007.jsonl`` status file). Each stored sample is two tar members, the image
``<key>.jpg`` first, then its metadata ``<key>.json`` with the fields of `META_FIELDS`: the hash
`key` of the source, the 1-based list `line`, the `source`, parallel `labels` and `confidences`,
the stored `width` and `height`, and the `sha256` of the image bytes.
"""

from __future__ import annotations

SHARD_DIGITS = 5
IMAGE_SUFFIX = "jpg"
META_SUFFIX = "json"
META_FIELDS = ("key", "line", "source", "labels", "confidences", "width", "height", "sha256")


def shard_name(index: int) -> str:
    """The stem of shard `index` (``7`` -> ``00007``)."""
    return f"{index:0{SHARD_DIGITS}d}"


def is_shard_stem(stem: str) -> bool:
    """True for a shard's stem (``00007``), false for anything else found in the folder."""
    return stem.isdigit() and len(stem) == SHARD_DIGITS


def member_names(key: str) -> tuple[str, str]:
    """The two tar members of one sample: image, then metadata."""
    return f"{key}.{IMAGE_SUFFIX}", f"{key}.{META_SUFFIX}"

"""Append-only tar writing and crash recovery of a partly written tar.

Samples are appended member by member to an open file and flushed, so after a kill the file
holds every finished sample plus at most one torn one. `scan_samples` reads such a file back and
says where the last complete `<key>.jpg` + `<key>.json` pair ends, so the torn tail can be cut.
"""

from __future__ import annotations

import json
import tarfile
from typing import BinaryIO

from mlimages.records.image_shard_format import IMAGE_SUFFIX, META_SUFFIX, member_names

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def write_member(handle: BinaryIO, name: str, data: bytes) -> None:
    """Append one regular-file member (fixed mtime and mode, so archives are reproducible)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    handle.write(info.tobuf(format=tarfile.USTAR_FORMAT))
    handle.write(data)
    handle.write(b"\0" * (-len(data) % BLOCK))


def write_sample(handle: BinaryIO, key: str, jpeg: bytes, meta: dict) -> None:
    """Append the two members of one sample, image first, and push them to the OS."""
    image_name, meta_name = member_names(key)
    write_member(handle, image_name, jpeg)
    write_member(handle, meta_name, json.dumps(meta, sort_keys=True).encode("utf-8"))
    handle.flush()


def scan_samples(handle: BinaryIO) -> tuple[list[dict], int]:
    """Read the sample metadata of a (possibly torn) tar.

    Returns:
        The `.json` metadata of every complete sample, and the byte offset just after the last
        complete sample (where appending may continue).
    """
    samples: list[dict] = []
    offset = complete_end = 0
    image_key = None
    while True:
        header = handle.read(BLOCK)
        if len(header) < BLOCK or header == b"\0" * BLOCK:
            break
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            break
        padded = info.size + (-info.size % BLOCK)
        data = handle.read(padded)
        if len(data) < padded:
            break
        offset += BLOCK + padded
        stem, _, extension = info.name.rpartition(".")
        if extension == IMAGE_SUFFIX:
            image_key = stem
        elif extension == META_SUFFIX and stem == image_key:
            samples.append(json.loads(data[: info.size]))
            complete_end, image_key = offset, None
    return samples, complete_end

"""Where an input line's image comes from, and the key it is stored under.

A source is an `http(s)://` URL, a `file:` URL or an ImageNet id (`wnid/wnid_N.JPEG`) resolved
under the configured ImageNet-21k root. Keys are a digest of the source text, so nothing taken
from a URL (`../`, `%2e%2e`, spaces, non-ASCII) ever becomes part of a filesystem path.

A `file:` URL is absolute (`file:///data/x.jpg`) or relative (`file:data/demo/images/x.jpg`). A
relative one names a path under the working directory of the download, which `dvc repro` makes the
repository root. The demo's lists use relative URLs: the source text, and so every key, list,
record and DVC hash made from it, is then the same in every checkout wherever it sits, while an
absolute URL would carry the checkout's path into all of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlimages.annotations import source_kind
from mlimages.download.outcome import FetchError

KEY_HEX_CHARS = 32


def make_key(source: str) -> str:
    """The storage key of `source`: the first 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:KEY_HEX_CHARS]


def is_local(source: str) -> bool:
    """True for `file://` URLs and ImageNet ids: read from disk, no network politeness needed."""
    return source_kind(source) != "url"


def resolve_local_path(source: str, imagenet_root: str) -> Path:
    """The file a local source names.

    Args:
        source: a `file:` URL (percent-encoded as usual; a relative path is relative to the
            working directory) or an ImageNet id.
        imagenet_root: folder holding `wnid/wnid_N.JPEG` files; checked non-empty by the caller.

    Raises:
        FetchError: ``bad_url`` for a `file:` URL on another host, or a `file://` URL whose path
            is not absolute.
    """
    if source_kind(source) == "imagenet":
        return Path(imagenet_root) / source
    parts = urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise FetchError("bad_url", f"file URL names host {parts.netloc!r}; only local files are supported")
    path = unquote(parts.path)
    if not path:
        raise FetchError("bad_url", "file URL names no path")
    if source.startswith("file://") and not path.startswith("/"):
        raise FetchError("bad_url", "file:// URL must hold an absolute path (file:rel/path for a relative one)")
    return Path(path)


def read_local(path: Path, max_bytes: int) -> bytes:
    """Read a local image, refusing files over `max_bytes` without reading them.

    Raises:
        FetchError: ``not_found`` when the file is missing or unreadable, ``too_large`` when too big.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        raise FetchError("not_found", f"{type(error).__name__}") from None
    if len(data) > max_bytes:
        raise FetchError("too_large", f"file larger than {max_bytes} bytes")
    return data

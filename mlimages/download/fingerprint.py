"""Remember which settings made an output folder, so changed settings never mix shards.

`fingerprint.json` in the output folder holds the settings that decide the stored bytes
(`DownloadConfig.fingerprint()`). A rerun with different values stops with a one-line error
naming the changed fields; `--force` discards every shard instead (explicitly, with a log line),
since downloaded images may be irreplaceable and are never thrown away silently. With the same
settings `--force` discards nothing here: `staleness` then drops only the shards the list no
longer matches.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mlimages.download.config import DownloadConfig
from mlimages.download.shards import shard_files
from mlimages.errors import InputError

log = logging.getLogger(__name__)

FORMAT = "mlimages-image-shards-v1"
FILE_NAME = "fingerprint.json"


def prepare_output(out: Path, config: DownloadConfig, force: bool) -> None:
    """Create `out` and check (or write) its fingerprint.

    Raises:
        InputError: the folder holds shards made with different settings and `force` is off.
    """
    out.mkdir(parents=True, exist_ok=True)
    wanted = {"format": FORMAT, **config.fingerprint()}
    path = out / FILE_NAME
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if not changed:
            return
        if not force:
            details = ", ".join(f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in changed)
            raise InputError(
                f"shards here were made with other download settings ({details}); rerun with --force to "
                "discard them, or restore the old values",
                str(out),
            )
        discard_shards(out, f"download settings changed: {', '.join(changed)}")
    elif any(shard_files(out)):
        if not force:
            raise InputError(f"holds shard files but no {FILE_NAME}; rerun with --force to discard them", str(out))
        discard_shards(out, f"no {FILE_NAME}, so the settings that made them are unknown")
    write_atomic(path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def discard_shards(out: Path, why: str) -> None:
    files = shard_files(out)
    log.warning("--force: discarding all %d shard files in %s (%s)", len(files), out, why)
    for path in files:
        path.unlink()


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)

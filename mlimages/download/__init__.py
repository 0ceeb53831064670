"""The download stage: fetch the images of a prepared list into validated, resumable shards.

    from mlimages.download import DownloadConfig, download
    download(Path("data/lists/val.tsv"), Path("data/images/val"), Path("reports/download/val.json"), config)

Modules, in the order a line passes through them: `listfile` (the list, one shard's lines at a
time), `staleness` (shards a changed list no longer matches), `sources` (where an image comes from,
its key), `fetch` (HTTP with deadline and retries; `hosts` for per-host politeness), `validate`
(bytes to a stored RGB JPEG), `shards` and `tarstream` (archives, status files, resume), `pool`
(worker threads and watchdog), `progress` and `summary` (what the user sees), `run` (the loop
tying them).
"""

from mlimages.download.config import DownloadConfig
from mlimages.download.run import download

__all__ = ["DownloadConfig", "download"]

"""The download stage: fetch the images of a prepared list into validated, resumable shards.

    from mlimages.download import DownloadConfig, download
    download(Path("data/lists/val.tsv"), Path("data/images/val"), Path("reports/download/val.json"), config)

`run` checks the output folder and hands the shard tasks to an engine; `engines` runs them on
worker processes sharing one host budget (`coordinator`); `task` is the shard task, the unit an
engine schedules. Modules, in the order a line passes through them: `listfile` (the list, one
shard's lines at a time), `staleness` (shards a changed list no longer matches), `sources` (where
an image comes from, its key), `feed` and `pool` (worker threads, retries, watchdog), `fetch` (HTTP
with retries; `deadline` and `connection` bound each attempt; `hosts` and `adaptive` for per-host
politeness), `validate` (bytes to a stored RGB JPEG), `book`, `shards` and `tarstream` (archives,
status files, resume), `progress` and `summary` (what the user sees, in the `outcome` groups).
"""

from mlimages.download.config import DownloadConfig
from mlimages.download.run import download

__all__ = ["DownloadConfig", "download"]

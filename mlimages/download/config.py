"""The `download:` section of params.yaml as a frozen dataclass.

Fields fall in two groups. Those listed in `STORED_BYTES_FIELDS` change what ends up in the
shard archives (which images pass, how they are re-encoded, which lines go in which shard); the
output folder remembers them in a fingerprint so a changed value never mixes old and new shards.
The others (concurrency, timeouts, retries) only change how fast and how politely we fetch.
The mirror settings are not in the fingerprint either: turning the mirror on must recover the
lines an earlier run found dead (`shards.Shard.plan` sends them to the mirror), not discard every shard;
an image the mirror serves is marked as such in its sample (`served_by`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from mlimages.download.mirror import check_template
from mlimages.errors import InputError
from mlimages.images import ImageLimits

STORED_BYTES_FIELDS = (
    "samples_per_shard",
    "max_side",
    "jpeg_quality",
    "min_side",
    "max_aspect_ratio",
    "max_pixels",
    "max_body_bytes",
    "skip_noai",
    "placeholder_url_patterns",
    "placeholder_sha256",
)


@dataclass(frozen=True)
class DownloadConfig:
    """Settings of the download stage; see params.yaml for the meaning of each field."""

    samples_per_shard: int
    processes: int | None
    concurrency: int
    decode_workers: int | None
    per_host_concurrency: int
    per_host_concurrency_min: int
    per_host_concurrency_max: int
    connect_timeout_s: float
    read_timeout_s: float
    deadline_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    host_backoff_s: float
    max_retry_after_s: float
    watchdog_s: float
    max_redirects: int
    max_body_bytes: int
    user_agent: str
    skip_noai: bool
    placeholder_url_patterns: tuple[str, ...]
    placeholder_sha256: tuple[str, ...]
    min_side: int
    max_aspect_ratio: float
    max_pixels: int
    max_side: int
    jpeg_quality: int
    imagenet21k_root: str
    failure_warning_rate: float
    failure_window: int
    mirror_metadata_csv: str
    mirror_url_template: str
    prefer_mirror: bool

    def __post_init__(self):
        for name in ("samples_per_shard", "concurrency", "per_host_concurrency", "per_host_concurrency_min",
                     "per_host_concurrency_max", "max_attempts", "failure_window"):
            if getattr(self, name) < 1:
                raise InputError(f"must be at least 1, got {getattr(self, name)}", f"params.yaml: download.{name}")
        if self.processes is not None and self.processes < 1:
            raise InputError(f"must be at least 1 (or null: one per CPU core), got {self.processes}",
                             "params.yaml: download.processes")
        if not self.per_host_concurrency_min <= self.per_host_concurrency <= self.per_host_concurrency_max:
            raise InputError(
                f"must lie between per_host_concurrency_min ({self.per_host_concurrency_min}) and "
                f"per_host_concurrency_max ({self.per_host_concurrency_max})", "params.yaml: download.per_host_concurrency")
        if self.decode_workers is not None and self.decode_workers < 0:
            raise InputError(f"must be 0 or more (or null: one per CPU core), got {self.decode_workers}",
                             "params.yaml: download.decode_workers")
        if self.max_side < 0:
            raise InputError("must be 0 (keep size) or a positive number of pixels", "params.yaml: download.max_side")
        if not 1 <= self.jpeg_quality <= 95:
            raise InputError("must be between 1 and 95", "params.yaml: download.jpeg_quality")
        worst_s = self.max_attempts * (self.deadline_s + self.read_timeout_s + self.max_retry_after_s)
        if self.watchdog_s < self.deadline_s + self.read_timeout_s:
            raise InputError(
                f"must exceed deadline_s + read_timeout_s (worst case per URL about {worst_s:.0f} s)",
                "params.yaml: download.watchdog_s",
            )
        self._check_mirror()

    def _check_mirror(self) -> None:
        """The mirror settings must make sense together; whether the CSV exists is checked when a run starts."""
        if not self.mirror_metadata_csv:
            if self.prefer_mirror:
                raise InputError("needs download.mirror_metadata_csv (empty: no mirror)",
                                 "params.yaml: download.prefer_mirror")
            return
        try:
            check_template(self.mirror_url_template)
        except InputError as error:
            raise InputError(f"{error.message}, got {self.mirror_url_template!r}",
                             "params.yaml: download.mirror_url_template") from None

    @property
    def process_count(self) -> int:
        """Worker processes of the local engine: `processes`, or one per CPU core."""
        return self.processes if self.processes is not None else os.cpu_count() or 1

    @property
    def limits(self) -> ImageLimits:
        """The header checks applied to every image before it is decoded."""
        return ImageLimits(min_side=self.min_side, max_aspect_ratio=self.max_aspect_ratio, max_pixels=self.max_pixels)

    def fingerprint(self) -> dict:
        """The values that decide the stored bytes, as a JSON-ready dict."""
        values = asdict(self)
        chosen = {name: values[name] for name in STORED_BYTES_FIELDS}
        return {name: list(value) if isinstance(value, tuple) else value for name, value in chosen.items()}

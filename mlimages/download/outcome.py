"""What happened to one input line: the status vocabulary shared by fetching, validation and shards.

Every input line ends with exactly one status: ``ok`` or a failure class. Failure classes are
split into retryable ones (the next run tries again: the network or the server may recover) and
permanent ones (the URL is gone or is not a usable image; retried only with `--retry-failures`).

For the user the statuses fall in three groups (`group_of`): **stored**, **skipped** by policy (the
owner opted out with `noai`, or the line repeats an earlier source: nothing was wrong with the
fetch) and **failed** (everything else). A success rate is stored / (stored + failed): skips are
choices, not failures, and counting them as failures understated what was fetchable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OK = "ok"
ORIGIN, MIRROR = "origin", "mirror"  # which source served a line (`fallback`)

RETRYABLE = frozenset({"timeout", "connection", "dns", "server_error", "rate_limited", "watchdog"})

PERMANENT = frozenset(
    {
        "not_found",  # 404 or a missing local file
        "gone",  # 410, or a redirect to a "photo unavailable" placeholder
        "http_error",  # other 4xx
        "redirect_loop",
        "too_large",
        "noai",  # X-Robots-Tag: noai / noimageai
        "bad_url",
        "duplicate",  # the same source appears on an earlier line of the shard
        "not_image",
        "md5_mismatch",  # the mirror's bytes are not the original's (OriginalMD5)
        "truncated",
        "too_small",
        "bad_aspect",
        "too_many_pixels",
        "unexpected",  # a bug: logged as a warning, retried with --retry-failures
    }
)


SKIPPED_BY_POLICY = frozenset({"noai", "duplicate"})
STORED, SKIPPED, FAILED = "stored", "skipped", "failed"
GROUPS = (STORED, SKIPPED, FAILED)


def group_of(status: str) -> str:
    """The report group of a status: `STORED`, `SKIPPED` (by policy) or `FAILED`."""
    if status == OK:
        return STORED
    return SKIPPED if status in SKIPPED_BY_POLICY else FAILED


def success_rate(stored: int, failed: int) -> float:
    """Stored over what was meant to be stored: policy skips count on neither side."""
    return stored / (stored + failed) if stored + failed else 0.0


def is_retryable(status: str) -> bool:
    """True when a later run should try this line again without being asked to."""
    return status in RETRYABLE


class FetchError(Exception):
    """A failed fetch or validation, classed for the status file.

    Args:
        reason: a failure class (see `RETRYABLE` and `PERMANENT`).
        detail: one line for humans.
        http_status: the HTTP status code when there was a response.
        retry_after_s: how long the server asked us to wait (429/503 `Retry-After`).

    `Fetcher.fetch` adds `attempts` (requests made) and `retry_in_s` (when to try again; None: final).
    """

    def __init__(self, reason: str, detail: str, http_status: int | None = None, retry_after_s: float | None = None):
        self.reason = reason
        self.detail = detail
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        self.attempts: int | None = None
        self.retry_in_s: float | None = None
        super().__init__(f"{reason}: {detail}")

    @property
    def retryable(self) -> bool:
        return is_retryable(self.reason)


@dataclass
class Result:
    """The outcome of one input line, as returned by a worker (workers share no counters)."""

    line: int
    key: str
    source: str
    labels: tuple[tuple[int, float], ...]
    status: str
    attempts: int = 0
    elapsed_s: float = 0.0
    http_status: int | None = None
    error: str = ""
    jpeg: bytes | bytearray | None = field(default=None, repr=False)
    width: int = 0
    height: int = 0
    started_s: float | None = None  # monotonic time of the first attempt
    retry_at_s: float | None = None  # set while the line waits for its next attempt
    phash: str = ""  # 16 hex digits of the stored image's perceptual hash (`dedup.phash`)
    via: str = ORIGIN  # the source tried now; at the end, the one that served the line
    url: str = ""  # the URL of `via` (the mirror's, or `source`)
    md5: str = ""  # the mirror's expected MD5 (OriginalMD5)
    mirror_checked: bool = False  # the mirror index was asked about this line
    leg_attempts: int = 0  # attempts at the current source
    legs: list = field(default_factory=list)  # outcomes of the sources tried before `via`

    def status_record(self) -> dict:
        """The line written to the shard's NNNNN.jsonl status file."""
        record = {"line": self.line, "key": self.key, "source": self.source, "status": self.status}
        record["labels"] = [[index, confidence] for index, confidence in self.labels]
        record.update(retryable=is_retryable(self.status), http_status=self.http_status, attempts=self.attempts)
        record.update(elapsed_s=round(self.elapsed_s, 3), error=self.error[:200])
        if self.jpeg is not None:
            record["bytes"] = len(self.jpeg)
        if self.status == OK:
            record["served_by"] = self.via
        if self.phash:
            record["phash"] = self.phash
        if self.mirror_checked:
            record["mirror_checked"] = True  # a later run with the mirror on need not fetch this line again
        if self.legs:  # more than one source tried: every one's outcome, and the error names them all
            record["legs"] = self.legs + [self.leg()]
            if self.status != OK:
                each = (f"{leg['via']} {leg['status']}: {leg['error']}" for leg in record["legs"])
                record["error"] = "; ".join(each)[:400]
        return record

    def leg(self) -> dict:
        """The outcome at the current source, as kept in the status record's `legs`."""
        return {"via": self.via, "url": self.url or self.source, "status": self.status,
                "http_status": self.http_status, "attempts": self.leg_attempts, "error": self.error[:200]}

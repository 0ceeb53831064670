"""What the user sees while a download runs: a progress bar and a warning when failures spike.

The bar counts input lines (those done by earlier runs too, so the ETA is honest on a resumed run)
and shows this run's lines in the report's groups: stored, skipped by policy, failed, and the
success rate stored / (stored + failed). A sliding window over the last fetches catches a sudden
rise in failures (DNS trouble, a dead proxy, a throttling host) long before the final success
rate would. `miniters=1`: tqdm's automatic `miniters` grows during a fast phase and then holds the
bar still for seconds once lines slow down; with it fixed, the bar redraws at least every
`mininterval` while lines complete.

With several worker processes, each process sends its statuses in small batches
(`ProgressSender`) and the parent feeds them to the one `Progress` of the run.
"""

from __future__ import annotations

import collections
import logging
import time

from tqdm import tqdm

from mlimages.download.outcome import FAILED, GROUPS, SKIPPED, STORED, group_of, success_rate

log = logging.getLogger(__name__)

WARNING_INTERVAL_S = 60.0
SEND_INTERVAL_S = 0.25


class Progress:
    """Progress bar plus failure-rate watch.

    Args:
        total_lines: lines this run passes over (for the ETA).
        window: number of recent fetches the failure rate is computed on.
        warning_rate: failure fraction of the window above which a warning is logged.
    """

    def __init__(self, total_lines: int, window: int, warning_rate: float, file=None):
        self.bar = tqdm(total=total_lines, unit="line", smoothing=0.05, mininterval=0.5, miniters=1,
                        dynamic_ncols=True, file=file)
        self.recent: collections.deque[str] = collections.deque(maxlen=window)
        self.warning_rate = warning_rate
        self.groups: collections.Counter = collections.Counter({group: 0 for group in GROUPS})
        self._last_warning = -WARNING_INTERVAL_S
        self._last_postfix = 0.0

    def skip(self, count: int = 1) -> None:
        """Lines that needed nothing (done by an earlier run)."""
        self.bar.update(count)

    def add(self, status: str) -> None:
        """A line of this run finished with `status` (fetched, or skipped by policy)."""
        group = group_of(status)
        self.groups[group] += 1
        if group != SKIPPED:
            self.recent.append(status)
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix >= 1.0:
            self._last_postfix = now
            self._set_postfix()
        if group != SKIPPED:
            self._warn_if_failing(now)

    def withdraw(self, statuses: collections.Counter, skipped: int) -> None:
        """Take back lines counted for a shard attempt that is retried (the retry counts them again)."""
        for status, count in statuses.items():
            self.groups[group_of(status)] -= count
        self.bar.update(-(sum(statuses.values()) + skipped))

    def _set_postfix(self) -> None:
        rate = success_rate(self.groups[STORED], self.groups[FAILED])
        counts = {group: f"{self.groups[group]:,}" for group in GROUPS}  # strings: tqdm would print 2e+4
        self.bar.set_postfix(counts, ok=f"{100.0 * rate:.1f}%", refresh=False)

    def _warn_if_failing(self, now: float) -> None:
        if len(self.recent) < self.recent.maxlen or now - self._last_warning < WARNING_INTERVAL_S:
            return
        failures = collections.Counter(status for status in self.recent if group_of(status) == FAILED)
        rate = sum(failures.values()) / len(self.recent)
        if rate >= self.warning_rate:
            self._last_warning = now
            common = ", ".join(f"{name} {count}" for name, count in failures.most_common(3))
            log.warning(
                "%.0f%% of the last %d fetches failed (%s): check the network, DNS or the list",
                100 * rate,
                len(self.recent),
                common,
            )

    def close(self) -> None:
        if sum(self.groups.values()):
            self._set_postfix()
        self.bar.close()


class ProgressSender:
    """The progress sink of a worker process: batches statuses to the parent every `SEND_INTERVAL_S`.

    Args:
        events: the run's event queue; messages are ``("progress", statuses, lines skipped)``.
    """

    def __init__(self, events):
        self.events = events
        self.statuses: list[str] = []
        self.skipped = 0
        self._last_send = time.monotonic()

    def add(self, status: str) -> None:
        self.statuses.append(status)
        self._send_if_due()

    def skip(self) -> None:
        self.skipped += 1
        self._send_if_due()

    def _send_if_due(self) -> None:
        if time.monotonic() - self._last_send >= SEND_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if self.statuses or self.skipped:
            self.events.put(("progress", self.statuses, self.skipped))
        self.statuses, self.skipped = [], 0
        self._last_send = time.monotonic()


def apply_progress(progress: Progress, statuses: list[str], skipped: int) -> None:
    """Feed a worker process's batch to the run's bar."""
    for status in statuses:
        progress.add(status)
    if skipped:
        progress.skip(skipped)

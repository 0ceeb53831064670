"""What the user sees while a download runs: a progress bar and a warning when failures spike.

The bar counts input lines (skipped ones too, so the ETA is honest on a resumed run) and shows the
success rate of the lines fetched in this run. A sliding window over the last fetches catches a
sudden rise in failures (DNS trouble, a dead proxy, a throttling host) long before the final
success rate would.
"""

from __future__ import annotations

import collections
import logging
import time

from tqdm import tqdm

from mlimages.download.outcome import OK

log = logging.getLogger(__name__)

WARNING_INTERVAL_S = 60.0


class Progress:
    """Progress bar plus failure-rate watch.

    Args:
        total_lines: lines this run passes over (for the ETA).
        window: number of recent fetches the failure rate is computed on.
        warning_rate: failure fraction of the window above which a warning is logged.
    """

    def __init__(self, total_lines: int, window: int, warning_rate: float):
        self.bar = tqdm(total=total_lines, unit="line", smoothing=0.05, mininterval=1.0, dynamic_ncols=True)
        self.recent: collections.deque[str] = collections.deque(maxlen=window)
        self.warning_rate = warning_rate
        self.fetched = self.ok = 0
        self._last_warning = -WARNING_INTERVAL_S
        self._last_postfix = 0.0

    def skip(self) -> None:
        """A line that needed no fetch (done earlier, or a duplicate)."""
        self.bar.update(1)

    def add(self, status: str) -> None:
        """A fetched line finished with `status`."""
        self.fetched += 1
        self.ok += status == OK
        self.recent.append(status)
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix >= 1.0:
            self._last_postfix = now
            self.bar.set_postfix(ok=f"{100.0 * self.ok / self.fetched:.1f}%", fetched=self.fetched, refresh=False)
        self._warn_if_failing(now)

    def _warn_if_failing(self, now: float) -> None:
        if len(self.recent) < self.recent.maxlen or now - self._last_warning < WARNING_INTERVAL_S:
            return
        failures = collections.Counter(status for status in self.recent if status != OK)
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
        if self.fetched:
            self.bar.set_postfix(ok=f"{100.0 * self.ok / self.fetched:.1f}%", fetched=self.fetched, refresh=False)
        self.bar.close()

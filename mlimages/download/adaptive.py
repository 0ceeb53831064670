"""Adaptive per-host concurrency: additive increase, multiplicative decrease (as TCP does).

A fixed cap is wrong both ways: a CDN or an image mirror answers hundreds of requests at once,
while a small site that starts timing out deserves fewer. So each host's cap moves between a
floor and a ceiling on what its answers say:

- a clean, quick answer while the host is using its whole cap adds one slot until the host's first
  cut (slow start: the cap doubles every round trip, so a big host reaches its ceiling in a few
  round trips instead of one slot per round trip), and `1 / cap` after it (about one slot per round
  of `cap` answers: probing gently near the level where trouble began);
- `429` / `503` (the host said "too much") halves the cap at once;
- timeouts, connection errors and other 5xx halve it only when they are a real share of the
  host's recent answers (`TROUBLE_COUNT` of the last `WINDOW`): a few URLs of a healthy host that
  never answer are the URLs' fault, and halving on each of them would pin a big host at the floor
  (a retry of a URL that failed before says nothing new about its host: the fetch reports it as
  neutral, else the last silent URLs of a run would halve their host down to the floor);
- cuts are at least `CUT_INTERVAL_S` apart: requests already in flight when trouble began report
  it too, and one episode must not count as many.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

CLEAN, SLOW, TROUBLE, CONGESTED, NEUTRAL = "clean", "slow", "trouble", "congested", "neutral"
WINDOW = 20
TROUBLE_COUNT = 5
CUT_INTERVAL_S = 1.0


@dataclass
class AdaptiveCap:
    """The cap of one host.

    Args:
        value: the current cap (fractional: growth comes in steps of 1 / cap).
        floor, ceiling: the range the cap moves in.
    """

    value: float
    floor: int
    ceiling: int
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=WINDOW))
    last_cut_s: float = -CUT_INTERVAL_S
    slow_start: bool = True

    @property
    def slots(self) -> int:
        """Requests allowed in flight now."""
        return max(self.floor, min(self.ceiling, int(self.value)))

    def on_answer(self, signal: str, in_flight: int) -> None:
        """Update the cap after one request ended with `signal`, `in_flight` requests still running."""
        if signal == CONGESTED:
            self._cut()
        elif signal == TROUBLE:
            self.recent.append(True)
            if sum(self.recent) >= TROUBLE_COUNT:
                self._cut()
        elif signal in (CLEAN, SLOW):
            self.recent.append(False)
            if signal == CLEAN and in_flight + 1 >= self.slots:  # growing a cap the host does not use proves nothing
                step = 1.0 if self.slow_start else 1.0 / max(1.0, self.value)
                self.value = min(float(self.ceiling), self.value + step)

    def _cut(self) -> None:
        now = time.monotonic()
        if now - self.last_cut_s < CUT_INTERVAL_S:
            return
        self.last_cut_s, self.slow_start = now, False
        self.value = max(float(self.floor), self.value / 2)
        self.recent.clear()


def signal_of(status: str, http_status: int | None, elapsed_s: float, slow_s: float) -> str:
    """What one attempt's outcome says about its host's load."""
    if http_status in (429, 503):
        return CONGESTED
    if status in ("timeout", "connection", "watchdog") or (http_status or 0) >= 500:
        return TROUBLE
    if status in ("dns", "bad_url", "rate_limited"):
        return NEUTRAL  # not an answer of the host (rate_limited here: not even requested)
    return CLEAN if elapsed_s <= slow_s else SLOW

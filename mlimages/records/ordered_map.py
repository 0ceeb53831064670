"""Run a function over items on a few threads and get the results back in input order.

The record builders and the dedup stage's hash backfill decode images with Pillow, which releases
the GIL while it decodes, resizes and encodes, so threads keep every core busy without copying
images between processes. Results come back in input order, so what is written from them does not
depend on the number of workers. Free of TensorFlow: the dedup stage uses it.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator


def map_ordered(function: Callable, items: Iterable, num_workers: int) -> Iterator[tuple]:
    """Yield ``(item, function(item))`` in input order, computing up to 4 x `num_workers` ahead."""
    if num_workers <= 1:
        yield from ((item, function(item)) for item in items)
        return
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append((item, pool.submit(function, item)))
            if len(pending) >= 4 * num_workers:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()

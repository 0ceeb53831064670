"""The Ray driver's parts that need no cluster: the bar fed per attempt, the no-node clock, shard ranges."""

from __future__ import annotations

import collections
import io

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")

from mlimages.cluster.attempt_progress import AttemptProgress  # noqa: E402
from mlimages.cluster.download_engine import NoNodes, no_nodes_error  # noqa: E402
from mlimages.cluster.node_watch import NodeWatch, shard_ranges  # noqa: E402
from mlimages.download.engines import WorkerDied  # noqa: E402
from mlimages.download.outcome import FAILED, SKIPPED, STORED  # noqa: E402
from mlimages.download.progress import Progress  # noqa: E402


def bar(total: int) -> Progress:
    return Progress(total, window=100, warning_rate=1.0, file=io.StringIO())


def test_a_retried_attempt_is_counted_once():
    """Attempt 1 counts 7 lines and is lost; its retry (2) walks the whole shard of 10 lines again,
    and a late batch of the lost attempt arrives after the retry: the bar ends at 10."""
    progress = bar(10)
    feed = AttemptProgress(progress)
    feed.submitted(1)
    feed.apply(1, ["ok", "ok", "not_found", "ok"], 1)
    feed.apply(1, ["ok", "ok"], 0)
    assert progress.bar.n == 7
    assert feed.withdraw(1) == 7
    assert progress.bar.n == 0 and progress.groups[STORED] == 0 and progress.groups[FAILED] == 0
    feed.submitted(2)
    feed.apply(2, [], 5)  # what attempt 1 stored: done earlier, for the retry
    feed.apply(1, ["ok"], 0)  # the lost attempt still ran for a moment
    feed.apply(2, ["ok", "not_found", "ok", "ok", "ok"], 0)
    feed.finished(2)
    assert progress.bar.n == 10
    assert (progress.groups[STORED], progress.groups[FAILED], progress.groups[SKIPPED]) == (4, 1, 0)
    progress.close()


def test_a_committed_attempts_late_batch_still_counts():
    """The task's last batch may reach the driver after its result: it belongs to the bar."""
    progress = bar(3)
    feed = AttemptProgress(progress)
    feed.submitted(4)
    feed.apply(4, ["ok", "ok"], 0)
    feed.finished(4)
    feed.apply(4, ["ok"], 0)
    assert progress.bar.n == 3 and feed.counted == {}
    progress.close()


def test_withdraw_takes_back_the_groups_too():
    progress = bar(4)
    progress.add("ok")
    progress.add("not_found")
    progress.skip(2)
    progress.withdraw(collections.Counter({"ok": 1, "not_found": 1}), 2)
    assert progress.bar.n == 0 and sum(progress.groups.values()) == 0
    progress.close()


def test_the_no_node_clock_starts_without_a_cpu_and_resets_when_one_joins():
    watch = NodeWatch(wait_s=30)
    watch.cpus = 0
    watch.note(100.0)
    assert watch.without_since == 100.0
    watch.note(120.0)
    assert watch.without_since == 100.0  # the clock runs from the first check without a CPU
    watch.cpus = 2
    watch.note(125.0)
    assert watch.without_since is None
    watch.cpus = 0.5  # a node offering half a CPU cannot run a 1-CPU shard task
    watch.note(130.0)
    assert watch.without_since == 130.0


def test_the_no_node_error_is_one_line_naming_the_shards():
    watch = NodeWatch(wait_s=45)
    error = no_nodes_error(watch, [9, 3, 4, 5, 12])
    assert isinstance(error, NoNodes) and isinstance(error, WorkerDied)
    text = str(error)
    assert "\n" not in text
    assert "45 s" in text and "cluster.node_wait_s" in text and "5 shards not done (shards 3-5, 9, 12)" in text


def test_shard_ranges_are_cut_short_for_a_long_list():
    assert shard_ranges([0, 1, 2, 3, 7, 9, 10]) == "shards 0-3, 7, 9-10"
    assert shard_ranges(list(range(0, 40, 2)), most=3) == "shards 0, 2, 4 and 17 more"

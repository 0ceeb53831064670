"""Evaluation results on registered versions, and the `champion` alias that follows the best one.

A version's headline metrics are its tags (``eval.<metric>``, ``eval.protocol``), so the registry UI, the
model card and `mlimages registry list` all show the same numbers, and they are its first tags.
`champion` moves to a version only when it beats the current champion on the metric named in params (`registry:`).
"""

from __future__ import annotations

import contextlib
import logging
import re

import mlflow
from mlflow.exceptions import MlflowException

from mlimages.errors import InputError
from mlimages.tracking.model_card import refresh_model_card
from mlimages.tracking.names import CHAMPION, EVAL_PREFIX, PROTOCOL_TAG

_log = logging.getLogger(__name__)


def record_evaluation(name: str, version: str, metrics: dict[str, float], protocol: str,
                      metric: str) -> bool:
    """Put evaluation results on a version (tags and model card) and move `champion` if it wins.

    The tags are replaced, not merged: a metric the new evaluation lacks (a clean score evaluated
    without the leaked list this time) would otherwise stand beside a protocol that did not make it.

    Returns:
        True when the version is (now) the champion.
    """
    client = mlflow.MlflowClient()
    write_metric_tags(client, name, version, select_headline_metrics(metrics, metric), protocol)
    if metric not in metrics:
        raise InputError(f"metric {metric!r} was not computed; computed: {', '.join(sorted(metrics))}",
                         "registry: pretrained_metric / finetuned_metric")
    won = update_champion(name, version, metric)
    refresh_model_card(name, version)
    show_champion(name, metric)
    return won


def show_champion(name: str, metric: str) -> None:
    """Put the champion and its metric on the registered model itself (tag and description).

    The registry's models list shows a model's tags and description but only one of its aliases,
    so without this the champion's number is a click away on every model. Written, then checked
    against a fresh read of the alias and written again if the alias moved meanwhile: a concurrent
    evaluation's stale write is always followed by its own check, so the last word names the holder.
    """
    client = mlflow.MlflowClient()
    champion = read_champion(client, name)
    for _ in range(MAX_REPAIRS):
        if champion is None:
            return
        value = champion.tags.get(f"{EVAL_PREFIX}{metric}", "?")
        shown = f"{100 * float(value):.2f}%" if value != "?" else value
        retry_duplicate_key(client.set_registered_model_tag, name, CHAMPION, f"v{champion.version} {metric} {shown}")
        client.update_registered_model(
            name, description=f"Champion: version {champion.version} ({metric} {shown}). ResNet checkpoints of "
                              f"mlimages; load it as models:/{name}@{CHAMPION}.")
        shown_version, champion = champion, read_champion(client, name)
        if champion is not None and (champion.version, champion.tags) == (shown_version.version, shown_version.tags):
            return


def write_metric_tags(client, name: str, version: str, headline: dict[str, float], protocol: str) -> None:
    """Make `headline` and `protocol` the version's ``eval.*`` tags and its first tags.

    The registry UI's versions table lists a version's tags in the order of the REST response,
    which is the order the store returns the rows: the order they were written (SQLite reads them
    through an index on the version, in rowid order). A version is registered before it can be
    evaluated (evaluation loads it through the registry), and re-evaluations change the metrics,
    so creating it with them is not possible: after writing the metrics this deletes and re-writes
    the version's other tags, which puts them after the metrics. Metric tags are updated in place,
    never deleted first, so a concurrent evaluation comparing champion metrics (`update_champion`)
    never finds one missing; the lineage tags are gone for a moment, and nothing but the model card
    (rewritten after this) and the UI reads them. The version's own page sorts its tag table by
    key, where ``eval.`` comes before ``git_commit`` and ``mlimages.``: the metrics lead there too.
    (A PostgreSQL store returns rows in their physical order, usually but not surely the write order.)
    """
    tags = client.get_model_version(name, version).tags
    for key in tags:  # a metric of an earlier evaluation only
        if key.startswith(EVAL_PREFIX) and key != PROTOCOL_TAG and key[len(EVAL_PREFIX):] not in headline:
            client.delete_model_version_tag(name, version, key)
    for key, value in headline.items():
        client.set_model_version_tag(name, version, f"{EVAL_PREFIX}{key}", f"{value:.6g}")
    client.set_model_version_tag(name, version, PROTOCOL_TAG, protocol)
    for key, value in tags.items():
        if not key.startswith(EVAL_PREFIX):
            with contextlib.suppress(MlflowException):  # a concurrent re-evaluation deleted it first
                client.delete_model_version_tag(name, version, key)
            client.set_model_version_tag(name, version, key, value)


HEADLINE = re.compile(r"(top[15])_(\d+)(_clean)?|map_\w+|leaked_left_out")


def select_headline_metrics(metrics: dict[str, float], metric: str) -> dict[str, float]:
    """The metrics a version shows as tags, in the order shown: top-1/top-5 at each size, mAP, their
    clean twins with the number of leaked images left out (only when some image was), the champion metric.

    The other multi-label numbers (CF1, OF1, precision@k, ...) stay in the evaluation run and its
    JSON file: as tags they pushed the headline numbers off the registry's screen. A clean score
    that left nothing out equals the full one, so it stays there too.
    """
    cleaned = metrics.get("leaked_left_out", 0) > 0
    shown = [k for k in metrics if k == metric or (HEADLINE.fullmatch(k) and (cleaned or not is_clean(k)))]
    return {k: metrics[k] for k in sorted(shown, key=headline_rank)}


def is_clean(key: str) -> bool:
    return key.endswith("_clean") or key == "leaked_left_out"


def headline_rank(key: str) -> tuple:
    """Sort key: full score before clean, then top-1/top-5 by size (smallest first), then mAP, then the rest."""
    found = HEADLINE.fullmatch(key)
    kind = 0 if found and found[1] else 1 if key.startswith("map_") else 2
    size = int(found[2]) if found and found[2] else 0
    return (is_clean(key), kind, size, key)


def update_champion(name: str, version: str, metric: str) -> bool:
    """Move `champion` to `version` if there is none or it beats the champion on `metric` (strictly).

    How a race is resolved: the registry has no compare-and-set for aliases, so two evaluations
    finishing together can both read the old champion, both decide to move, and the worse one can
    write last. So every evaluation writes its metric tag before it reads (`record_evaluation`), and
    after moving the alias it re-reads every version's metric and moves the alias on to the best one
    if that beats the alias's version, until a re-read agrees. The last alias write is followed by
    such a re-read, which sees every tag written before it; a tag written after it belongs to an
    evaluation that reads the alias later and moves it if it wins. So the alias ends on the best
    evaluated version, whatever the interleaving; ties keep the version already there. (A champion
    re-evaluated lower keeps the alias until another evaluation moves it: then the re-read may
    move it on to an earlier version that now scores best.)

    Returns:
        True when `version` holds the alias afterwards.
    """
    client = mlflow.MlflowClient()
    value = float(client.get_model_version(name, version).tags[f"{EVAL_PREFIX}{metric}"])
    current = read_champion(client, name)
    if current is not None and str(current.version) == str(version):
        return True  # re-evaluating the champion keeps it, whatever its new number: nothing moves
    if current is not None:
        best = current.tags.get(f"{EVAL_PREFIX}{metric}")
        if best is not None and value <= float(best):
            return False
    holder = str(version)
    for _ in range(MAX_REPAIRS):
        set_champion(client, name, holder)
        _log.info("%s: champion is now version %s (%s)", name, holder, metric)
        better = find_better_version(client, name, metric)
        if better is None:
            break
        holder = better
    final = read_champion(client, name)  # another evaluation may have moved it on since
    return final is not None and str(final.version) == str(version)


MAX_REPAIRS = 20  # each repair moves the alias to a strictly better version: a bound on a pathological race


DUPLICATE_KEY = re.compile(r"duplicate key|UniqueViolation|UNIQUE constraint failed")


def set_champion(client, name: str, version: str) -> None:
    """Point `champion` at `version` (see `retry_duplicate_key`)."""
    retry_duplicate_key(client.set_registered_model_alias, name, CHAMPION, version)


def retry_duplicate_key(write, *args) -> None:
    """Call `write(*args)`, once more if a concurrent write created the same row first.

    MLflow sets an alias or a registered model's tag by looking it up, then inserting or updating
    it: when two evaluations create it at the same moment, the second insert breaks the database's
    unique key (a 400 from the server). The row exists by then, so writing again is an update.
    """
    for attempt in range(3):
        try:
            write(*args)
            return
        except MlflowException as error:
            if attempt == 2 or not DUPLICATE_KEY.search(str(error)):
                raise


def read_champion(client, name: str):
    """The version holding `champion`, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def find_better_version(client, name: str, metric: str) -> str | None:
    """A version whose `metric` beats the current champion's (the best such), or None.

    Read after every alias move: the repair step of `update_champion`.
    """
    champion = read_champion(client, name)
    key = f"{EVAL_PREFIX}{metric}"
    scores = {str(v.version): float(v.tags[key]) for v in client.search_model_versions(f"name = '{name}'")
              if key in v.tags}
    if not scores:
        return None
    best = max(scores, key=lambda v: (scores[v], -int(v)))
    held = scores.get(str(champion.version)) if champion is not None else None
    return best if held is None or scores[best] > held else None

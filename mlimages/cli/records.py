"""`mlimages records convert|inspect ...`: convert original records, look into record folders."""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
from pathlib import Path
from typing import Iterable

from mlimages.errors import InputError

DEFAULT_SHARD_BYTES = 134_217_728


def register(subparsers) -> None:
    parser = subparsers.add_parser("records", help="convert and inspect TFRecord folders")
    commands = parser.add_subparsers(dest="records_command", required=True)

    convert = commands.add_parser("convert", help="original Tencent records -> our format (sparse labels)")
    convert.add_argument("sources", nargs="+", metavar="SRC", help="legacy .tfrecords files")
    convert.add_argument("--out", required=True, help="split folder to write (replaced atomically)")
    convert.add_argument("--shard-bytes", type=int, default=DEFAULT_SHARD_BYTES, help="shard size target")
    convert.set_defaults(func=run_convert)

    inspect = commands.add_parser("inspect", help="counts and labels of a records folder or file")
    inspect.add_argument("path", help="a split folder (with index.json) or one .tfrecord(s) file, ours or legacy")
    inspect.add_argument("--limit", type=int, default=None, help="read only the first N records")
    inspect.add_argument("--top", type=int, default=10, help="how many of the most frequent labels to list")
    inspect.add_argument("--verify", action="store_true",
                         help="first check sizes, sha256 and counts against index.json (a file: record CRCs); "
                              "exit 1 naming each bad shard and its first bad record")
    inspect.add_argument("--json", action="store_true", help="print JSON for machines")
    inspect.set_defaults(func=run_inspect)


def run_convert(args: argparse.Namespace) -> int:
    from mlimages.records.legacy import convert_legacy

    index = convert_legacy(args.sources, args.out, args.shard_bytes)
    print(f"wrote {index['count']} records ({index['num_classes']} classes) in {len(index['shards'])} shard(s) "
          f"to {args.out}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from mlimages.records.index import list_shards, read_index

    path = Path(args.path)
    if path.is_dir():
        index, files = read_index(path), list_shards(path)
    elif path.is_file():
        index, files = None, [path]
    else:
        raise InputError("no such folder or file", str(path))
    if args.verify:  # before any record is decoded: a corrupted shard must be reported, not crash the summary
        problems = verify(path, index is not None)
        if problems:
            report = {"path": str(path), "problems": problems}
            print(json.dumps(report, indent=2) if args.json else format_problems(report))
            return 1
    summary = {"path": str(path), **summarize_files(files, path, args.limit, args.top)}
    if index is not None:
        summary["index"] = {k: v for k, v in index.items() if k != "shards"} | {"shards": len(index["shards"])}
    summary["problems"] = [] if args.verify else None
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def verify(path: Path, is_folder: bool) -> list[str]:
    """Problems of a split folder (against its index.json) or of one file (record CRCs)."""
    from mlimages.records.index import verify_folder
    from mlimages.records.reader import find_corrupt_record

    if is_folder:
        return verify_folder(path, find_bad_record=find_corrupt_record)
    bad = find_corrupt_record(path)
    return [f"{path}: {bad}"] if bad else []


def summarize_files(files: list[Path], path: Path, limit: int | None, top: int) -> dict:
    """Layout and label summary of the first `limit` records of `files` (ours or legacy)."""
    from mlimages.records.legacy import decode_legacy_example, is_legacy_example
    from mlimages.records.schema import decode_example

    stream = itertools.islice(read_serialized(files), limit)
    first = next(stream, None)
    layout = "mlimages" if path.is_dir() else None
    if layout is None and first is not None:
        layout = "legacy" if is_legacy_example(first) else "mlimages"
    decode = functools.partial(decode_legacy_example, where=str(path)) if layout == "legacy" else decode_example
    records = (decode(serialized) for serialized in itertools.chain([first] if first else [], stream))
    return {"layout": layout or "empty", **summarize(records, load_names(path), top)}


def read_serialized(files: list[Path]) -> Iterable[bytes]:
    """Serialized records file by file; a record failing its CRC is an InputError naming file and record."""
    import tensorflow as tf

    from mlimages.records.reader import describe_data_loss, iter_serialized

    for file in files:
        count = 0
        try:
            for serialized in iter_serialized([file]):
                yield serialized
                count += 1
        except tf.errors.DataLossError as error:
            raise InputError(f"record {count} is corrupted ({describe_data_loss(error)}); "
                             "--verify checks every shard", str(file)) from None


def format_problems(report: dict) -> str:
    return "\n".join([f"{report['path']}", "  verify: FAILED"] + [f"    {p}" for p in report["problems"]])


def summarize(records: Iterable, names: dict[int, str], top: int) -> dict:
    """Counts, label totals and the most frequent labels of decoded records (streamed, not kept)."""
    counts, total, below_1 = collections.Counter(), 0, 0
    for record in records:
        counts.update(record.labels)
        below_1 += sum(1 for c in record.confidences if c < 1.0)
        total += 1
    return {
        "records": total,
        "labels": sum(counts.values()),
        "labels_per_record": round(sum(counts.values()) / total, 3) if total else 0.0,
        "distinct_labels": len(counts),
        "confidence_below_1": below_1,
        "top_labels": [{"label": label, "name": names.get(label, ""), "records": n}
                       for label, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]],
    }


def load_names(path: Path) -> dict[int, str]:
    """Class names from the split's classes.tsv, when there is one."""
    from mlimages.records.index import find_classes_file, read_class_names

    classes = find_classes_file(path if path.is_dir() else path.parent)
    return dict(enumerate(read_class_names(classes))) if classes is not None else {}


def format_summary(summary: dict) -> str:
    lines = [f"{summary['path']} ({summary['layout']} layout)"]
    if "index" in summary:
        index = summary["index"]
        lines.append(f"  index: {index['count']} records, {index['shards']} shard(s), {index['bytes']} bytes, "
                     f"{index['label_kind']}-label, {index['num_classes']} classes")
    lines += [f"  records            {summary['records']}",
              f"  labels             {summary['labels']} ({summary['labels_per_record']} per record)",
              f"  distinct labels    {summary['distinct_labels']}",
              f"  confidence < 1     {summary['confidence_below_1']}",
              "  most frequent labels"]
    lines += [f"    {t['records']:>7}  {t['label']:>6}  {t['name']}" for t in summary["top_labels"]]
    if summary.get("problems") is not None:
        lines.append("  verify: " + ("OK" if not summary["problems"] else "FAILED"))
        lines += [f"    {problem}" for problem in summary["problems"]]
    return "\n".join(lines)

"""`mlimages hierarchy stats|show FILE ...`: look at a semantic hierarchy file."""

from __future__ import annotations

import argparse
import json

from mlimages.hierarchy import load_hierarchy


def register(subparsers) -> None:
    parser = subparsers.add_parser("hierarchy", help="inspect a semantic hierarchy file")
    commands = parser.add_subparsers(dest="hierarchy_command", required=True)

    stats = commands.add_parser("stats", help="categories, roots, leaves, path lengths, per-root sizes")
    stats.add_argument("file", help="dictionary_and_semantic_hierarchy.txt or a file in its format")
    stats.add_argument("--json", action="store_true", help="print JSON for machines")
    stats.set_defaults(func=print_stats)

    show = commands.add_parser("show", help="the path from the root to a category, with names")
    show.add_argument("file")
    show.add_argument("category", help="category index (e.g. 1041) or WordNet id (e.g. n04310904)")
    show.set_defaults(func=print_path)


def print_stats(args: argparse.Namespace) -> int:
    stats = load_hierarchy(args.file).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"categories          {stats['categories']}")
    print(f"root categories     {stats['roots']}")
    print(f"leaves              {stats['leaves']}")
    print(f"longest path        {stats['longest_path_edges']} edges")
    print(f"mean path length    {stats['mean_path_edges']:.2f} edges")
    print("per-root sizes")
    for name, size in sorted(stats["root_sizes"].items(), key=lambda item: -item[1]):
        print(f"  {size:>7}  {name}")
    return 0


def print_path(args: argparse.Namespace) -> int:
    hierarchy = load_hierarchy(args.file)
    index = hierarchy.resolve(args.category)
    for depth, node in enumerate(hierarchy.path_from_root(index)):
        category = hierarchy.categories[node]
        print(f"{'  ' * depth}{category.index}\t{category.wnid}\t{category.name}")
    return 0

"""`mlimages cluster tf-config --hosts H:P,H:P --index I`: the TF_CONFIG of one training host.

Every host runs the same command with the same host list and its own index, then the same
training command with ``strategy: multi_worker``:

    eval "$(mlimages cluster tf-config --hosts-file hosts.txt --index 1 --shell)"
"""

from __future__ import annotations

import argparse

from mlimages.train.cluster import format_tf_config, make_tf_config, parse_hosts, read_hosts_file


def register(subparsers) -> None:
    parser = subparsers.add_parser("cluster", help="set up multi-host training")
    commands = parser.add_subparsers(dest="cluster_command", required=True)
    tf_config = commands.add_parser("tf-config", help="print the TF_CONFIG of one host of a worker cluster")
    hosts = tf_config.add_mutually_exclusive_group(required=True)
    hosts.add_argument("--hosts", help="HOST:PORT,HOST:PORT,... in the same order on every host (index 0: chief)")
    hosts.add_argument("--hosts-file", help="one HOST:PORT a line ('#' comments), same file on every host")
    tf_config.add_argument("--index", type=int, required=True, help="this host's position in the list, from 0")
    tf_config.add_argument("--shell", action="store_true", help="print an `export TF_CONFIG=...` line")
    tf_config.set_defaults(func=print_tf_config)


def print_tf_config(args: argparse.Namespace) -> int:
    hosts = parse_hosts(args.hosts) if args.hosts is not None else read_hosts_file(args.hosts_file)
    print(format_tf_config(make_tf_config(hosts, args.index), shell=args.shell))
    return 0

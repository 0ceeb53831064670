"""The `TF_CONFIG` of each host of a multi-worker training, from one list of hosts.

MultiWorkerMirroredStrategy reads the cluster from the ``TF_CONFIG`` environment variable: every
host gets the same ``cluster`` (the list of ``host:port`` addresses, in the same order) and its own
``task`` index. Writing that JSON by hand on each host is where clusters go wrong (a different
order, a typo in one port), so it is generated here from one list that every host is given.
Task 0 is the chief: it logs to MLflow, writes the real checkpoints and hosts the coordination
service.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from mlimages.errors import InputError

MAX_PORT = 65535


def parse_address(text: str, where: str) -> str:
    """Check one ``host:port`` (``[v6]:port`` for IPv6) and return it stripped.

    Raises:
        InputError: naming `where` when the host is empty or the port is not 1..65535.
    """
    text = text.strip()
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise InputError(f"expected HOST:PORT, got {text!r}", where)
    if not port.isdigit() or not 1 <= int(port) <= MAX_PORT:
        raise InputError(f"port of {text!r} must be a number in 1..{MAX_PORT}", where)
    if host.startswith("["):
        if not host.endswith("]"):
            raise InputError(f"unclosed '[' in {text!r}", where)
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InputError(f"{host[1:-1]!r} is not an IPv6 address", where) from None
    elif ":" in host or any(c.isspace() for c in host):
        raise InputError(f"bad host in {text!r} (write an IPv6 address as [ADDRESS]:PORT)", where)
    return text


def parse_hosts(text: str, where: str = "--hosts") -> list[str]:
    """``h1:port,h2:port`` -> the list of addresses, in order; duplicates and empty lists are errors."""
    items = [item for item in text.split(",")]
    return check_hosts([parse_address(item, f"{where} item {n}") for n, item in enumerate(items, 1)], where)


def read_hosts_file(path: str | Path) -> list[str]:
    """One ``host:port`` per line; blank lines and ``#`` comments are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"cannot read hosts file ({error.strerror})", str(path)) from None
    hosts = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if line:
            hosts.append(parse_address(line, f"{path}:{number}"))
    return check_hosts(hosts, str(path))


def check_hosts(hosts: list[str], where: str) -> list[str]:
    """No empty cluster, no address twice (two tasks cannot listen on one port)."""
    if not hosts:
        raise InputError("no hosts given", where)
    seen = set()
    for address in hosts:
        if address in seen:
            raise InputError(f"{address} is listed twice", where)
        seen.add(address)
    return hosts


def make_tf_config(hosts: list[str], index: int) -> dict:
    """The ``TF_CONFIG`` of task `index` of the worker cluster `hosts` (task 0 is the chief).

    Raises:
        InputError: when `index` is not a task of the cluster.
    """
    if not 0 <= index < len(hosts):
        raise InputError(f"index {index} is not in 0..{len(hosts) - 1} ({len(hosts)} hosts)", "--index")
    return {"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": index}}


def format_tf_config(config: dict, shell: bool = False) -> str:
    """The JSON on one line, or a ``export TF_CONFIG='...'`` line for a shell to `eval`."""
    text = json.dumps(config, separators=(",", ":"))
    return f"export TF_CONFIG='{text}'" if shell else text

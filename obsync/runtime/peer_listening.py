"""Waiting, before a cluster's process connects, until the processes it connects to listen (this host only).

In Bytewax's networking (timely's) process K connects to every process below it; a connection refused is
tried again a whole second later, and printed ("worker 1: error connecting to worker 0: Connection refused
(os error 111); retrying"). The processes of `obsync run --processes N` start together, so process 1 usually
gets there first and loses that second on every start. A peer's port is not probed by connecting (timely
would take the probe for a process and wait for its greeting): the kernel's table of listening sockets
(/proc/net/tcp, /proc/net/tcp6) says when the port listens. Addresses on other hosts are not waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

_LISTEN = "0A"  # the state column of a listening TCP socket in /proc/net/tcp
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def local_ports(addresses: Sequence[str]) -> set[int]:
    """The ports of those `host:port` addresses whose host is this one's loopback (what `obsync run --processes`
    gives its processes); others (another host's, a name) are left out."""
    ports = set()
    for address in addresses:
        host, _, port = address.strip().rpartition(":")
        if host in _LOCAL_HOSTS and port.isdigit():
            ports.add(int(port))
    return ports


def listening_ports(tables: Iterable[str]) -> set[int]:
    """The local ports in LISTEN state in the text of /proc/net/tcp-style tables (a header line, then one socket a
    line: `sl local_address rem_address st ...`, the port in hex after the address)."""
    ports = set()
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


def _read_tables() -> list[str]:
    out = []
    for path in _TABLES:
        try:
            out.append(path.read_text())
        except OSError:  # no IPv6, or not Linux: nothing known there
            continue
    return out


def wait_until_listening(addresses: Sequence[str], timeout: float, stopping: Callable[[], bool],
                         read: Callable[[], list[str]] = _read_tables, interval: float = 0.02) -> bool:
    """Wait until every port of `addresses` on this host listens, at most `timeout` s, returning early (False)
    when `stopping()` says so or nothing can be read; True when they all listen. Either way the caller goes on
    to connect, as before: this only spares the engine's one-second retry."""
    ports = local_ports(addresses)
    deadline = time.monotonic() + timeout
    while ports:
        tables = read()
        if not tables:
            return False
        ports -= listening_ports(tables)
        if not ports:
            break
        if stopping() or time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True

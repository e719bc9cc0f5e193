"""`stream_idle`: whether bytes wait on the replication socket, asked once per transaction to hand a batch on as
soon as the stream has nothing more (obsync.connectors.mysql.binlog.stream). Real sockets, no server."""

from __future__ import annotations

import ctypes
import select
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from obsync.connectors.mysql.binlog import stream as stream_module
from obsync.connectors.mysql.binlog.stream import stream_idle


@pytest.fixture(params=["libc poll, holding the GIL", "select.poll"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "select.poll":
        monkeypatch.setattr(stream_module, "_LIBC_POLL", None)  # where libc's poll cannot be found
    return str(request.param)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP connection on 127.0.0.1: (the replication side, the server side)."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        ours = socket.create_connection(srv.getsockname())
        theirs, _ = srv.accept()
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def a_stream(sock: socket.socket | None) -> SimpleNamespace:
    """What `stream_idle` reads of a `BinLogStreamReader`: its replication connection's socket."""
    return SimpleNamespace(_stream_connection=SimpleNamespace(_sock=sock))


def wait_readable(sock: socket.socket) -> None:
    assert select.select([sock], [], [], 5)[0], "the bytes sent never arrived"


def test_idle_only_while_no_byte_waits(way: str, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    stream = a_stream(ours)
    assert stream_idle(stream)  # type: ignore[arg-type]  # duck-typed: only the socket is read
    theirs.sendall(b"\x07\x00\x00\x01event")
    wait_readable(ours)
    assert not stream_idle(stream)  # type: ignore[arg-type]
    assert ours.recv(64) == b"\x07\x00\x00\x01event"
    assert stream_idle(stream)  # type: ignore[arg-type]


def test_a_closed_peer_is_not_idle_so_the_read_that_follows_reports_it(
        way: str, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    stream = a_stream(ours)
    assert stream_idle(stream)  # type: ignore[arg-type]
    theirs.close()
    wait_readable(ours)
    assert not stream_idle(stream)  # type: ignore[arg-type]
    assert ours.recv(64) == b""


def test_a_new_connection_is_asked_about_its_own_socket(way: str, pair: tuple[socket.socket, socket.socket]) -> None:
    """After a reconnect the stream has another socket: the one kept for the old socket must not answer."""
    ours, theirs = pair
    stream = a_stream(ours)
    assert stream_idle(stream)  # type: ignore[arg-type]
    with socket.create_server(("127.0.0.1", 0)) as srv:
        again = socket.create_connection(srv.getsockname())
        peer, _ = srv.accept()
    try:
        theirs.sendall(b"old")
        wait_readable(ours)
        stream._stream_connection._sock = again
        assert stream_idle(stream)  # type: ignore[arg-type]  # the new socket has nothing yet
        peer.sendall(b"new")
        wait_readable(again)
        assert not stream_idle(stream)  # type: ignore[arg-type]
    finally:
        again.close()
        peer.close()


def test_no_connection_counts_as_idle() -> None:
    assert stream_idle(a_stream(None))  # type: ignore[arg-type]
    assert stream_idle(SimpleNamespace())  # type: ignore[arg-type]


def test_libc_poll_is_called_holding_the_gil() -> None:
    """`select.poll` lets go of the GIL even with no wait, and taking it back from the engine's busy worker costs
    about 100 us a transaction (docs/performance.md, "Single-row transactions"): libc's poll is called through
    `ctypes.PyDLL`, whose functions keep the GIL."""
    fn = stream_module._LIBC_POLL
    assert fn is not None, "libc's poll was not found: stream_idle falls back to select.poll"
    assert fn._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]  # PyDLL: the GIL is kept

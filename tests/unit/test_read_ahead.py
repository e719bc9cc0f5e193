"""`ReadAhead`: the replication socket read in large pieces, packets taken whole from what was read, and whether a
whole packet waits (obsync.connectors.mysql.binlog.read_ahead; used by `stream`). Real TCP sockets on 127.0.0.1, no
server (tests/integration/test_replication_connection.py reads a MariaDB through it)."""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from obsync.connectors.mysql.binlog import read_ahead
from obsync.connectors.mysql.binlog.read_ahead import ReadAhead, carry_over
from obsync.connectors.mysql.binlog.stream import stream_idle


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP connection on 127.0.0.1: (the replication side, the server side)."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        ours = socket.create_connection(srv.getsockname())
        theirs, _ = srv.accept()
    ours.settimeout(5)
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def packet(payload: bytes, seq: int) -> bytes:
    """A MySQL packet: 3-byte little-endian length, sequence number, payload."""
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def wait_readable(sock: socket.socket) -> None:
    assert select.select([sock], [], [], 5)[0], "the bytes sent never arrived"


def test_read_returns_exactly_the_bytes_asked_across_the_pieces_received(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK", 5)  # pieces smaller than the reads
    ours, theirs = pair
    sent = bytes(range(256)) * 3
    theirs.sendall(sent)
    r = ReadAhead(ours)
    got = [r.read(n) for n in (1, 4, 7, 100, 300, 356)]
    assert [len(g) for g in got] == [1, 4, 7, 100, 300, 356]
    assert b"".join(got) == sent
    assert r.pending() == 0


def test_a_read_past_the_end_of_the_stream_is_short_and_keeps_nothing_back(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """pymysql takes a short read for a lost connection (CR_SERVER_LOST), as it did with its socket file."""
    ours, theirs = pair
    theirs.sendall(b"abc")
    theirs.close()
    r = ReadAhead(ours)
    assert r.read(2) == b"ab"
    assert r.read(10) == b"c"
    assert r.read(1) == b""


def test_a_timeout_is_raised_and_what_was_received_before_it_stays_readable(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    ours.settimeout(0.2)
    theirs.sendall(b"head")
    wait_readable(ours)
    r = ReadAhead(ours)
    with pytest.raises(TimeoutError):
        r.read(10)
    assert r.pending() == 4
    theirs.sendall(b"-tail!")
    assert r.read(10) == b"head-tail!"


def test_whole_packet_hands_out_a_packet_received_whole_and_nothing_else(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    r = ReadAhead(ours, packet(b"\x00first", 1) + packet(b"\x00second", 2) + packet(b"\x00third", 3)[:6])
    assert r.whole_packet(2) is None, "a packet with another sequence number than expected was handed out"
    assert r.pos == 0
    assert r.has_packet()
    assert r.whole_packet(1) == b"\x00first"
    assert r.whole_packet(2) == b"\x00second"
    assert not r.has_packet(), "the third packet is not whole yet"
    assert r.whole_packet(3) is None and r.pending() == 6


@pytest.mark.parametrize("payload, why", [(b"\xff\x15\x04#28000denied", "an error packet"),
                                          (b"", "an empty packet"),
                                          (b"\x00" * 0xFFFFFF, "a packet continued in the next one")])
def test_whole_packet_leaves_to_pymysql_what_needs_its_checks(pair: tuple[socket.socket, socket.socket],
                                                              payload: bytes, why: str) -> None:
    ours, _ = pair
    r = ReadAhead(ours, packet(payload, 0))
    assert r.whole_packet(0) is None, why
    assert r.pos == 0


def test_stream_idle_says_busy_without_a_system_call_when_a_whole_packet_was_read_ahead(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    r = ReadAhead(ours, packet(b"\x00event", 4) + packet(b"\x00more", 5)[:5])
    stream = SimpleNamespace(_stream_connection=SimpleNamespace(_sock=ours, _rfile=r))
    assert not stream_idle(stream)  # type: ignore[arg-type]  # duck-typed: its socket and file
    assert r.whole_packet(4) == b"\x00event"
    assert stream_idle(stream), "only part of a packet was read ahead and the socket holds nothing"  # type: ignore[arg-type]
    theirs.sendall(b"rest")
    wait_readable(ours)
    assert not stream_idle(stream)  # type: ignore[arg-type]


def test_carry_over_takes_what_the_socket_file_read_ahead_without_waiting(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    rfile = ours.makefile("rb")
    theirs.sendall(b"one|two")
    wait_readable(ours)
    assert rfile.read(4) == b"one|"  # the file read "two" ahead
    assert carry_over(rfile, ours) == b"two"
    assert ours.gettimeout() == 5
    done = threading.Event()
    threading.Timer(3, done.set).start()
    assert carry_over(rfile, ours) == b"" and not done.is_set(), "carry_over waited for bytes"
    assert ours.gettimeout() == 5

"""The replication socket read ahead in large pieces, and its packets taken from them without a call per read.

pymysql reads a connection through a `socket.makefile` buffer of 8 KiB and a packet through `_read_packet`: two
reads (header, payload), a struct unpack, a join and an error check each, all in Python. A log of single-row
transactions carries four small packets a transaction (GTID, table map, rows, XID), so that work, and one
`poll(2)` per transaction to learn whether the stream is idle (`stream.stream_idle`), were about a fifth of the
reader's CPU there (docs/performance.md, "Single-row transactions: packets taken from a read-ahead buffer").

`ReadAhead` replaces the replication connection's file once it is connected (plain TCP only): it reads up to
`CHUNK` bytes a system call and keeps them as one `bytes` object with a read offset, so that:

- `whole_packet` hands out a packet lying whole in the bytes already read, with the checks pymysql makes (its
  sequence number, not an error packet, under 16 MiB), and does no I/O: it cannot fail;
- every other case (bytes still to read, an error packet, a packet split into several) goes through pymysql's
  own `_read_packet`, which reads through `ReadAhead.read` as it read through its file: a socket error, a
  timeout, or the end of the stream are reported exactly as before;
- `has_packet` tells, without a system call, that a whole packet waits: the stream is not idle.
"""

from __future__ import annotations

import socket
from typing import Any

from pymysql.connections import MAX_PACKET_LEN  # a payload this long continues in the next packet

CHUNK = 1 << 16  # bytes asked of the socket per read: under glibc's mmap threshold, so allocated cheaply


class ReadAhead:
    """A socket's bytes read ahead: `buf[pos:]` is what was received and not yet handed out."""

    __slots__ = ("sock", "buf", "pos")

    def __init__(self, sock: socket.socket, carried: bytes = b"") -> None:
        self.sock = sock
        self.buf = carried  # bytes received and not yet handed out start at `pos`
        self.pos = 0

    def read(self, n: int) -> bytes:
        """`n` bytes, fewer only if the peer closed the stream first (as a file's read). A socket error or a
        timeout is raised as the socket raises it (an OSError); what was received before it stays unread."""
        pos, buf = self.pos, self.buf
        end = pos + n
        if end <= len(buf):
            self.pos = end
            return buf[pos:end]
        have = len(buf) - pos
        parts = [buf[pos:]]
        while have < n:
            try:
                chunk = self.sock.recv(max(CHUNK, n - have))
            except BaseException:
                self.buf, self.pos = b"".join(parts), 0  # kept, as a file keeps what it buffered
                raise
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self.buf, self.pos = data, min(n, len(data))
        return data[:n]

    def pending(self) -> int:
        """Bytes received and not yet handed out."""
        return len(self.buf) - self.pos

    def has_packet(self) -> bool:
        """True when a whole MySQL packet (its 4-byte header and its payload) was received and not handed out."""
        pos, buf = self.pos, self.buf
        if pos + 4 > len(buf):
            return False
        return pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16) <= len(buf)

    def whole_packet(self, seq: int) -> bytes | None:
        """The payload of the next packet if it was received whole, carries sequence number `seq`, is not an
        error packet and is not continued in another one; else None, and nothing is handed out."""
        pos, buf = self.pos, self.buf
        start = pos + 4
        if start >= len(buf):
            return None
        n = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        end = start + n
        if end > len(buf) or buf[pos + 3] != seq or n == 0 or n >= MAX_PACKET_LEN or buf[start] == 0xFF:
            return None
        self.pos = end
        return buf[start:end]

    def close(self) -> None:
        """Forget what was read (the socket is its connection's to close)."""
        self.buf, self.pos = b"", 0


def carry_over(rfile: Any, sock: socket.socket) -> bytes:
    """What pymysql's socket file read ahead and did not hand out (nothing, once a connection's handshake and
    queries were answered, but taken rather than assumed): read without waiting, the socket's timeout restored."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return rfile.read1(CHUNK) or b""  # what it buffered, else what the socket holds, else nothing
    except (BlockingIOError, InterruptedError):
        return b""
    finally:
        sock.settimeout(timeout)

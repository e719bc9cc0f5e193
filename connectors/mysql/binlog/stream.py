"""The one place that opens a replication stream (mysql-replication's `BinLogStreamReader`) on a log endpoint.

    open_stream(log_endpoint, sql_endpoint, server_id=..., file=..., pos=..., events=[...], blocking=True)

Both the binlog reader (a blocking stream with server heartbeats) and the start_time search (short
non-blocking scans) open their streams here, so the two are set up alike:

- the replication connection raises `StreamLost` (obsync.connectors.mysql.failures) when it drops, where
  mysql-replication would silently reconnect from its own position, possibly inside a transaction whose table
  maps came before it: the caller decides where to resume;
- a silent connection counts as dead after the log endpoint's `read_timeout` (`source.read_timeout`, 60 s by
  default) without a packet; on a blocking stream the server sends a heartbeat whenever it has had nothing
  to send for a while (`stream_heartbeat`: at most a quarter of that timeout), so only a dead or stalled
  connection stays silent that long;
- mysql-replication's logging is off (it would log the connection settings, password included);
- table map events are parsed once per distinct body (`table_maps`), not once per transaction;
- events it cannot decode are handed out as `NotImplementedEvent`s rather than dropped, so the caller sees
  every event type (compressed transactions, anonymous GTIDs).

`stream_idle` tells whether bytes wait on a stream's socket; `interrupt` shuts the socket down from another
thread so that a blocked read returns.

The control connection (the few SQL queries the library makes) goes to `sql_endpoint`, which differs from
the log endpoint when the binlog comes from a separate service (OceanBase Binlog Service).
"""

from __future__ import annotations

import ctypes
import select
import socket
from collections.abc import Callable, Sequence
from typing import Any

import pymysql
import pymysql.connections
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.binlogstream import MYSQL_EXPECTED_ERROR_CODES

from obsync.connectors.mysql.binlog import table_maps
from obsync.connectors.mysql.binlog.read_ahead import ReadAhead, carry_over
from obsync.connectors.mysql.connection import Endpoint, SharedTlsSession
from obsync.connectors.mysql.failures import StreamLost

_POLL = "_obsync_poll"  # the `_Ready` of the stream's socket, kept on it by `stream_idle`


class _StreamConnection(SharedTlsSession):
    """The replication connection: its drop is raised as `StreamLost`, past mysql-replication. Once connected
    over plain TCP it reads through a `ReadAhead`, and a packet received whole is taken from it directly."""

    # pymysql's own attributes (it declares no types)
    _sock: Any
    _rfile: Any
    _current_timeout: float | None
    _read_timeout: float | None
    _next_seq_id: int

    def connect(self, sock: Any = None) -> None:
        super().connect(sock)
        sock, rfile = self._sock, self._rfile
        if type(sock) is socket.socket and rfile is not None:  # not TLS: an SSLSocket decrypts as it reads
            carried = carry_over(rfile, sock)
            rfile.close()  # the file only: the socket stays open
            self._rfile = ReadAhead(sock, carried)

    def _read_packet(self, packet_type: Any = MysqlPacket) -> Any:
        rfile = self._rfile
        if type(rfile) is ReadAhead and packet_type is MysqlPacket and self._current_timeout == self._read_timeout:
            data = rfile.whole_packet(self._next_seq_id)
            if data is not None:
                self._next_seq_id = (self._next_seq_id + 1) & 0xFF
                return MysqlPacket(data, self.encoding)
        try:  # bytes to read from the socket, an error packet, or a packet continued: pymysql's own reading
            return super()._read_packet(packet_type)
        except pymysql.err.OperationalError as e:
            # exactly the errors on which BinLogStreamReader.fetchone() would reconnect by itself
            if e.args and e.args[0] in MYSQL_EXPECTED_ERROR_CODES:
                raise StreamLost(str(e.args[-1])) from None
            raise


def stream_heartbeat(wanted: float, read_timeout: float) -> float:
    """The heartbeat period to ask the server for: `wanted`, but at most a quarter of the read timeout (an idle
    stream must not look silent)."""
    return min(wanted, read_timeout / 4)


def open_stream(log_endpoint: Endpoint, sql_endpoint: Endpoint, *, server_id: int, file: str, pos: int,
                events: Sequence[type], blocking: bool, heartbeat: float | None = None,
                only_schemas: Sequence[str] | None = None,
                only_tables: Sequence[str] | None = None) -> BinLogStreamReader:
    """A replication stream of `events` from `file`:`pos` (an event boundary), as replica `server_id`.

    `blocking` waits for new events at the end of the binlog (with a server heartbeat every `heartbeat`
    seconds, at most a quarter of the endpoint's read timeout); otherwise the stream ends there.
    `only_schemas`/`only_tables` filter table maps (and so rows) by name before their columns are parsed;
    None: no filter, `[]` for tables: no table map at all.
    """
    table_maps.install()  # table map events parsed once per distinct body
    if blocking:
        heartbeat = stream_heartbeat(1.0 if heartbeat is None else heartbeat, log_endpoint.read_timeout)
    return BinLogStreamReader(
        connection_settings=log_endpoint.pymysql_kwargs(),
        ctl_connection_settings=sql_endpoint.pymysql_kwargs(),
        server_id=server_id,
        log_file=file,
        log_pos=pos,
        resume_stream=True,
        blocking=blocking,
        only_events=list(events),
        filter_non_implemented_events=False,
        only_schemas=None if only_schemas is None else list(only_schemas),
        only_tables=None if only_tables is None else list(only_tables),
        slave_heartbeat=heartbeat,
        enable_logging=False,  # it would log the connection settings, password included
        pymysql_wrapper=_StreamConnection,
    )


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def _libc_poll() -> Any:
    """libc's `poll`, called holding the GIL (`ctypes.PyDLL`), or None where it cannot be found. Its arguments
    are passed as ctypes objects of their C types (`_ONE`, `_NO_WAIT`, a pointer): a third cheaper a call than
    declaring `argtypes`."""
    try:
        return ctypes.PyDLL(None).poll  # returns a C int (ctypes' default)
    except (OSError, AttributeError):
        return None


_ONE, _NO_WAIT = ctypes.c_ulong(1), ctypes.c_int(0)  # nfds_t nfds, int timeout
_LIBC_POLL = _libc_poll()


class _Ready:
    """Whether bytes wait on one socket, asked without letting go of the GIL.

    `select.poll().poll(0)` lets go of the GIL around its system call, even with no wait: the binlog reader's
    thread then waits for the engine's worker thread, busy encoding in the same process, to hand the GIL back,
    about 100 us (up to the interpreter's 5 ms switch interval) for a call of under 1 us. Asked once per
    transaction, that wait bounded a log of single-row transactions to about 30,000 rows/s
    (docs/performance.md, "Single-row transactions"). Through `ctypes.PyDLL`, `poll(2)` with no wait is called
    holding the GIL; where libc's `poll` cannot be found that way, `select.poll` is used as before.
    """

    __slots__ = ("sock", "idle")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle: Callable[[], bool]  # True when nothing waits to be read
        if _LIBC_POLL is not None:
            poll, ref = _LIBC_POLL, ctypes.byref(_PollFd(sock.fileno(), select.POLLIN, 0))  # ref keeps the struct
            self.idle = lambda: poll(ref, _ONE, _NO_WAIT) <= 0  # -1, an error: the read that follows reports it
        else:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            self.idle = lambda: not poller.poll(0)


def stream_idle(stream: BinLogStreamReader) -> bool:
    """True when no more bytes are waiting: no whole packet read ahead (`ReadAhead.has_packet`), nothing on the
    replication socket (asked once per transaction, so asked without letting go of the GIL: `_Ready`)."""
    conn = getattr(stream, "_stream_connection", None)
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return True
    rfile = getattr(conn, "_rfile", None)
    if type(rfile) is ReadAhead and rfile.has_packet():  # a whole packet received already: no system call
        return False
    try:
        kept = stream.__dict__.get(_POLL)
        if kept is None or kept.sock is not sock:
            kept = stream.__dict__[_POLL] = _Ready(sock)
        return kept.idle()
    except (OSError, ValueError):
        return True


def interrupt(stream: BinLogStreamReader) -> None:
    """Shut the replication socket down (from another thread), so that a read blocked on it returns."""
    conn = getattr(stream, "_stream_connection", None)
    sock = getattr(conn, "_sock", None) if conn is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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

import select
import socket
from collections.abc import Sequence
from typing import Any

import pymysql
import pymysql.connections
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.binlogstream import MYSQL_EXPECTED_ERROR_CODES

from obsync.connectors.mysql.binlog import table_maps
from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import StreamLost

_POLL = "_obsync_poll"  # (socket, select.poll registered for it), kept on a stream by `stream_idle`


class _StreamConnection(pymysql.connections.Connection):
    """The replication connection: its drop is raised as `StreamLost`, past mysql-replication."""

    def _read_packet(self, packet_type: Any = MysqlPacket) -> Any:
        try:
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


def stream_idle(stream: BinLogStreamReader) -> bool:
    """True when no more bytes are waiting on the replication socket (asked once per transaction: a `poll`
    object kept on the stream for its socket costs a third of a `select`)."""
    conn = getattr(stream, "_stream_connection", None)
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return True
    try:
        kept = stream.__dict__.get(_POLL)
        if kept is None or kept[0] is not sock:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            kept = stream.__dict__[_POLL] = (sock, poller)
        return not kept[1].poll(0)
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

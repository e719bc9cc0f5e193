"""What the server's binlog holds, asked in SQL on the log endpoint: its current position, its files, and
whether a position is still among them.

Each call opens its own short connection (session time zone untouched) and closes it. A binlog that is off
raises `SourceError` saying how to turn it on; a failure worth retrying raises `SourceUnavailable`; a
position the server no longer has raises `PositionLostError`.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import pymysql

from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.connectors.mysql.failures import DRIVER_ERRORS, code_name, retryable
from obsync.core.errors import PositionLostError, SourceError, SourceUnavailable
from obsync.core.positions import LogPosition

log = logging.getLogger(__name__)


def _admin_connect(ep: Endpoint) -> pymysql.Connection:
    return connect(ep, utc_session=False)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def current_log_position(endpoint: Endpoint) -> LogPosition:
    """The server's current binlog position (SHOW MASTER STATUS): where a reader started now begins."""
    conn = _admin_connect(endpoint)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SHOW MASTER STATUS")
            except pymysql.err.ProgrammingError:  # MySQL 8.4 renamed it
                cur.execute("SHOW BINARY LOG STATUS")
            row = cur.fetchone()
    finally:
        conn.close()
    if not row:
        raise SourceError(f"binary logging is off on {endpoint.host}:{endpoint.port}: start the server with "
                          "log_bin, binlog_format=ROW and binlog_row_image=FULL")
    return LogPosition(_text(row[0]), int(row[1]), 0)


def binlog_files(endpoint: Endpoint) -> list[tuple[str, int]]:
    """The binlog files on the server and their sizes (SHOW BINARY LOGS), oldest first."""
    conn = _admin_connect(endpoint)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SHOW BINARY LOGS")
            except DRIVER_ERRORS as e:
                if code_name(e) == "ER_NO_BINARY_LOGGING":
                    raise SourceError(f"binary logging is off on {endpoint.host}:{endpoint.port}: start the "
                                      "server with log_bin") from None
                cls = SourceUnavailable if retryable(e) else SourceError
                raise cls(f"SHOW BINARY LOGS failed on {endpoint!r}: {e}") from None
            return [(_text(r[0]), int(r[1])) for r in cur.fetchall()]
    finally:
        conn.close()


def check_position(endpoint: Endpoint, p: LogPosition) -> None:
    """Raise `PositionLostError` when `p` is no longer in the server's binlogs (purged, or the server reset).
    When the files cannot be listed (other than for a retryable failure) this says nothing: the replication
    stream's own check then decides."""
    try:
        files = binlog_files(endpoint)
    except SourceError as e:
        if isinstance(e, SourceUnavailable):
            raise
        log.debug("cannot list binlog files (%s); relying on the stream's own check", e)
        return
    sizes = dict(files)
    if p.file not in sizes:
        _position_gone(endpoint, p, f"{p.file} is not among the server's binlogs "
                                    f"({files[0][0] if files else 'none'} .. {files[-1][0] if files else 'none'})")
    if p.pos > sizes[p.file]:
        _position_gone(endpoint, p, f"{p.file} has only {sizes[p.file]} bytes")


def _position_gone(endpoint: Endpoint, p: LogPosition, detail: str) -> NoReturn:
    raise PositionLostError(
        f"binlog position {p.file}:{p.pos} is no longer on the server {endpoint.host}:"
        f"{endpoint.port} ({detail}); the binlog was purged or the server was reset. "
        "Restart the task with full sync")

"""Opening SQL sessions on the source, set up the same way for every reader; interrupting them all at once
(`interrupt_sessions`: a stop that waits in a request the source holds up)."""

from __future__ import annotations

import os
import socket
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import pymysql
import pymysql.connections
import pymysql.cursors

from obsync.connectors.mysql.failures import (
    DRIVER_ERRORS,
    Failure,
    classify,
    code_name,
    describe,
    hint,
)
from obsync.core.errors import SourceError, SourceUnavailable

Dialect = Literal["oceanbase", "mysql", "mariadb"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Connection settings without secrets in their repr (built from the task file by
    `obsync.runtime.settings`).

    Every session is bounded: `connect_timeout` to connect and receive the server's greeting,
    `read_timeout` for the server to send anything once a request is out (a result's first row included,
    so it must exceed the slowest single query of the session), `write_timeout` to send a request.
    `patience`: how long full sync and the binlog stream keep reconnecting to a source that is down or silent
    (None: forever). The binlog stream counts as lost after `read_timeout` without a packet too.
    """

    host: str
    port: int
    user: str
    password: str
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    patience: float | None = 600.0

    def __repr__(self) -> str:
        return f"Endpoint({self.user}@{self.host}:{self.port})"

    @property
    def address(self) -> str:
        """`host:port`, for messages."""
        return f"{self.host}:{self.port}"

    def pymysql_kwargs(self) -> dict[str, Any]:
        return dict(host=self.host, port=self.port, user=self.user, password=self.password,
                    connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                    write_timeout=self.write_timeout)


# every session opened (`register_session`) -> its socket's descriptor for MySQLdb (read while the session is idle:
# mysqlclient refuses any call on a session another thread is using), None for pymysql (its `_sock` is read then)
_sessions: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()


def register_session(conn: Any) -> None:
    """Count `conn` (a pymysql or MySQLdb session) among those `interrupt_sessions` interrupts."""
    _sessions[conn] = None if hasattr(conn, "_sock") else int(conn.fileno())


def _socket_fd(conn: Any, fd: int | None) -> int | None:
    if fd is None:  # pymysql: None once closed
        sock = getattr(conn, "_sock", None)
        return None if sock is None else int(sock.fileno())
    return fd if getattr(conn, "open", 0) else None  # MySQLdb: a closed session's descriptor may be another's now


def interrupt_sessions() -> int:
    """Shut down the socket of every open session (from any thread): a request in flight, such as a snapshot
    query waiting for a table lock or an answer from a silent source, ends at once with a lost connection
    instead of waiting up to `read_timeout`. For a stop only: the sessions are unusable after. Returns how many
    sessions were interrupted."""
    n = 0
    for conn, known in list(_sessions.items()):
        try:
            fd = _socket_fd(conn, known)
            if fd is None or fd < 0:
                continue
            # a socket object on a duplicate of the descriptor: shutdown acts on the connection itself
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            n += 1
        except (OSError, ValueError, AttributeError):
            pass  # closed already
    return n


class SharedTlsSession(pymysql.connections.Connection):
    """pymysql's session, whose default TLS context (no TLS settings: pymysql's "preferred" TLS, without
    verification) is made once per process: pymysql makes one for every session, about 20 ms of CPU each (it
    loads the system's CA certificates), paid by every session a run opens (the binlog stream's two included,
    `obsync.connectors.mysql.binlog.stream`). A context is shared by sessions in any thread (`ssl.SSLContext`);
    pymysql changes a default one no further once made."""

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        global _default_tls
        if type(sslp) is not dict or sslp:
            return super()._create_ssl_ctx(sslp)  # type: ignore[misc]  # pymysql's own, untyped
        if _default_tls is None:
            _default_tls = super()._create_ssl_ctx(sslp)  # type: ignore[misc]
        return _default_tls


_default_tls: Any = None


def connect(ep: Endpoint, *, streaming: bool = False, autocommit: bool = True,
            utc_session: bool = True) -> pymysql.Connection:
    """A session in UTC (so TIMESTAMP values do not shift) that returns raw-enough Python values.

    `streaming` returns an unbuffered cursor class so large SELECTs use bounded memory. `utc_session=False`
    leaves the session as it is (for endpoints that answer few statements, such as a binlog service).
    """
    try:
        conn = SharedTlsSession(
            **{**ep.pymysql_kwargs(), "read_timeout": ep.connect_timeout},  # the greeting: connect_timeout
            charset="utf8mb4",
            autocommit=autocommit,
            cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
        )
    except DRIVER_ERRORS as e:
        raise connect_error(ep, e) from None
    # pymysql applies it to every read from now on
    conn._read_timeout = ep.read_timeout  # type: ignore[attr-defined]  # noqa: SLF001
    register_session(conn)
    if utc_session:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
    return conn


def connect_error(ep: Endpoint, e: BaseException) -> SourceError:
    """The error for a session that could not be opened (either driver): terminal when the table of
    `obsync.connectors.mysql.failures` says so (refused credentials), else SourceUnavailable, whatever the
    reason (a server that is down, busy or restarting answers with many). Never with the password.

    A connection accepted without a greeting (the client library gives up waiting for it, or the peer
    hangs up first: CR_SERVER_LOST) is most often a port of another service (Kafka's, an HTTP server's)."""
    msg = f"cannot connect to {ep.user}@{ep.address}: {describe(e)}"
    if code_name(e) == "CR_SERVER_LOST":
        msg = (f"cannot connect to {ep.user}@{ep.address}: the port accepted the connection but sent no MySQL "
               f"greeting within {ep.connect_timeout:g} s (source.connect_timeout): the server is stalled or out "
               f"of reach, or {ep.address} is not a MySQL/MariaDB/OceanBase port ({describe(e)})")
    if classify(e, unknown=Failure.CONNECTION_LOST) is Failure.FATAL:
        said = hint(e)
        return SourceError(msg + (f" ({said})" if said else ""))
    return SourceUnavailable(msg)


def close_quietly(conn: Any) -> None:
    """Close a connection that may already be broken (errors on close carry no news)."""
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def detect_dialect(conn: pymysql.Connection) -> Dialect:
    """OceanBase, MariaDB or MySQL, from the server's version string."""
    version = conn.get_server_info() or ""
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    text = f"{version} {row[0] if row else ''}".lower()
    if "oceanbase" in text or "-obs" in text:
        return "oceanbase"
    if "mariadb" in text:
        return "mariadb"
    return "mysql"


def quote_ident(name: str) -> str:
    """Backtick-quote an identifier (table and column names come from the catalog, never the user)."""
    return "`" + name.replace("`", "``") + "`"

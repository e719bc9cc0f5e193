"""SQL sessions through mysqlclient (MySQLdb, C) for bulk reads, when it is installed.

pymysql parses every row in Python, which is about 40% of the CPU of a full sync; mysqlclient parses rows
in C (`pip install obsync[fast]`, built against libmariadb or libmysqlclient). The snapshot reader uses it
when it can be imported (`DEFAULT_DRIVER`) and pymysql otherwise; rows, canonical values, errors and
reconnects are the same either way (tests/integration/test_snapshot_*.py run both).

`connect_fast` sets a session up like `obsync.connectors.mysql.connection.connect`: utf8mb4, UTC, autocommit, the
endpoint's connect, read and write timeouts (whole seconds), and returns values in the form
`obsync.connectors.mysql.values` expects (`mysqldb_conversions`). Differences from pymysql that matter here,
handled below or in the reader:

- libmariadb/libmysqlclient connect to the host name `localhost` through the Unix socket; pymysql always uses
  TCP. `localhost` is resolved here and its addresses tried in turn, as pymysql does.
- Binary query parameters: MySQLdb writes `bytes` as a plain string literal unless `binary_prefix` is set,
  which would make a non-UTF-8 key an invalid utf8mb4 string; with it, `_binary'...'` (pymysql: `X'...'`).
- Client error codes: libmariadb reports a refused TCP connection as 2002 (pymysql 2003), an unknown host as
  2005, network errors as 5013/5014, and a closed connection as 2006 (pymysql raises InterfaceError).
  `obsync.connectors.mysql.failures` knows the codes and the exception classes of both drivers.
- An unfinished streaming (`SSCursor`) result is drained by mysqlclient when the cursor is closed or its
  result freed while the connection is open: `abandon_stream` closes the connection first.

MySQLdb can also send a query and read its result later (`send_query`, `read_rows`): the reader asks for
the next batch of a chunk as soon as it has the last key of the current one, so the server runs that query
while the dataflow processes the current batch.
"""

from __future__ import annotations

import math
import socket
from typing import Any, Literal

import pymysql

from obsync.connectors.mysql.connection import Endpoint, connect_error, register_session
from obsync.connectors.mysql.failures import DRIVER_ERRORS, Failure, classify
from obsync.connectors.mysql.values import mysqldb_conversions

try:
    import MySQLdb
    import MySQLdb.connections
    import MySQLdb.cursors
except ImportError:  # mysqlclient is optional (extra "fast"); pymysql is always there
    MySQLdb = None

Driver = Literal["mysqlclient", "pymysql"]

AVAILABLE: bool = MySQLdb is not None
DEFAULT_DRIVER: Driver = "mysqlclient" if AVAILABLE else "pymysql"


def check_driver(driver: str | None) -> Driver:
    """`driver`, or the default when None; ValueError for an unknown or unavailable one."""
    if driver is None:
        return DEFAULT_DRIVER
    if driver == "pymysql":
        return "pymysql"
    if driver == "mysqlclient":
        if not AVAILABLE:
            raise ValueError("SQL driver 'mysqlclient' is not installed (pip install mysqlclient)")
        return "mysqlclient"
    raise ValueError(f"unknown SQL driver {driver!r} (mysqlclient or pymysql)")


def _tcp_hosts(host: str) -> list[str]:
    """Addresses to connect to over TCP: `host` itself, except `localhost` (a Unix socket for the C
    client), which is resolved."""
    if host != "localhost":
        return [host]
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return ["127.0.0.1"]
    return list(dict.fromkeys(str(info[4][0]) for info in infos)) or ["127.0.0.1"]


def connect_fast(ep: Endpoint, *, autocommit: bool = True) -> Any:
    """A MySQLdb session in UTC returning the values `obsync.connectors.mysql.values` converts; errors as
    `obsync.connectors.mysql.connection.connect` raises them (never with the password)."""
    if MySQLdb is None:
        raise ValueError("SQL driver 'mysqlclient' is not installed (pip install mysqlclient)")
    hosts = _tcp_hosts(ep.host)
    for i, host in enumerate(hosts):
        try:
            conn = MySQLdb.connect(
                host=host, port=ep.port, user=ep.user, password=ep.password,
                connect_timeout=max(1, math.ceil(ep.connect_timeout)),  # the greeting too
                read_timeout=max(1, math.ceil(ep.read_timeout)), write_timeout=max(1, math.ceil(ep.write_timeout)),
                charset="utf8mb4", autocommit=autocommit, conv=mysqldb_conversions(), binary_prefix=True)
            break
        except DRIVER_ERRORS as e:
            if i + 1 < len(hosts) and classify(e, unknown=Failure.CONNECTION_LOST) is Failure.CONNECTION_LOST:
                continue  # the next address of `localhost`
            raise connect_error(ep, e) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
    except BaseException:
        conn.close()
        raise
    register_session(conn)
    return conn


def send_query(conn: Any, sql: str, params: list[Any]) -> None:
    """Send `sql` with `params` (`%s` placeholders, `%%` for a `%`, as with a cursor) on the MySQLdb
    session `conn` without waiting for its result: the server runs it while this process does other work,
    and `read_rows(conn)` collects the rows. Nothing else may run on `conn` in between."""
    query = sql.encode(conn.encoding) % tuple(conn.literal(p) for p in params)  # as Cursor.execute does
    conn.send_query(query)


def read_rows(conn: Any) -> tuple[tuple[Any, ...], ...]:
    """The rows of the query `send_query` sent on `conn`, converted as a cursor's would be."""
    conn.read_query_result()
    result = conn.store_result()
    return () if result is None else result.fetch_row(0)


def streaming_cursor(conn: Any) -> Any:
    """An unbuffered cursor of `conn` (either driver): rows are read from the socket as they are fetched."""
    if MySQLdb is not None and isinstance(conn, MySQLdb.connections.Connection):
        return conn.cursor(MySQLdb.cursors.SSCursor)
    return conn.cursor(pymysql.cursors.SSCursor)


def abandon_stream(conn: Any, cursor: Any) -> None:
    """Close `conn`, whose streaming `cursor` may be unfinished, without reading the rest of its result.

    Both drivers would otherwise read every remaining row (the rest of the chunk) when the cursor or its
    result is closed or garbage collected, or fail noisily once the socket is gone.
    """
    if MySQLdb is not None and isinstance(conn, MySQLdb.connections.Connection):
        # mysql_close() marks the session idle, so freeing the result afterwards reads nothing more.
        result = cursor._result if cursor is not None else None
        if cursor is not None:
            cursor.connection = None  # close() must not drain
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the real error
            pass
        if cursor is not None:
            cursor._result = None
        del result  # freed after the close
        return
    if cursor is not None:
        cursor.connection = None
        result = getattr(conn, "_result", None)
        if result is not None and getattr(result, "unbuffered_active", False):
            result.unbuffered_active = False
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the real error
            pass

"""Opening SQL sessions on the source, set up the same way for every reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pymysql
import pymysql.cursors

from obsync.core.errors import SourceError, SourceUnavailable
from obsync.connectors.mysql.failures import (
    DRIVER_ERRORS,
    Failure,
    classify,
    describe,
    hint,
)

Dialect = Literal["oceanbase", "mysql", "mariadb"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Connection settings without secrets in their repr (built from the task file by
    `obsync.runtime.settings`)."""

    host: str
    port: int
    user: str
    password: str
    connect_timeout: float = 10.0

    def __repr__(self) -> str:
        return f"Endpoint({self.user}@{self.host}:{self.port})"

    def pymysql_kwargs(self) -> dict[str, Any]:
        return dict(host=self.host, port=self.port, user=self.user, password=self.password,
                    connect_timeout=self.connect_timeout)


def connect(ep: Endpoint, *, streaming: bool = False, autocommit: bool = True,
            utc_session: bool = True) -> pymysql.Connection:
    """A session in UTC (so TIMESTAMP values do not shift) that returns raw-enough Python values.

    `streaming` returns an unbuffered cursor class so large SELECTs use bounded memory. `utc_session=False`
    leaves the session as it is (for endpoints that answer few statements, such as a binlog service).
    """
    try:
        conn = pymysql.connect(
            **ep.pymysql_kwargs(),
            charset="utf8mb4",
            autocommit=autocommit,
            cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
            read_timeout=None,
        )
    except DRIVER_ERRORS as e:
        raise connect_error(ep, e) from None
    if utc_session:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
    return conn


def connect_error(ep: Endpoint, e: BaseException) -> SourceError:
    """The error for a session that could not be opened (either driver): terminal when the table of
    `obsync.connectors.mysql.failures` says so (refused credentials), else SourceUnavailable, whatever the
    reason (a server that is down, busy or restarting answers with many). Never with the password."""
    msg = f"cannot connect to {ep.user}@{ep.host}:{ep.port}: {describe(e)}"
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

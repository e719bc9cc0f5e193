"""Opening SQL sessions on the source, set up the same way for every reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pymysql
import pymysql.cursors

from obsync.core.errors import SourceError, SourceUnavailable

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
    except pymysql.err.OperationalError as e:
        code = e.args[0] if e.args else None
        # 1045 access denied, 1044 no database access: terminal; 2003 can't connect: transient.
        msg = f"cannot connect to {ep.user}@{ep.host}:{ep.port}: {e.args[-1] if e.args else e}"
        if code in (1044, 1045):
            raise SourceError(msg + " (check user and password)") from None
        raise SourceUnavailable(msg) from None
    if utc_session:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
    return conn


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

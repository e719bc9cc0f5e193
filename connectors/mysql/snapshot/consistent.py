"""One read-only, consistent view of the source for comparing it with what the task wrote (`obsync verify`).

`ConsistentView.open()` starts one transaction that every table is then read in, and says which log position
that view corresponds to (`cut`), so that Kafka can be read up to the same point:

- **MariaDB**: `START TRANSACTION WITH CONSISTENT SNAPSHOT` and the server's `binlog_snapshot_file` /
  `binlog_snapshot_position` status, which MariaDB gives for exactly that snapshot: an exact cut.
- **MySQL**: the same transaction between two `SHOW MASTER STATUS`; when both give the same position no
  transaction committed in between and the cut is exact, otherwise it is the later one and `exact` is False.
- **OceanBase**: every table read `AS OF SNAPSHOT current_scn()`; no log position is known for an SCN, so
  `cut` is None.

Nothing is written: the transaction is `READ ONLY` (MySQL/MariaDB) and ends with a rollback. Rows stream
through an unbuffered cursor in batches (bounded memory whatever the table's size), as canonical values
(`obsync.connectors.mysql.values`) of the columns asked for, under the row filter's SQL if one is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from obsync.connectors.mysql.connection import Endpoint, close_quietly, connect, detect_dialect
from obsync.connectors.mysql.evaluator import neutral_sql_mode
from obsync.connectors.mysql.failures import DRIVER_ERRORS, describe
from obsync.connectors.mysql.snapshot.keys import select_sql, table_sql
from obsync.connectors.mysql.values import row_dict_converter, use_sql_decoders
from obsync.core.errors import SourceError
from obsync.core.positions import LogPosition
from obsync.core.schema import Column

log = logging.getLogger(__name__)

_NET_WRITE_TIMEOUT_S = 3600  # the reader may pause between batches (Kafka reads, comparison)


@dataclass(frozen=True, slots=True)
class Cut:
    """The log position a consistent view corresponds to; `exact` False when it is only an upper bound."""

    position: LogPosition
    exact: bool


class ConsistentView:
    """A read-only transaction over the source; `rows()` reads one table in it. Close with `close()`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._conn: Any = None
        self.dialect = ""
        self.cut: Cut | None = None
        self.scn: int | None = None

    def open(self) -> ConsistentView:
        conn = self._conn = connect(self._endpoint, streaming=True)
        try:
            use_sql_decoders(conn)
            self.dialect = detect_dialect(conn)
            with conn.cursor() as cur:
                cur.execute(f"SET SESSION net_write_timeout = {_NET_WRITE_TIMEOUT_S}")
            neutral_sql_mode(conn)  # row filters mean what obsync evaluates
            if self.dialect == "oceanbase":
                self.scn = int(self._one("SELECT current_scn()")[0])
            elif self.dialect == "mariadb":
                self._execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                status = {_text(k).lower(): _text(v) for k, v in self._all("SHOW STATUS LIKE 'binlog_snapshot_%'")}
                if status.get("binlog_snapshot_file"):
                    self.cut = Cut(LogPosition(str(status["binlog_snapshot_file"]),
                                               int(status["binlog_snapshot_position"])), True)
            else:
                before = self._master_status()
                self._execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                after = self._master_status()
                if after is not None:
                    self.cut = Cut(after, before == after)
        except DRIVER_ERRORS as e:
            self.close()
            raise SourceError(f"cannot open a consistent read on {self._endpoint.address}: {describe(e)}") from None
        except BaseException:
            self.close()
            raise
        return self

    def rows(self, db: str, table: str, columns: Sequence[Column], row_filter: str | None = None,
             batch_size: int = 2000) -> Iterator[list[dict[str, Any]]]:
        """Batches of the table's rows (column -> canonical value), in no particular order."""
        sql = f"SELECT {select_sql(columns)} FROM {table_sql(db, table, self.scn)}"
        if row_filter is not None:
            sql += f" WHERE ({row_filter.replace('%', '%%')})"
        convert = row_dict_converter(columns)
        cur = self._conn.cursor()
        try:
            cur.execute(sql, [])
            while True:
                raw = cur.fetchmany(batch_size)
                if not raw:
                    return
                yield [convert(r) for r in raw]
        except DRIVER_ERRORS as e:
            raise SourceError(f"reading {db}.{table} from {self._endpoint.address}: {describe(e)}") from None
        finally:
            close_quietly(cur)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - the session may be broken already; it is closed either way
                pass
            close_quietly(conn)

    def _execute(self, sql: str) -> None:
        with self._conn.cursor() as cur:
            cur.execute(sql)

    def _one(self, sql: str) -> tuple[Any, ...]:
        with self._conn.cursor() as cur:
            cur.execute(sql)
            return tuple(cur.fetchone() or ())

    def _all(self, sql: str) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def _master_status(self) -> LogPosition | None:
        try:
            row = self._one("SHOW MASTER STATUS")
        except DRIVER_ERRORS:
            row = ()
        if not row or not row[0]:  # no binary log
            return None
        return LogPosition(_text(row[0]), int(row[1]))


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)

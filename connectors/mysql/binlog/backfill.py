"""Backfill of a table added to a running task, inside the log partition (DBLog-style), so the other tables
keep streaming.

The binlog reader's thread runs it between transactions, never inside one. It reads the table in key order
(the snapshot's read order: `obsync.connectors.mysql.snapshot.keys`, binary order for character keys) in pages of
`page_size` rows, each page the rows after the highest key emitted so far (`hi`), and emits them as INSERT
changes positioned `SnapshotPosition(chunk, key)` with `chunk = "backfill-<n>.<run>:<db>.<table>"`: a stream of
its own, which the Kafka sink deduplicates apart from the log's (`<n>` is the request number, `<run>` tells
the reader runs apart, see below). While a table is backfilled, a log change of
it whose key is above `hi` is dropped (a later page holds its effect); one at or below `hi` is emitted
(`admit`). Once the last (short) page is emitted the table is simply tracked.

Exactness:
- MariaDB: each page is read inside `START TRANSACTION WITH CONSISTENT SNAPSHOT`, whose binlog position
  `SHOW STATUS LIKE 'binlog_snapshot_%'` gives (`Page.at`). The reader holds the page and keeps streaming
  until its own position reaches `at` (dropping the table's changes above `hi`, which the page or later pages
  hold), then emits the page. Every key's page row then reflects exactly the changes before `at` and the log
  sends exactly those after: no duplicate, no loss, order per key.
- MySQL, OceanBase: no such position. The page is emitted at the stream's current position; a change of a key
  in the page committed between that position and the read is sent again after the page (a duplicate that
  converges, as in the initial full sync on MySQL/MariaDB).

A table without a usable key (primary key or non-null unique key of orderable types) cannot be backfilled:
adding one to a running task with full sync is refused, naming the table (`key_problem`).

Progress is part of the log partition's resume state (`BackfillQueue.progress`, an
`obsync.core.offsets.BackfillProgress` inside the `LogOffset`): the done request numbers
and the current backfill's `hi` and row count, exactly as of the last change handed out. A resume reads the
pages after `hi` again, now (not as of the interrupted run's reads): the log changes of those keys before
the new read are dropped, so the rows must reach Kafka again even where the interrupted run already wrote
them under the same key. Each reader run therefore writes its backfill rows under a stream of its own
(`<run>`, the run's start time in milliseconds, base 36): rows the interrupted run emitted after the resumed
`hi` are sent twice (the newer image last), never lost. And since those rows may have been deleted or
changed since, a backfill that may have begun in an earlier run (a request this process did not make) runs
*loose*: every log change of the table is emitted (none dropped), pages still at their snapshot's position.
Each key's messages then still end at its current state (duplicates that converge). Without a crash nothing
is sent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pymysql

from obsync.connectors.mysql.connection import Endpoint, close_quietly, connect, detect_dialect
from obsync.connectors.mysql.failures import DRIVER_ERRORS, Failure, classify, describe
from obsync.connectors.mysql.snapshot.keys import KeySql, key_order, select_sql, table_sql
from obsync.connectors.mysql.snapshot.plan import OB_QUERY_TIMEOUT_US
from obsync.connectors.mysql.values import row_dict_converter, use_sql_decoders
from obsync.core.changes import Change, Op
from obsync.core.errors import SourceError, SourceUnavailable
from obsync.core.offsets import BackfillCursor, BackfillProgress
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import TableSchema

log = logging.getLogger(__name__)

TableName = tuple[str, str]
Request = tuple[int, str, str]  # (request number, db, table)


def key_problem(schema: TableSchema) -> str | None:
    """Why a table cannot be backfilled (no usable key), or None."""
    cols = schema.key_columns
    if not cols:
        return "it has no primary key nor non-null unique key"
    bad = [schema.column(c) for c in cols if key_order(schema.column(c)) is None]
    if bad:
        return "its key columns " + ", ".join(f"{c.name} {c.column_type}" for c in bad) + " cannot order a read"
    return None


@dataclass
class Backfill:
    """One table's backfill: request `n`, the highest key emitted (`hi`, None before the first row)."""

    n: int
    db: str
    table: str
    attempt: int = 0  # the reader run writing it (`BackfillQueue.run`)
    hi: tuple[Any, ...] | None = None
    rows: int = 0
    started: bool = False  # its first page was asked for (the table's schema is set)
    loose: bool = False  # may have begun in an earlier run: no log change is dropped
    key_columns: tuple[str, ...] = ()
    schema: TableSchema | None = field(default=None, repr=False)

    @property
    def name(self) -> TableName:
        return (self.db, self.table)

    @property
    def chunk(self) -> str:
        return f"backfill-{self.n}.{_base36(self.attempt)}:{self.db}.{self.table}"

    def cursor(self) -> BackfillCursor:
        """Its progress, as kept in the resume state."""
        return BackfillCursor(self.n, self.db, self.table, self.attempt, self.hi, self.rows)

    @classmethod
    def from_cursor(cls, c: BackfillCursor) -> Backfill:
        return cls(c.n, c.db, c.table, c.attempt, c.hi, c.rows)

    def below(self, key: tuple[Any, ...] | None) -> bool:
        """True when a log change of this key is emitted (the key is at or below `hi`)."""
        if key is None or self.loose:
            return True  # no key image (should not happen for a keyed table): never lose it
        if self.hi is None:
            return False
        try:
            return key <= self.hi
        except TypeError:
            return True

    def row(self, schema: TableSchema, row: dict[str, Any]) -> Change:
        """A page row as an INSERT change of this backfill's stream; moves `hi`."""
        key = tuple(row[c] for c in self.key_columns)
        self.hi = key
        self.rows += 1
        return Change(Op.INSERT, schema, SnapshotPosition(self.chunk, key), None, row, time.time())


def admit(change: Change, bf: Backfill) -> list[Change]:
    """What of a log change of a table being backfilled is emitted: the images at or below `hi`. An update
    whose key crosses `hi` keeps the side below it, as a delete of the old key or an insert of the new one."""
    cols = bf.key_columns or (change.table.key_columns if change.table is not None else ())
    if change.op is Op.DDL or not cols:
        return [change]
    b = None if change.before is None else tuple(change.before.get(c) for c in cols)
    a = None if change.after is None else tuple(change.after.get(c) for c in cols)
    if change.op is Op.INSERT:
        return [change] if bf.below(a) else []
    if change.op is Op.DELETE:
        return [change] if bf.below(b) else []
    keep_b, keep_a = bf.below(b), bf.below(a)
    if keep_b and keep_a:
        return [change]
    if keep_b:
        return [Change(Op.DELETE, change.table, change.position, change.before, None, change.commit_time,
                       change.txn, change.server_id)]
    if keep_a:
        return [Change(Op.INSERT, change.table, change.position, None, change.after, change.commit_time,
                       change.txn, change.server_id)]
    return []


class BackfillQueue:
    """The log partition's backfills: the requests done, the current one, the ones waiting.

    Requests come from the task (`sync`): every backfill ever requested, as (n, db, table); those done are
    kept by number in the resume state. A table waiting for its backfill has every log change dropped (its
    backfill reads it whole later)."""

    def __init__(self, state: BackfillProgress | None = None, run: int | None = None) -> None:
        state = state or BackfillProgress()
        self.run = int(time.time() * 1000) if run is None else run  # this reader run's stream tag
        self.done: set[int] = set(state.done)
        self.current: Backfill | None = Backfill.from_cursor(state.current) if state.current else None
        if self.current is not None:
            # Rows after `hi` may have reached Kafka in an earlier run: this run writes a stream of its own.
            self.current.attempt = self.run
        # waiting backfills the log itself asked for (tables renamed into the rules) are kept in the state:
        # the task's requests are given again by `sync`, these would not be
        self.waiting: list[Backfill] = [Backfill.from_cursor(b) for b in state.waiting]
        for b in self.waiting:
            b.attempt = self.run
        self.filtering: dict[TableName, Backfill] = {}
        self._index()

    def _index(self) -> None:
        self.filtering = {b.name: b for b in ([self.current] if self.current else []) + self.waiting}

    @property
    def active(self) -> bool:
        return self.current is not None or bool(self.waiting)

    def sync(self, requests: Iterable[Request], selected: Callable[[TableName], bool],
             fresh: Iterable[int] | None = None) -> None:
        """Take the task's backfill requests: queue the new ones, drop those of tables no longer selected.
        `fresh`: the request numbers made by this process (none began in an earlier run); the others run
        loose. None: all are fresh."""
        fresh_set = None if fresh is None else set(fresh)
        known = self.done | {b.n for b in self.waiting} | ({self.current.n} if self.current else set())
        if self.current is not None and fresh_set is not None and self.current.n not in fresh_set:
            self.current.loose = True
        for n, db, table in sorted(requests):
            if n not in known:
                loose = fresh_set is not None and n not in fresh_set
                self.waiting.append(Backfill(n, db, table, self.run, loose=loose))
        if self.current is not None and not selected(self.current.name):
            log.info("backfill of %s.%s abandoned: the table is no longer selected", *self.current.name)
            self.done.add(self.current.n)
            self.current = None
        for b in [b for b in self.waiting if not selected(b.name)]:
            self.waiting.remove(b)
            self.done.add(b.n)
        # one backfill per table: a later request replaces a waiting one
        latest: dict[TableName, Backfill] = {}
        for b in self.waiting:
            prev = latest.get(b.name)
            if prev is not None:
                self.waiting.remove(prev)
                self.done.add(prev.n)
            latest[b.name] = b
        self._index()

    def add(self, n: int, name: TableName) -> bool:
        """Queue a backfill the log asked for (a table renamed into the rules at a position whose number is
        `n`); False when it was queued or done already (a replay after a restart)."""
        known = self.done | {b.n for b in self.waiting} | ({self.current.n} if self.current else set())
        if n in known:
            return False
        self.waiting = [b for b in self.waiting if b.name != name]  # one backfill per table: the newest
        self.waiting.append(Backfill(n, name[0], name[1], self.run))
        self._index()
        return True

    def next(self) -> Backfill | None:
        """The current backfill, starting the next waiting one if none runs."""
        if self.current is None and self.waiting:
            self.current = self.waiting.pop(0)
            self._index()
        return self.current

    def finish(self) -> None:
        assert self.current is not None
        self.done.add(self.current.n)
        self.current = None
        self._index()

    def progress(self) -> BackfillProgress:
        """What the resume state keeps: the done numbers, the current backfill, the log's own waiting ones."""
        return BackfillProgress(tuple(sorted(self.done)), self.current.cursor() if self.current else None,
                                tuple(b.cursor() for b in self.waiting if b.n < 0))


@dataclass
class Page:
    rows: list[dict[str, Any]]
    at: LogPosition | None  # the binlog position of the page's snapshot (MariaDB), else None
    last: bool  # fewer rows than asked: nothing after it when it was read


class PageReader:
    """Reads backfill pages over its own SQL session (in UTC, values as the snapshot reads them)."""

    def __init__(self, endpoint: Endpoint, page_size: int = 2000) -> None:
        self.endpoint = endpoint
        self.page_size = max(1, page_size)
        self._conn: pymysql.Connection | None = None
        self.dialect: str | None = None

    def _connection(self) -> pymysql.Connection:
        if self._conn is None:
            conn = connect(self.endpoint)
            use_sql_decoders(conn)
            self.dialect = detect_dialect(conn)
            if self.dialect == "oceanbase":
                with conn.cursor() as cur:
                    cur.execute(f"SET SESSION ob_query_timeout = {OB_QUERY_TIMEOUT_US}")
            self._conn = conn
        return self._conn

    def read(self, bf: Backfill, schema: TableSchema) -> Page:
        """The page after `bf.hi`, in read order."""
        cols = [schema.column(c) for c in bf.key_columns]
        orders = [key_order(c) for c in cols]
        read = KeySql.of(cols, orders)  # type: ignore[arg-type]  # key_problem() refused keys without an order
        sql = f"SELECT {select_sql(schema.columns)} FROM {table_sql(schema.db, schema.name, None)}"
        params: list[Any] = []
        if bf.hi is not None:
            cond, params = read.compare(">", bf.hi)
            sql += f" WHERE {cond}"
        sql += f" ORDER BY {read.order_by} LIMIT {self.page_size}"
        try:
            conn = self._connection()
            at = None
            with conn.cursor() as cur:
                if self.dialect == "mariadb":
                    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                    status = {_text(k).lower(): _text(v) for k, v in cur.fetchall()}
                    if status.get("binlog_snapshot_file"):
                        at = LogPosition(status["binlog_snapshot_file"], int(status["binlog_snapshot_position"]))
                cur.execute(sql, params)
                raw = cur.fetchall()
                if self.dialect == "mariadb":
                    cur.execute("COMMIT")
        except DRIVER_ERRORS as e:  # the log reconnects and reads the page again after a retryable one
            self.close()
            failure = classify(e)
            if failure is Failure.CONNECTION_LOST:
                raise SourceUnavailable(f"backfill of {schema.full_name}: lost the source connection: {e}") from None
            error = SourceUnavailable if failure is Failure.TRANSIENT else SourceError
            raise error(f"backfill of {schema.full_name} failed: {describe(e)}") from None
        convert = row_dict_converter(schema.columns)
        return Page([convert(r) for r in raw], at, len(raw) < self.page_size)

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)

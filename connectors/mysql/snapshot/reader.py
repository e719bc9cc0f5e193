"""Reading one snapshot chunk in batches, resumable after any batch. No dataflow engine here.

Key chunks are read with keyset pagination, one query per batch:

    SELECT cols FROM t [AS OF SNAPSHOT scn]
    WHERE key > lo AND key <= hi            -- the chunk, native (index) order
      AND key > last                        -- after the last row handed out, read order
    ORDER BY key LIMIT batch_size

with composite keys written as `a >= x AND (a > x OR (a = x AND b > y))` so the index range is used, values
as query parameters and identifiers quoted. Each row becomes `Change(op=READ, position=SnapshotPosition(chunk,
key))`; positions increase within a chunk in *Python's* order of the canonical key values, which the Kafka
sink relies on to drop what it already wrote. Integer, decimal, float, temporal and binary keys are in that
order natively and page straight along the index.

Character key columns are not: under a case- or accent-insensitive collation, and even under `utf8mb4_bin`
(PAD SPACE), the index order differs from Python's (`'a' < 'B'` under utf8mb4_general_ci, `'a\x01' < 'a'`
under utf8mb4_bin; Python says the opposite of both). Such chunks are ordered by
the UTF-8 bytes (`ORDER BY CAST(col AS BINARY)`, see `keys`), which no index provides. The cost: the index
still bounds the chunk (its range is in the collation's order), but the server must sort the chunk. Paging
that with LIMIT would scan and sort the rest of the chunk for every batch (about chunk_size / batch_size / 2
times the chunk's rows), so these chunks are read by one streaming query per chunk instead (one sort of
chunk_size rows, rows fetched batch by batch; a resume re-runs it from the last key). That query stays open
while the chunk is read: on MySQL/MariaDB `net_write_timeout` is raised for the session, on OceanBase
`ob_query_timeout`. Measured on a 200k-row table (bench/snapshot_bench.py): within 10% of an integer key.

Ordinal chunks (tables without a usable key) are one streaming SELECT (unbuffered cursor) in batches; a row's
position is `(attempt, ordinal)`, the ordinal 1-based. How a resume (or a reconnect) continues depends on the
read point:
- OceanBase: the query reads the plan's SCN, so the scan returns the same rows in the same order (heap tables
  are organised by a hidden increasing row key); the re-run skips the ordinals already handed out and the
  sink's dedup makes it exact.
- MySQL/MariaDB: there is no read point, and rows deleted, inserted or updated since would shift ordinals:
  skipping could lose rows that never changed, and so could the sink dropping a rescan's rows as replays of
  positions an earlier scan wrote (they are other rows by then). So every scan, the first included, reads
  from the first row under a new `attempt` (`next_attempt`: the time the scan starts, in microseconds since
  the epoch, and more than the attempt it follows), whose positions sort after everything any earlier scan
  may have written, even one whose state was never snapshotted (killed before the first snapshot, or a
  state directory started afresh): the rows already delivered are delivered again (at-least-once for tables
  without a key, every copy at a position of its own) and none is lost. The restored state is not enough to
  number the attempts: runs killed before their first snapshot all restore the same state.

With `emit_ddl`, the first batch of a table's first chunk starts with the table's CREATE TABLE (its SHOW CREATE TABLE
at planning, `TablePlan.create_ddl`) as an `Op.DDL` change, positioned before the chunk's first row (key `()`;
`(attempt, 0)` in an ordinal chunk, so a rescan's comes after the rows an earlier scan wrote). A chunk resumed
after it handed rows out does not write it again.

Rows are fetched with mysqlclient (MySQLdb, rows parsed in C) when it is installed, else with pymysql (rows
parsed in Python, 2-3 times the reader's CPU per row); see `obsync.connectors.mysql.fastsql`. Both give the same
values (`obsync.connectors.mysql.values`), the same errors and the same reconnects.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from obsync.connectors.mysql import fastsql
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.connectors.mysql.evaluator import neutral_sql_mode
from obsync.connectors.mysql.failures import (
    DRIVER_ERRORS,
    SNAPSHOT_POLICY,
    Failure,
    classify,
    describe,
    hint,
    stoppable_sleep,
)
from obsync.connectors.mysql.snapshot.keys import KeySql, decode_key, encode_key, select_sql, table_sql
from obsync.connectors.mysql.snapshot.plan import OB_QUERY_TIMEOUT_US, Chunk, SnapshotPlan, TablePlan
from obsync.connectors.mysql.values import row_dict_converter, use_sql_decoders
from obsync.core.changes import Change, Op
from obsync.core.errors import SourceError, SourceUnavailable, StopWhileWaiting
from obsync.core.listeners import NOOP_SOURCE_LISTENER, SourceListener
from obsync.core.positions import SnapshotPosition

log = logging.getLogger(__name__)

_NET_WRITE_TIMEOUT_S = 3600
_SOURCE_ERRORS: tuple[type[Exception], ...] = (*DRIVER_ERRORS, SourceError)  # a session's, or opening one


def _fast_constructor(cls: type, given: tuple[str, ...]) -> Callable[..., Any]:
    """A constructor of the frozen slots dataclass `cls` taking the fields `given` positionally, the others
    at their defaults, that fills the slots directly.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`; for `Change` (11 fields)
    and `SnapshotPosition` that was 1.7-4.5 us per row, a third of the reader's own per-row cost. The object
    is built as an instance of a plain class with the same `__slots__` (the same memory layout, so CPython
    allows the `__class__` assignment that follows), whose attribute stores are the interpreter's fast slot
    stores: 0.3 us for a `Change` rather than 0.7 us through the slot descriptors' `__set__`, which remain the
    fallback should the layouts ever differ. The objects are the same (equal, hashable, immutable
    afterwards); fields come from `dataclasses.fields`, so new ones get their defaults.
    """
    fields = dataclasses.fields(cls)
    env: dict[str, Any] = {"new": object.__new__, "cls": cls}
    values: list[tuple[str, str]] = []
    for f in fields:
        if f.name in given:
            value = f.name
        elif f.default is not dataclasses.MISSING:
            env[f"default_{f.name}"] = f.default
            value = f"default_{f.name}"
        else:
            env[f"default_{f.name}"] = f.default_factory
            value = f"default_{f.name}()"
        values.append((f.name, value))
    by_setters = _compile_make(_setter_lines(cls, given, values, env), env)
    slots = getattr(cls, "__slots__", None)
    if cls.__bases__ == (object,) and slots is not None and set(slots) == {f.name for f in fields}:
        env["twin"] = type(f"_{cls.__name__}Slots", (), {"__slots__": tuple(slots)})
        lines = [f"def make({', '.join(given)}):", "    o = new(twin)"]
        lines += [f"    o.{name} = {value}" for name, value in values]
        lines += ["    o.__class__ = cls", "    return o"]
        make = _compile_make(lines, env)
        try:  # CPython refuses the __class__ assignment (TypeError) if the layouts differ
            sample = make(*given)
        except TypeError:
            return by_setters
        if type(sample) is cls and sample == by_setters(*given):
            return make
    return by_setters


def _setter_lines(cls: type, given: tuple[str, ...], values: list[tuple[str, str]],
                  env: dict[str, Any]) -> list[str]:
    lines = [f"def make({', '.join(given)}):", "    o = new(cls)"]
    for name, value in values:
        env[f"set_{name}"] = cls.__dict__[name].__set__
        lines.append(f"    set_{name}(o, {value})")
    return [*lines, "    return o"]


def _compile_make(lines: list[str], env: dict[str, Any]) -> Callable[..., Any]:
    scope = dict(env)
    exec("\n".join(lines), scope)  # field names from the dataclass, not from input
    return scope["make"]


def next_attempt(previous: int, now: float | None = None) -> int:
    """The attempt number of a new scan of an ordinal chunk on MySQL/MariaDB that follows attempt `previous`.

    `now` (epoch seconds, default the clock) in microseconds, or `previous + 1` if that is more: greater than
    the attempt it follows, and than the attempt of every scan that started earlier, in any process whose
    clock was not ahead of this one, whatever state was (or was not) saved (see the module docstring).
    """
    return max(previous + 1, int((time.time() if now is None else now) * 1_000_000))


_read_change = _fast_constructor(Change, ("op", "table", "position", "after"))
_position = _fast_constructor(SnapshotPosition, ("chunk", "key"))


class ChunkReader:
    """Reads one chunk of a `SnapshotPlan`; `next_batch()` until it returns None.

    `resume` is a `resume_state()` of an earlier reader of the same chunk: reading continues after the last
    row that reader handed out. Resume state (JSON-able):
    `{"chunk": id, "last": encoded position key or None, "rows": rows handed out, "done": bool,
    "attempt": int}` where the position key is the key tuple (key chunks) or `[attempt, ordinal]` (ordinal
    chunks; `attempt` is 0 on OceanBase, and on MySQL/MariaDB that of the chunk's latest scan, see
    `next_attempt`).

    `driver` is the SQL client: "mysqlclient" (C row parsing) or "pymysql"; by default mysqlclient when it is
    installed (`obsync.connectors.mysql.fastsql`). Rows, values, positions and errors are the same with either.

    `stopping()`: whether the task was asked to stop; a wait for a source that is away then ends at once with
    `StopWhileWaiting` (the worker that reads the chunk must not hold the stop up for the whole patience).
    """

    def __init__(self, endpoint: Endpoint, plan: SnapshotPlan, chunk_id: str, batch_size: int,
                 resume: dict[str, Any] | None = None, *, query_timeout_us: int = OB_QUERY_TIMEOUT_US,
                 driver: fastsql.Driver | None = None, row_filter: str | None = None,
                 listener: SourceListener = NOOP_SOURCE_LISTENER, stopping: Callable[[], bool] = lambda: False,
                 emit_ddl: bool = False):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._driver = fastsql.check_driver(driver)
        self._endpoint = endpoint
        # A lost or silent source (its sessions' read timeout) is reconnected to for as long as the endpoint's
        # patience allows; the wait is logged and told to `listener` (status.json, metrics) while it lasts.
        self._policy = dataclasses.replace(SNAPSHOT_POLICY, patience=endpoint.patience)
        self._listener = listener
        self._waiting = False
        self._stopping = stopping
        self._plan = plan
        self._chunk: Chunk = plan.chunk(chunk_id)
        self._table: TablePlan = plan.table(self._chunk.table)
        self._batch_size = batch_size
        self._query_timeout_us = query_timeout_us
        if resume is not None and resume.get("chunk") != chunk_id:
            raise ValueError(f"resume state of chunk {resume.get('chunk')!r} given for chunk {chunk_id!r}")
        self._last: tuple[Any, ...] | None = (
            decode_key(resume["last"]) if resume and resume.get("last") is not None else None)
        self._rows: int = int(resume.get("rows", 0)) if resume else 0
        self._done: bool = bool(resume.get("done", False)) if resume else False
        self._attempt: int = int(resume.get("attempt", 0)) if resume else 0
        self._conn: Any = None  # a pymysql or MySQLdb connection
        self._cursor: Any = None  # the open streaming cursor (ordinal chunks, chunks in binary order)
        schema = self._table.schema
        self._schema = schema
        self._convert = row_dict_converter(schema.columns)
        self._base = f"SELECT {select_sql(schema.columns)} FROM {table_sql(schema.db, schema.name, plan.scn)}"
        # The task's row filter, as SQL regenerated from its parse (`obsync.sql.filters`); '%' doubled because
        # the query is formatted with parameters.
        self._filter = None if row_filter is None else row_filter.replace("%", "%%")
        self._key_names = self._table.key_columns  # () for ordinal chunks
        if self._key_names:
            key_cols = [schema.column(n) for n in self._key_names]
            self._native = KeySql.of(key_cols, ["native"] * len(key_cols))
            self._read = KeySql.of(key_cols, self._table.key_orders)
        # Chunks whose read order is not the index order are read by one streaming query (one sort of the
        # chunk) rather than one query per batch (a scan and sort of the rest of the chunk per batch).
        self._streamed = bool(self._key_names) and self._read.orders != self._native.orders
        # Keyset pages through mysqlclient: the query for the next page is sent as soon as a page is read
        # (its last key known), and its rows read on the next call; the server works meanwhile.
        self._pipelined = bool(self._key_names) and not self._streamed and self._driver == "mysqlclient"
        self._pending = False  # a pipelined query was sent and its rows not read yet
        # `emit_ddl`: the table's first chunk starts with a DDL change of the table's SHOW CREATE TABLE (taken at
        # planning), before its first row, unless the chunk already handed rows out (a resume)
        self._ddl_pending = (emit_ddl and self._table.create_ddl is not None
                             and self._table.chunk_ids[:1] == (chunk_id,) and self._rows == 0
                             and self._last is None and not self._done)
        self.ddl_in_last_batch = 0  # DDL changes (not rows) in the last batch handed out

    # -- public -------------------------------------------------------------------------------------------

    @property
    def chunk_id(self) -> str:
        return self._chunk.id

    @property
    def rows_read(self) -> int:
        """Rows handed out by this chunk so far, including those before a resume (for an ordinal chunk on
        MySQL/MariaDB: in the current attempt of its scan)."""
        return self._rows

    @property
    def done(self) -> bool:
        return self._done

    @property
    def driver(self) -> fastsql.Driver:
        return self._driver

    def resume_state(self) -> dict[str, Any]:
        return {"chunk": self._chunk.id, "last": None if self._last is None else encode_key(self._last),
                "rows": self._rows, "done": self._done, "attempt": self._attempt}

    def next_batch(self) -> list[Change] | None:
        """Up to `batch_size` rows after the last one handed out; None when the chunk is exhausted."""
        if self._done:
            return None
        source = self._endpoint.address
        what = f"snapshot chunk {self._chunk.id}: waiting for the source {source}"
        try:  # a failure worth retrying is retried from the last row handed out, with patience, until a stop
            rows = self._policy.run(self._fetch, what, reset=self._drop_connection, on_retry=self._wait,
                                    sleep=stoppable_sleep(self._stopping, what))
        except StopWhileWaiting as e:
            self._drop_connection()
            self._done_waiting()
            log.info("%s", e)
            raise
        except _SOURCE_ERRORS as e:
            self._drop_connection()
            self._done_waiting()
            failure = classify(e)
            if not failure.retryable:
                if isinstance(e, SourceError):
                    raise
                raise self._error(e) from e
            patience = self._endpoint.patience
            waited = "" if patience is None else f" within source.patience ({patience:g} s)"
            if failure is Failure.CONNECTION_LOST:
                raise SourceUnavailable(f"snapshot chunk {self._chunk.id}: the source {source} did not come back"
                                        f"{waited}: {describe(e)}") from e
            raise SourceUnavailable(str(self._error(e, f"failed {self._policy.transient_attempts} times: "))) from e
        self._done_waiting()
        if len(rows) < self._batch_size:  # the chunk is exhausted: say so in resume_state() right away
            self._finish()
        self.ddl_in_last_batch = 0
        if self._ddl_pending:
            self._ddl_pending = False
            self.ddl_in_last_batch = 1
            rows = [self._create_table_change(), *rows]
        return rows or None

    def _create_table_change(self) -> Change:
        """The table's CREATE TABLE as a DDL change placed before its first row: position key () for key chunks
        (before every key), (attempt, 0) for ordinal ones (before the scan's first row, after earlier scans)."""
        schema = self._schema
        key: tuple[Any, ...] = () if self._key_names else (self._attempt, 0)
        return Change(Op.DDL, schema, SnapshotPosition(self._chunk.id, key), ddl=self._table.create_ddl,
                      ddl_db=schema.db, ddl_tables=((schema.db, schema.name),))

    def close(self) -> None:
        self._drop_connection()
        self._done_waiting()

    def _wait(self, error: BaseException, wait: float) -> None:
        if classify(error) is Failure.CONNECTION_LOST:  # not a lock wait or a deadlock: the source is away
            self._waiting = True
            self._listener.source_waiting(self._chunk.id, self._endpoint.address, describe(error))

    def _done_waiting(self) -> None:
        if self._waiting:
            self._waiting = False
            self._listener.source_waiting(self._chunk.id, self._endpoint.address, None)

    # -- reading ------------------------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is None:
            if self._driver == "mysqlclient":
                conn = fastsql.connect_fast(self._endpoint)  # values as use_sql_decoders gives them
            else:
                conn = connect(self._endpoint)
                use_sql_decoders(conn)
            with conn.cursor() as cur:
                if self._plan.dialect == "oceanbase":
                    cur.execute(f"SET SESSION ob_query_timeout = {int(self._query_timeout_us)}")
                if self._streamed or self._pipelined or not self._key_names:
                    # A streaming read waits on the dataflow (and so does a pipelined page that does not fit
                    # the socket buffers): do not let the server give up on a slow reader.
                    cur.execute(f"SET SESSION net_write_timeout = {_NET_WRITE_TIMEOUT_S}")
            if self._filter is not None:
                neutral_sql_mode(conn)  # the filter means what `obsync.connectors.mysql.evaluator` evaluates
            self._conn = conn
        return self._conn

    def _fetch(self) -> list[Change]:
        return self._fetch_key() if self._table.mode == "key" else self._fetch_ordinal()

    def _fetch_key(self) -> list[Change]:
        if self._streamed:
            if self._cursor is None:
                self._cursor = self._open_stream(*self._key_query(limit=None))
            return self._changes(self._cursor.fetchmany(self._batch_size))
        if self._pipelined:
            return self._fetch_pipelined()
        sql, params = self._key_query(limit=self._batch_size)
        with self._connection().cursor() as cur:
            cur.execute(sql, params)
            return self._changes(cur.fetchall())

    def _fetch_pipelined(self) -> list[Change]:
        conn = self._connection()
        if not self._pending:
            fastsql.send_query(conn, *self._key_query(limit=self._batch_size))
            self._pending = True
        rows = fastsql.read_rows(conn)
        self._pending = False
        changes = self._changes(rows)
        if len(rows) == self._batch_size:  # not the chunk's last page: ask for the next one now
            try:
                fastsql.send_query(conn, *self._key_query(limit=self._batch_size))
                self._pending = True
            except DRIVER_ERRORS as e:
                # This page is read (and handed out): the next call reconnects and asks again.
                log.info("snapshot chunk %s: %s; will reconnect", self._chunk.id, describe(e))
                self._drop_connection()
        return changes

    def _key_query(self, limit: int | None) -> tuple[str, list[Any]]:
        """The chunk's rows after the last one handed out, in read order."""
        conds: list[str] = []
        params: list[Any] = []
        chunk = self._chunk
        if chunk.lo is not None and (self._last is None or self._streamed):
            c, p = self._native.compare(">", chunk.lo)  # read order differs: keep the index range
            conds.append(c)
            params += p
        if chunk.hi is not None:
            c, p = self._native.compare("<=", chunk.hi)
            conds.append(c)
            params += p
        if self._last is not None:
            c, p = self._read.compare(">", self._last)
            conds.append(c)
            params += p
        if self._filter is not None:
            conds.append(self._filter)
        where = (" WHERE " + " AND ".join(f"({c})" for c in conds)) if conds else ""
        sql = f"{self._base}{where} ORDER BY {self._read.order_by}"
        return (sql if limit is None else f"{sql} LIMIT {limit}"), params

    def _fetch_ordinal(self) -> list[Change]:
        if self._cursor is None:
            if self._plan.dialect != "oceanbase":
                # No read point: scan everything, positions after all any earlier scan may have written.
                self._attempt = next_attempt(self._attempt)
                self._rows = 0
                self._last = None
            cur = self._open_stream(self._base if self._filter is None else f"{self._base} WHERE ({self._filter})", [])
            skip = self._rows
            while skip > 0:  # rows handed out before the resume
                got = len(cur.fetchmany(min(skip, 10_000)))
                if got == 0:
                    break
                skip -= got
            self._cursor = cur
        return self._changes(self._cursor.fetchmany(self._batch_size))

    def _open_stream(self, sql: str, params: list[Any]) -> Any:
        cur = fastsql.streaming_cursor(self._connection())
        cur.execute(sql, params)
        return cur

    def _changes(self, raw: Any) -> list[Change]:
        convert, schema, chunk_id, read = self._convert, self._schema, self._chunk.id, Op.READ
        make, pos = _read_change, _position
        out: list[Change] = []
        append = out.append
        keys = self._key_names
        if len(keys) == 1:
            k0 = keys[0]
            for r in raw:
                row = convert(r)
                append(make(read, schema, pos(chunk_id, (row[k0],)), row))
        elif keys:
            for r in raw:
                row = convert(r)
                append(make(read, schema, pos(chunk_id, tuple([row[k] for k in keys])), row))
        else:
            n, attempt = self._rows, self._attempt
            for r in raw:
                n += 1
                append(make(read, schema, pos(chunk_id, (attempt, n)), convert(r)))
        if out:
            self._last = out[-1].position.key  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
        self._rows += len(out)
        return out

    def _finish(self) -> None:
        self._done = True
        self._drop_connection()

    def _drop_connection(self) -> None:
        conn, cursor = self._conn, self._cursor
        self._cursor = self._conn = None
        self._pending = False
        if conn is not None:
            # Both drivers read the rest of an unfinished streaming result (the rest of the chunk) when its
            # cursor is closed or collected: close without reading it.
            fastsql.abandon_stream(conn, cursor)

    def _error(self, e: Exception, detail: str = "") -> SourceError:
        msg = f"snapshot chunk {self._chunk.id}: {detail}{describe(e)}"
        said = hint(e)
        if self._plan.dialect == "oceanbase" and said is not None:  # OceanBase's read point and timeout
            msg += f" ({said})"
        return SourceError(msg)

"""Planning a full sync: which chunks to read, and (on OceanBase) the read point they share.

A table with a key (`TableSchema.key_columns`) is cut into key ranges of `chunk_size` rows: the boundaries are
found by keyset stepping over the key's index (`SELECT key ... WHERE key > last ORDER BY key LIMIT 1 OFFSET
chunk_size-1`), one pass over the index, no sort. Chunk i covers `(boundary[i-1], boundary[i]]` in the key's
native (index) order; the first chunk is open below and the last open above, so the chunks cover the whole
key space whatever rows are inserted after planning. A table without a usable key is one chunk read in
whatever order the server scans it (see `reader`).

Consistency with the log:

- OceanBase: the plan records `scn = current_scn()` and every read (planning included) is `AS OF SNAPSHOT
  scn`, so all chunks, on all workers, see the tenant as of one instant, with no locks. The read must happen
  within the tenant's `undo_retention` (30 minutes by default) of planning. Incremental sync starts at the
  log position of that instant.
- MySQL/MariaDB: there is no global read point; each fetch is its own read. The caller takes the binlog
  position *before* planning, and the log replays from there every change committed during the snapshot, so
  the last write per key converges to the source.

Chunk ids are `db.table/0003` (zero-padded to at least 4 digits, sortable within a table). The plan is
JSON-able (`to_dict`/`from_dict`) so it can be persisted once and shared by all workers and restarts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pymysql

from obsync.connectors.mysql.connection import Dialect
from obsync.connectors.mysql.failures import DRIVER_ERRORS, describe, retryable
from obsync.connectors.mysql.snapshot.keys import (
    KeyOrder,
    KeySql,
    decode_key,
    encode_key,
    key_order,
    select_sql,
    table_sql,
)
from obsync.connectors.mysql.values import row_converter, use_sql_decoders
from obsync.core.errors import SourceError, SourceUnavailable
from obsync.core.schema import TableSchema

log = logging.getLogger(__name__)

PLAN_VERSION = 1
# Microseconds; OceanBase's default is 10 s, too short for planning or reading a large table.
OB_QUERY_TIMEOUT_US = 24 * 3600 * 1_000_000

TableMode = Literal["key", "ordinal"]


@dataclass(frozen=True, slots=True)
class TablePlan:
    """How one table is read.

    `mode` "key": chunks are key ranges, rows come in key order, positions are key tuples; `key_orders`
    says per key column whether rows are ordered by the column itself or by its UTF-8 bytes (see `keys`).
    `mode` "ordinal": one chunk, positions are row ordinals; `reason` says why (no key, unsupported key type).
    """

    schema: TableSchema
    mode: TableMode
    key_orders: tuple[KeyOrder, ...] = ()
    estimated_rows: int = 0  # exact at plan time for keyed tables; TABLE_ROWS or COUNT(*) otherwise
    chunk_ids: tuple[str, ...] = ()
    reason: str | None = None
    create_ddl: str | None = None  # SHOW CREATE TABLE at planning (None: not read)

    @property
    def full_name(self) -> str:
        return self.schema.full_name

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.schema.key_columns if self.mode == "key" else ()

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "mode": self.mode, "key_orders": list(self.key_orders),
                "estimated_rows": self.estimated_rows, "chunk_ids": list(self.chunk_ids),
                "reason": self.reason, "create_ddl": self.create_ddl}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TablePlan:
        return cls(TableSchema.from_dict(d["schema"]), d["mode"], tuple(d.get("key_orders", ())),
                   int(d.get("estimated_rows", 0)), tuple(d.get("chunk_ids", ())), d.get("reason"),
                   d.get("create_ddl"))


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows of `table` with `lo < key <= hi` (native key order; None = unbounded)."""

    id: str
    table: str  # TableSchema.full_name
    lo: tuple[Any, ...] | None = None
    hi: tuple[Any, ...] | None = None
    estimated_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "table": self.table,
                "lo": None if self.lo is None else encode_key(self.lo),
                "hi": None if self.hi is None else encode_key(self.hi),
                "estimated_rows": self.estimated_rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chunk:
        return cls(d["id"], d["table"], None if d.get("lo") is None else decode_key(d["lo"]),
                   None if d.get("hi") is None else decode_key(d["hi"]), int(d.get("estimated_rows", 0)))


@dataclass(frozen=True, slots=True)
class SnapshotPlan:
    """Every chunk of a full sync, in table order then key order, and the read point they share."""

    dialect: Dialect
    chunk_size: int
    tables: tuple[TablePlan, ...]
    chunks: tuple[Chunk, ...]
    scn: int | None = None  # OceanBase read point; None on MySQL/MariaDB
    created_at: float = 0.0  # epoch seconds
    _chunk_by_id: dict[str, Chunk] = field(default_factory=dict, compare=False, repr=False)
    _table_by_name: dict[str, TablePlan] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._chunk_by_id.update({c.id: c for c in self.chunks})
        self._table_by_name.update({t.full_name: t for t in self.tables})

    @property
    def chunk_ids(self) -> list[str]:
        return [c.id for c in self.chunks]

    @property
    def estimated_rows(self) -> int:
        return sum(t.estimated_rows for t in self.tables)

    def chunk(self, chunk_id: str) -> Chunk:
        try:
            return self._chunk_by_id[chunk_id]
        except KeyError:
            raise KeyError(f"chunk {chunk_id!r} is not in the snapshot plan") from None

    def table(self, full_name: str) -> TablePlan:
        return self._table_by_name[full_name]

    def table_of(self, chunk_id: str) -> TablePlan:
        return self._table_by_name[self.chunk(chunk_id).table]

    def to_dict(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "dialect": self.dialect, "scn": self.scn,
                "chunk_size": self.chunk_size, "created_at": self.created_at,
                "tables": [t.to_dict() for t in self.tables], "chunks": [c.to_dict() for c in self.chunks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnapshotPlan:
        if d.get("version") != PLAN_VERSION:
            raise ValueError(f"snapshot plan version {d.get('version')!r} is not {PLAN_VERSION}")
        return cls(d["dialect"], int(d["chunk_size"]), tuple(TablePlan.from_dict(t) for t in d["tables"]),
                   tuple(Chunk.from_dict(c) for c in d["chunks"]),
                   None if d.get("scn") is None else int(d["scn"]), float(d.get("created_at", 0.0)))


def plan_snapshot(conn: pymysql.Connection, dialect: Dialect, tables: Sequence[TableSchema],
                  chunk_size: int, with_ddl: bool = True) -> SnapshotPlan:
    """Plan the full sync of `tables` over `conn` (a session from `connect()`, in UTC). `with_ddl`: keep each
    table's SHOW CREATE TABLE (`TablePlan.create_ddl`, for formats that write a snapshot's DDL; one more query
    per table).

    For the duration of planning, the session's pymysql decoders are those of `values.use_sql_decoders`
    and, on OceanBase, its `ob_query_timeout` is raised; both are restored afterwards.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    names = [t.full_name for t in tables]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"tables listed twice in the snapshot: {', '.join(twice)}")
    saved_decoders = conn.decoders
    use_sql_decoders(conn)
    scn = None
    saved_timeout = None
    try:
        if dialect == "oceanbase":
            saved_timeout = _query(conn, "SELECT @@ob_query_timeout")[0][0]
            _query(conn, f"SET SESSION ob_query_timeout = {OB_QUERY_TIMEOUT_US}")
            scn = int(_query(conn, "SELECT current_scn()")[0][0])
            log.info("snapshot read point: SCN %d", scn)
        table_plans: list[TablePlan] = []
        chunks: list[Chunk] = []
        for schema in tables:
            tp, tchunks = _plan_table(conn, schema, chunk_size, scn)
            if with_ddl:
                tp = dataclasses.replace(tp, create_ddl=show_create(conn, schema))
            table_plans.append(tp)
            chunks.extend(tchunks)
            log.info("planned %s: %d chunk(s), ~%d rows (%s)", schema.full_name, len(tchunks),
                     tp.estimated_rows, tp.mode if tp.reason is None else f"{tp.mode}: {tp.reason}")
    finally:
        conn.decoders = saved_decoders
        if saved_timeout is not None:
            _query(conn, f"SET SESSION ob_query_timeout = {int(saved_timeout)}")
    return SnapshotPlan(dialect, chunk_size, tuple(table_plans), tuple(chunks), scn, time.time())


def _plan_table(conn: pymysql.Connection, schema: TableSchema, chunk_size: int,
                scn: int | None) -> tuple[TablePlan, list[Chunk]]:
    ref = table_sql(schema.db, schema.name, scn)
    key_cols = [schema.column(n) for n in schema.key_columns]
    orders = [key_order(c) for c in key_cols]
    if not key_cols or None in orders:
        reason = "no primary key or non-null unique key" if not key_cols else (
            "key column types " + ", ".join(f"{c.name} {c.column_type}" for c, o in zip(key_cols, orders, strict=True)
                                            if o is None) + " cannot order a snapshot")
        rows = _estimate_rows(conn, schema, ref)
        cid = f"{schema.full_name}/0000"
        return (TablePlan(schema, "ordinal", (), rows, (cid,), reason), [Chunk(cid, schema.full_name, None,
                                                                             None, rows)])

    native = KeySql.of(key_cols, ["native"] * len(key_cols))
    convert = row_converter(key_cols)
    step_sql = f"SELECT {select_sql(key_cols)} FROM {ref}"
    boundaries: list[tuple[Any, ...]] = []
    while True:
        if boundaries:
            cond, params = native.compare(">", boundaries[-1])
            sql = f"{step_sql} WHERE {cond} ORDER BY {native.order_by} LIMIT 1 OFFSET {chunk_size - 1}"
        else:
            sql, params = f"{step_sql} ORDER BY {native.order_by} LIMIT 1 OFFSET {chunk_size - 1}", []
        found = _query(conn, sql, params)
        if not found:
            break
        boundaries.append(tuple(convert(found[0])))
    if boundaries:
        cond, params = native.compare(">", boundaries[-1])
        rest = int(_query(conn, f"SELECT COUNT(*) FROM {ref} WHERE {cond}", params)[0][0])
    else:
        rest = int(_query(conn, f"SELECT COUNT(*) FROM {ref}", [])[0][0])
    if boundaries and rest == 0:
        boundaries.pop()  # the last boundary is the largest key: make that chunk the open-ended one
        rest = chunk_size
    total = chunk_size * len(boundaries) + rest
    n = len(boundaries) + 1
    width = max(4, len(str(n - 1)))
    ids = tuple(f"{schema.full_name}/{i:0{width}d}" for i in range(n))
    bounds: list[tuple[Any, ...] | None] = [None, *boundaries, None]
    chunks = [Chunk(ids[i], schema.full_name, bounds[i], bounds[i + 1], chunk_size if i < n - 1 else rest)
              for i in range(n)]
    return TablePlan(schema, "key", tuple(o for o in orders if o), total, ids), chunks


def show_create(conn: pymysql.Connection, schema: TableSchema) -> str | None:
    """The table's SHOW CREATE TABLE text (what Debezium's snapshot writes as the table's DDL); None, with a
    warning, when the server does not give it."""
    try:
        rows = _query(conn, f"SHOW CREATE TABLE {table_sql(schema.db, schema.name, None)}")
    except SourceUnavailable:
        raise  # planning is retried as a whole
    except SourceError as e:
        log.warning("%s: full sync writes no CREATE TABLE for %s", e, schema.full_name)
        return None
    if not rows or len(rows[0]) < 2 or rows[0][1] is None:
        return None
    text = rows[0][1]
    return text.decode() if isinstance(text, (bytes, bytearray)) else str(text)


def _estimate_rows(conn: pymysql.Connection, schema: TableSchema, ref: str) -> int:
    """TABLE_ROWS when the server keeps it (InnoDB: an estimate), else COUNT(*) (a scan)."""
    found = _query(conn, "SELECT TABLE_ROWS FROM information_schema.TABLES "
                         "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", [schema.db, schema.name])
    if found and found[0][0]:
        return int(found[0][0])
    return int(_query(conn, f"SELECT COUNT(*) FROM {ref}", [])[0][0])


def _query(conn: pymysql.Connection, sql: str, params: list[Any] | None = None) -> tuple:
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    except DRIVER_ERRORS as e:
        error = SourceUnavailable if retryable(e) else SourceError
        raise error(f"snapshot planning failed: {describe(e)} (query: {sql[:300]})") from e

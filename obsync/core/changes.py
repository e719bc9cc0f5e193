"""The change events that flow through a task, frozen at the connector boundary.

Sources emit *batches* (lists) of these items, never single rows: moving an item between Bytewax workers is
expensive, so every step works on batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from obsync.core.positions import Position
from obsync.core.schema import TableSchema

Row = dict[str, Any]  # column name -> canonical value (see obsync.core.schema)


class Op(str, Enum):
    """What happened to a row (or to the schema)."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"  # a row read by full sync
    DDL = "ddl"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True, slots=True)
class Change:
    """One row change, snapshot row, DDL statement or heartbeat, with its position."""

    op: Op
    table: TableSchema | None  # None for heartbeats and DDL on tables the task does not track
    position: Position
    before: Row | None = None  # UPDATE and DELETE
    after: Row | None = None  # INSERT, UPDATE and READ
    commit_time: float | None = None  # source commit time, epoch seconds (log changes only)
    txn: str | None = None  # transaction identity: GTID, or "file:pos" of the transaction's start
    server_id: int | None = None
    ddl: str | None = None  # statement text for Op.DDL
    ddl_db: str | None = None  # database the DDL ran in
    ddl_tables: tuple[tuple[str, str], ...] = ()  # (db, table) pairs the DDL names

    def key(self) -> tuple[Any, ...] | None:
        """The row's identity: values of the table's key columns (None if the table has no key)."""
        if self.table is None or not self.table.key_columns:
            return None
        row = self.after if self.after is not None else self.before
        assert row is not None
        return tuple(row[c] for c in self.table.key_columns)


class _ChangeBuilder:
    """Builds a row `Change` of the binary log at a quarter of the cost of the frozen dataclass's `__init__`
    (the binlog reader makes one per row): the same slots filled by plain stores, then the object's class set
    to `Change`. The result is a `Change` in every respect (type, equality, pickling, `dataclasses.replace`); a
    field added to `Change` and not here fails the class assignment (different slots), never silently."""

    __slots__ = ("op", "table", "position", "before", "after", "commit_time", "txn", "server_id", "ddl", "ddl_db",
                 "ddl_tables")

    def __init__(self, op: Op, table: TableSchema, position: Position, before: Row | None, after: Row | None,
                 commit_time: float | None, txn: str | None, server_id: int | None) -> None:
        self.op = op
        self.table = table
        self.position = position
        self.before = before
        self.after = after
        self.commit_time = commit_time
        self.txn = txn
        self.server_id = server_id
        self.ddl = None
        self.ddl_db = None
        self.ddl_tables = ()
        self.__class__ = Change  # type: ignore[assignment]  # the same slots: now a Change


# `Change(op, table, position, before, after, commit_time, txn, server_id)`, faster (a binlog row's change)
new_row_change = cast(
    "Callable[[Op, TableSchema, Position, Row | None, Row | None, float | None, str | None, int | None], Change]",
    _ChangeBuilder)


@dataclass(frozen=True, slots=True)
class StreamDone:
    """Marker a snapshot chunk emits after its last row; the sink records it per Kafka partition."""

    stream: str  # SnapshotPosition.stream of the finished chunk


Item = Change | StreamDone
Batch = list[Item]

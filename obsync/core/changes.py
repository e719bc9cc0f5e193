"""The change events that flow through a task, frozen at the connector boundary.

Sources emit *batches* (lists) of these items, never single rows: moving an item between Bytewax workers is
expensive, so every step works on batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

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


@dataclass(frozen=True, slots=True)
class StreamDone:
    """Marker a snapshot chunk emits after its last row; the sink records it per Kafka partition."""

    stream: str  # SnapshotPosition.stream of the finished chunk


Item = Change | StreamDone
Batch = list[Item]

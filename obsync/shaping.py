"""Per-object shaping of change batches, before they are encoded: what each object's settings change.

    changes ─> shape (this module) ─> encode + route (obsync.routing) ─> Kafka sink

What it does today:
- **Sharding columns**: each change of an object with `sharding_columns` gets its table's schema with
  `TableSchema.sharding_columns` set, so the message key and the Hash rule use them (`message_key_columns`).
  The shaped schema is built once per source schema object (the sources share one schema object per table
  version), so a row costs one dictionary look-up and one new frozen `Change`.
- **TRUNCATE idempotence**: OceanBase's delayed deletion writes a TRUNCATE TABLE twice in one transaction;
  a second identical TRUNCATE (same statement, same default database) in the same transaction is dropped,
  so it is delivered once (FORMATS.md). Only the current transaction's TRUNCATE statements are remembered.

Row filters and column projection belong here too, per object (`ObjectShape`), and come in a later
release: a filter drops changes (an UPDATE that leaves or enters the filter becomes a DELETE or an INSERT),
a projection narrows the schema and the row images, and both are built once per source schema, as the
sharding columns are.

Engine-free: `Shaper.shape(batch) -> batch` is what the dataflow's "shape" step calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from obsync.changes import Change, Item, Op
from obsync.config import TaskConfig
from obsync.errors import ConfigError
from obsync.schema import TableSchema

TableName = tuple[str, str]

_CACHE_LIMIT = 4096
_LEADING_COMMENTS = re.compile(r"^(?:\s+|/\*(?!!).*?\*/|(?:--[ \t]|#)[^\n]*\n?)*", re.S)
_TRUNCATE = re.compile(r"TRUNCATE\b", re.I)
_DDL = Op.DDL


@dataclass(frozen=True, slots=True)
class ObjectShape:
    """What a task's object settings do to its table's changes (more settings come with filters and
    projection)."""

    sharding_columns: tuple[str, ...] = ()

    @property
    def is_identity(self) -> bool:
        """True when changes of the object pass unchanged."""
        return not self.sharding_columns


class Shaper:
    """Applies each object's shape to the changes of its table, and drops repeated TRUNCATEs."""

    def __init__(self, shapes: Mapping[TableName, ObjectShape]) -> None:
        self.shapes = {name: s for name, s in shapes.items() if not s.is_identity}
        # id(source schema) -> (source schema, shaped schema); holding the source keeps its id from reuse
        self._schemas: dict[int, tuple[TableSchema, TableSchema]] = {}
        self._txn: str | None = None  # transaction of the TRUNCATEs remembered
        self._truncates: set[tuple[str | None, str]] = set()  # (default db, statement) seen in `_txn`

    @classmethod
    def from_task(cls, task: TaskConfig) -> Shaper:
        return cls({(o.db, o.table): ObjectShape(o.sharding_columns) for o in task.objects})

    def shape(self, batch: Sequence[Item]) -> Sequence[Item]:
        """The batch with each change shaped, in the same order; repeated TRUNCATEs left out."""
        if not self.shapes:
            for item in batch:  # nothing to shape: only DDL can make a difference
                if item.__class__ is Change and item.op is _DDL:  # type: ignore[union-attr]
                    break
            else:
                return batch
        out: list[Item] = []
        append = out.append
        schemas = self._schemas
        changed = False
        for item in batch:
            if item.__class__ is Change:
                table = item.table  # type: ignore[union-attr]
                if item.op is _DDL and not self._first_delivery(item):  # type: ignore[union-attr, arg-type]
                    changed = True
                    continue
                if table is not None:
                    hit = schemas.get(id(table))
                    shaped = hit[1] if hit is not None and hit[0] is table else self._cache(table)
                    if shaped is not table:
                        c: Change = item  # type: ignore[assignment]
                        item = Change(c.op, shaped, c.position, c.before, c.after, c.commit_time, c.txn,
                                      c.server_id, c.ddl, c.ddl_db, c.ddl_tables)
                        changed = True
            append(item)
        return out if changed else batch

    # ------------------------------------------------------------------ sharding columns

    def _cache(self, table: TableSchema) -> TableSchema:
        """The shaped schema of `table`, built and remembered (by the source schema's identity)."""
        shaped = self._shaped_schema(table)
        if len(self._schemas) >= _CACHE_LIMIT:
            self._schemas.clear()
        self._schemas[id(table)] = (table, shaped)
        return shaped

    def _shaped_schema(self, table: TableSchema) -> TableSchema:
        shape = self.shapes.get((table.db, table.name))
        if shape is None:
            return table
        missing = [c for c in shape.sharding_columns if c not in table.column_names]
        if missing:  # checked at the start; a later DDL dropped or renamed it
            raise ConfigError(
                f"sharding column {missing[0]!r} of {table.full_name} is no longer a column of the table "
                f"(columns now: {', '.join(table.column_names)}); change the object's `sharding_columns` "
                "in the task file and run the task again")
        return TableSchema(table.db, table.name, table.columns, table.primary_key, table.unique_keys,
                           sharding_columns=shape.sharding_columns)

    # ------------------------------------------------------------------ TRUNCATE idempotence

    def _first_delivery(self, change: Change) -> bool:
        """False for a TRUNCATE identical to one already seen in the same transaction."""
        statement = change.ddl or ""
        if change.txn is None or not _is_truncate(statement):
            return True
        if change.txn != self._txn:
            self._txn = change.txn
            self._truncates = set()
        key = (change.ddl_db, statement.strip())
        if key in self._truncates:
            return False
        self._truncates.add(key)
        return True


def _is_truncate(statement: str) -> bool:
    """True for `TRUNCATE [TABLE] t` (not `ALTER TABLE t TRUNCATE PARTITION p`), comments before it skipped."""
    return _TRUNCATE.match(statement, _LEADING_COMMENTS.match(statement).end()) is not None  # type: ignore[union-attr]

"""The task's schema-change policy (`schema_changes.policy`) where the log meets DDL (docs/schema-changes.md).

The reader's session asks it about every DDL statement that changed a tracked table's definition (the schema
tracker has applied it already: rows are always decoded with the real shape) and about every batch of rows:

- `evolve` (default): nothing; messages follow the new shape.
- `stop`: a DDL that changes a table the task already knows (ALTER, RENAME, DROP; not a CREATE of a new
  table) raises `SchemaChangeStopped` before any change after it is queued; the changes before it are handed
  out with a resume point at the start of the DDL, so a start with another policy reads the DDL again.
- `ignore`: each table's messages keep their shape (`obsync.core.frozen_shapes`): a `ShapeHistory` keeps the
  shape of each table by log position, like the schema history, in a store next to it (`schema_shapes.jsonl` in
  the state directory, or the control topic's `schema_shapes/` records in a cluster), so a resume at any position
  sends the shape that was sent there.
- `compatible` is the Avro encoder's (`obsync.formats.avro.compat`); here it is `evolve`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from obsync.connectors.mysql.binlog.schema_history import FileHistoryStore, HistoryStore, Timeline
from obsync.core.errors import ObsyncError, StateError
from obsync.core.frozen_shapes import Shape, ShapeConversionError, follow_ddl, projector
from obsync.core.positions import LogPosition
from obsync.core.schema import TableSchema
from obsync.sql import ddl as D
from obsync.sql.ddl import TableDef, TableName

log = logging.getLogger(__name__)

POLICIES = ("evolve", "ignore", "stop", "compatible")
SHAPES = "schema_shapes"  # the store's name next to the schema history's
Changed = list[tuple[TableName, TableDef | None, TableDef | None]]  # (table, before, after) of one DDL
Row = dict[str, Any]


class SchemaChangeStopped(ObsyncError):
    """The `stop` policy met a schema change: the task stops before the first change after it."""


def sibling_store(history: str | Any | None, name: str) -> HistoryStore | None:
    """The store `name` kept where the schema history `history` is (a directory, or a store with `sibling`)."""
    if history is None:
        return None
    if isinstance(history, (str, bytes)) or hasattr(history, "__fspath__"):
        return FileHistoryStore(history, f"{name}.jsonl")
    sibling = getattr(history, "sibling", None)
    if sibling is None:
        raise StateError(f"the schema history store {history} cannot keep {name}: it has no sibling stores")
    store: HistoryStore = sibling(name)
    return store


class ShapeHistory:
    """The shape of each table by log position (the last entry at or before a position counts; None: no shape,
    the table is gone). Lines: `{"pos": [...], "db": ..., "table": ..., "shape": Shape.to_dict() | null}`."""

    def __init__(self, store: HistoryStore | None) -> None:
        self.store = store
        self._timeline: Timeline[Shape] = Timeline(
            store, "shape", Shape.from_dict, "schema shapes",
            "restore them, or start the task afresh (its messages then take the tables' current shapes)")

    def at(self, name: TableName, pos: LogPosition) -> tuple[bool, Shape | None]:
        return self._timeline.at(name, pos)

    def record(self, name: TableName, pos: LogPosition, shape: Shape | None) -> None:
        self._timeline.record(name, pos, shape, shape.to_dict() if shape is not None else None)


def _renames(sql: str, default_db: str | None, dialect: str) -> tuple[dict[TableName, TableName], dict[str, str]]:
    """The table renames (old -> new) and column renames (old -> new) of a statement."""
    try:
        st = D.parse_ddl(sql, default_db, dialect)
    except D.DdlSyntaxError:
        return {}, {}
    if isinstance(st, D.RenameTables):
        return dict(st.pairs), {}
    if not isinstance(st, D.AlterTable):
        return {}, {}
    tables = {st.table: st.new_name} if st.new_name is not None and st.new_name != st.table else {}
    cols: dict[str, str] = {}
    for a in st.actions:
        if a[0] == "rename_column" and a[1] != a[2]:
            cols[a[1]] = a[2]
        elif a[0] == "modify_column" and a[1] != a[2].name:
            cols[a[1]] = a[2].name
    return tables, cols


class SchemaPolicy:
    """What the session does for the task's `schema_changes.policy` (see the module docstring)."""

    def __init__(self, policy: str, history_store: str | Any | None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"schema change policy {policy!r} is not one of {', '.join(POLICIES)}")
        self.policy = policy
        self.shapes = ShapeHistory(sibling_store(history_store, SHAPES)) if policy == "ignore" else None
        self._current: dict[TableName, Shape | None] = {}
        # per real schema object: (its shape version, the frozen schema and the row projector, or None: as is)
        self._plans: dict[int, tuple[int, TableSchema, tuple[TableSchema, Callable[[Row], Row]] | None]] = {}
        self._version = 0

    @property
    def active(self) -> bool:
        return self.policy in ("ignore", "stop")

    def start(self, defs: dict[TableName, TableDef | None], pos: LogPosition) -> None:
        """(ignore) The shapes at the start position; a table without one takes its definition there."""
        if self.shapes is None:
            return
        for name, d in sorted(defs.items()):
            known, shape = self.shapes.at(name, pos)
            if not known:
                shape = Shape(d.schema) if d is not None else None
                self.shapes.record(name, pos, shape)
            self._current[name] = shape
        self._version += 1

    def on_ddl(self, sql: str, default_db: str | None, dialect: str, pos: LogPosition, changed: Changed,
               new_for_task: bool) -> None:
        """A DDL ending at `pos` changed these tracked tables; `new_for_task`: its changes were not handed out
        before (a resume reads again what it had passed: that is not a new schema change)."""
        if not changed:
            return
        if self.policy == "stop" and new_for_task:
            touched = [n for n, before, _ in changed if before is not None]
            if touched:
                names = ", ".join(f"{d}.{t}" for d, t in touched)
                raise SchemaChangeStopped(
                    f"schema change at {pos.file}:{pos.pos} on table {names}: {sql.strip()!r}. The task's "
                    "schema_changes.policy is stop, so it stopped before any change after this statement; every "
                    "change before it is written. To go on, set schema_changes.policy to evolve (messages take "
                    "the new shape), ignore (they keep the old one) or, with format avro and a schema registry, "
                    "compatible, and start the task again: it resumes at this statement")
        if self.shapes is None:
            return
        table_renames, col_renames = _renames(sql, default_db, dialect)
        gone = {n: self._current.get(n) for n, _, after in changed if after is None}
        for name, before, after in changed:
            if after is None:
                shape = None
            else:
                source = next((old for old, new in table_renames.items() if new == name), None)
                prev = self._current.get(name) if source is None else gone.get(source, self._current.get(source))
                if prev is None:
                    shape = Shape(after.schema)
                else:
                    if source is not None:
                        prev = prev.renamed(*name)
                    if before is None and source is not None:
                        was = next((b for n, b, _ in changed if n == source), None)
                        before = was.renamed(name) if was is not None else None
                    shape, notes = follow_ddl(prev, before.schema if before is not None else None, after.schema,
                                              col_renames)
                    if notes and new_for_task:
                        log.info("schema change at %s on %s.%s: its messages keep their shape "
                                 "(schema_changes.policy ignore): %s", pos, name[0], name[1], "; ".join(notes))
            self._current[name] = shape
            self.shapes.record(name, pos, shape)
        self._version += 1

    def plan(self, schema: TableSchema, pos: LogPosition) -> tuple[TableSchema, Callable[[Row], Row]] | None:
        """(ignore) The frozen schema and the row projector for rows decoded with `schema`; None: sent as
        they are. A table met for the first time keeps the shape it has now (recorded at `pos`). The projector
        raises `ShapeConversionError` for a value it cannot send (`conversion_stop` says what to do)."""
        if self.shapes is None:
            return None
        cached = self._plans.get(id(schema))
        if cached is not None and cached[0] == self._version and cached[1] is schema:
            return cached[2]
        name = (schema.db, schema.name)
        if name not in self._current:
            self._current[name] = Shape(schema)
            self.shapes.record(name, pos, self._current[name])
        shape = self._current[name]
        plan = None
        if shape is not None and (shape.names or shape.schema != schema):
            plan = (shape.schema, projector(shape, schema))
        if len(self._plans) > 4096:
            self._plans.clear()
        self._plans[id(schema)] = (self._version, schema, plan)
        return plan


def conversion_stop(table: str, where: str, e: ShapeConversionError) -> SchemaChangeStopped:
    """The error that stops the task when `ignore` cannot send a value in its column's old type."""
    return SchemaChangeStopped(
        f"table {table} at {where}: {e}. schema_changes.policy ignore sends the column in its old type, which "
        "cannot hold this value; set schema_changes.policy to evolve and start the task again (it resumes at "
        "this change, nothing is lost)")

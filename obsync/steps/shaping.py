"""Per-object shaping of change batches, before they are encoded: what each object's settings change.

    changes ─> shape (this module) ─> encode + route (obsync.steps.routing) ─> Kafka sink

For each change, the settings of the table's object (its first matching rule, `obsync.task.selection`) apply:
- **Row filter** (`where`, `obsync.sql.filters`): an insert is kept when its row passes, a delete when its old
  row passed; an update is judged on both images: in -> in stays an update, out -> in becomes an insert of
  the new row, in -> out a delete of the old row, out -> out is dropped. Full sync applies the same
  filter in the database (pushed into the SELECT), so both give the same rows.
- **DML types** (`sync.dml`): operations not listed are dropped, after the filter has turned an update
  into an insert or a delete.
- **Columns** (`columns`): the rows and the schema are narrowed to the listed columns plus the key and
  sharding columns (the message still says which are keys); DDL carries the narrowed schema too.
- **Sharding columns**: the schema gets `TableSchema.sharding_columns`, so the message key and the Hash
  rule use them (`message_key_columns`).
- **TRUNCATE idempotence**: OceanBase's delayed deletion writes a TRUNCATE TABLE twice in one transaction;
  a second identical TRUNCATE (same statement, same default database) in the same transaction is dropped,
  so it is delivered once (docs/formats/README.md, "DDL messages"). Only the current transaction's TRUNCATE
  statements are remembered.

The shape of a table is built once per source schema object (the sources share one schema object per table
version), so a row costs a dictionary look-up, the filter's closures and, when something changes, one new
frozen `Change`. A DDL that removes a column the object names stops the task with an error naming it.

Engine-free: `Shaper.shape(batch) -> batch` is what the dataflow's "shape" step calls.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from obsync.core.changes import Change, Item, Op
from obsync.core.errors import ConfigError
from obsync.core.schema import TableSchema
from obsync.task.config import DML_OPS, ObjectConfig, TaskConfig
from obsync.task.live import Live
from obsync.task.objects import compile_where, kept_columns, project_schema
from obsync.task.selection import Selection

TableName = tuple[str, str]
SqlEval = Callable[[str, tuple], Any]

_CACHE_LIMIT = 4096
_LEADING_COMMENTS = re.compile(r"^(?:\s+|/\*(?!!).*?\*/|(?:--[ \t]|#)[^\n]*\n?)*", re.S)
_TRUNCATE = re.compile(r"TRUNCATE\b", re.I)
_DDL, _INSERT, _UPDATE, _DELETE = Op.DDL, Op.INSERT, Op.UPDATE, Op.DELETE
_FILTERED = frozenset({_INSERT, _UPDATE, _DELETE})  # full-sync rows (READ) were filtered by the database


@dataclass(frozen=True, slots=True)
class TableShape:
    """What the task does to one version of a table's changes."""

    schema: TableSchema  # the shaped schema (narrowed, with sharding columns)
    columns: tuple[str, ...] | None  # the columns kept, None for all
    matches: Callable[[dict[str, Any]], bool] | None  # the row filter, None for every row

    @property
    def narrows(self) -> bool:
        return self.columns is not None


class Shaper:
    """Applies each object's settings to the changes of its table, and drops repeated TRUNCATEs."""

    def __init__(self, selection: Selection, dml: Sequence[str] = DML_OPS, sql_eval: SqlEval | None = None) -> None:
        self.selection = selection
        # full-sync rows (READ: filtered in the database), DDL and heartbeats are not DML types
        self.dml = frozenset(Op[o.upper()] for o in dml) | {_DDL, Op.READ, Op.HEARTBEAT}
        self.all_dml = len(self.dml) == len(Op)
        self.sql_eval = sql_eval
        # Nothing to shape when no object sets anything and every operation is sent.
        self.identity = self.all_dml and all(_is_plain(o) for o in selection.objects)
        # id(source schema) -> (source schema, shape); holding the source keeps its id from reuse
        self._shapes: dict[int, tuple[TableSchema, TableShape]] = {}
        self._txn: str | None = None  # transaction of the TRUNCATEs remembered
        self._truncates: set[tuple[str | None, str]] = set()  # (default db, statement) seen in `_txn`
        self.live: Live | None = None  # its objects replace these when its version moves
        self._live_version = 0

    @classmethod
    def from_live(cls, live: Live, sql_eval: SqlEval | None = None) -> Shaper:
        """A Shaper that follows the running task's current objects (`obsync.task.live`)."""
        shaper = cls(live.selection, live.task.sync.dml, sql_eval)
        shaper.live, shaper._live_version = live, live.version
        return shaper

    def _follow(self) -> None:
        """The task's objects changed while running: rebuild the shapes from the new ones."""
        assert self.live is not None
        cfg = self.live.current
        self._live_version = cfg.version
        self.selection = cfg.selection
        self.dml = frozenset(Op[o.upper()] for o in cfg.task.sync.dml) | {_DDL}
        self.all_dml = len(self.dml) == 4
        self.identity = self.all_dml and all(_is_plain(o) for o in cfg.selection.objects)
        self._shapes.clear()

    @classmethod
    def from_task(cls, task: TaskConfig, sql_eval: SqlEval | None = None) -> Shaper:
        return cls(task.selection(), task.sync.dml, sql_eval)

    def shape(self, batch: Sequence[Item]) -> Sequence[Item]:
        """The batch with each change shaped, in the same order; dropped changes left out."""
        if self.live is not None and self.live.version != self._live_version:
            self._follow()
        if self.identity:
            for item in batch:  # nothing to shape: only DDL can make a difference
                if item.__class__ is Change and item.op is _DDL:
                    break
            else:
                return batch
        out: list[Item] = []
        append = out.append
        shapes = self._shapes
        changed = False
        for item in batch:
            if item.__class__ is not Change:
                append(item)
                continue
            c: Change = item
            if c.op is _DDL and not self._first_delivery(c):
                changed = True
                continue
            table = c.table
            if table is None:
                append(c)
                continue
            hit = shapes.get(id(table))
            shape = hit[1] if hit is not None and hit[0] is table else self._cache(table)
            if c.op is _DDL:
                if shape.schema is not table:
                    c = Change(c.op, shape.schema, c.position, c.before, c.after, c.commit_time, c.txn,
                               c.server_id, c.ddl, c.ddl_db, c.ddl_tables)
                    changed = True
                append(c)
                continue
            op, before, after = c.op, c.before, c.after
            if shape.matches is not None and op in _FILTERED:
                op = self._filtered_op(c, shape.matches)
                if op is None:
                    changed = True
                    continue
                if op is not c.op:
                    before, after = (None, after) if op is _INSERT else (before, None)
            if op not in self.dml:
                changed = True
                continue
            if shape.narrows:
                cols = shape.columns
                before = None if before is None else {k: before[k] for k in cols}  # type: ignore[union-attr]  # shape.narrows: shape.columns is set
                after = None if after is None else {k: after[k] for k in cols}  # type: ignore[union-attr]  # shape.narrows: shape.columns is set
            if shape.schema is not table or op is not c.op or shape.narrows:
                c = Change(op, shape.schema, c.position, before, after, c.commit_time, c.txn, c.server_id,
                           c.ddl, c.ddl_db, c.ddl_tables)
                changed = True
            append(c)
        return out if changed else batch

    @staticmethod
    def _filtered_op(c: Change, matches: Callable[[dict[str, Any]], bool]) -> Op | None:
        """The operation a change becomes under the row filter, None when it is dropped."""
        if c.op is _INSERT:
            return _INSERT if matches(c.after) else None  # type: ignore[arg-type]  # an insert has its after image
        if c.op is _DELETE:
            return _DELETE if matches(c.before) else None  # type: ignore[arg-type]  # a delete has its before image
        was, now = matches(c.before), matches(c.after)  # type: ignore[arg-type]  # an update has both images
        if was and now:
            return _UPDATE
        if now:
            return _INSERT
        return _DELETE if was else None

    # ------------------------------------------------------------------ per table version

    def _cache(self, table: TableSchema) -> TableShape:
        """The shape of `table`, built and remembered (by the source schema's identity)."""
        shape = self._build(table)
        if len(self._shapes) >= _CACHE_LIMIT:
            self._shapes.clear()
        self._shapes[id(table)] = (table, shape)
        return shape

    def _build(self, table: TableSchema) -> TableShape:
        index = self.selection.index_for(table.db, table.name)
        if index is None:
            return TableShape(table, None, None)
        rule = self.selection.objects[index]
        origin = f"objects.{index} ({rule.match})"
        names = table.column_names
        for field_name in ("sharding_columns", "columns"):
            missing = [c for c in getattr(rule, field_name) or () if c not in names]
            if missing:  # checked at the start; a later DDL dropped or renamed it
                raise ConfigError(
                    f"{field_name} column {missing[0]!r} of {table.full_name} ({origin}) is no longer a column "
                    f"of the table (columns now: {', '.join(names)}); change the object's `{field_name}` in "
                    "the task file and run the task again")
        rf = compile_where(rule, table, origin=f"objects.{index}.where", sql_eval=self.sql_eval)
        schema = table
        if rule.sharding_columns:
            schema = dataclasses.replace(table, sharding_columns=rule.sharding_columns)
        columns = kept_columns(rule, table)
        if columns is not None:
            if columns == names:
                columns = None
            else:
                schema = project_schema(schema, columns)
        return TableShape(schema, columns, rf.matches if rf is not None else None)

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


def _is_plain(rule: ObjectConfig) -> bool:
    """True when an object changes nothing of its tables' changes."""
    return rule.where is None and rule.columns is None and not rule.sharding_columns


def _is_truncate(statement: str) -> bool:
    """True for `TRUNCATE [TABLE] t` (not `ALTER TABLE t TRUNCATE PARTITION p`), comments before it skipped."""
    return _TRUNCATE.match(statement, _LEADING_COMMENTS.match(statement).end()) is not None  # type: ignore[union-attr]  # the pattern also matches the empty string: never None

"""A task's objects resolved against the source: which tables sync, with which topic, filter, columns and key.

    task objects + exclude ─> obsync.task.selection (rules) ─> this module (tables on the source) ─> ObjectPlan each

`resolve_objects` lists the source's tables once (through a `Catalog`: the task layer never reads the source
itself; the runtime gives it `obsync.connectors.mysql.catalog.SqlCatalog`), applies the rules, reports what
it skips (views and other non-tables, with the rule that matched them) and checks each synced table's
settings against its columns (`check_table`), so a wrong column or filter stops the task before anything is
written. `plan_for` gives the
settings of one table; the dry run (`obsync objects`) prints them and the dataflow applies them
(`obsync.steps.shaping`), including to tables created after the task started.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from obsync.core.errors import ConfigError
from obsync.core.schema import TableSchema
from obsync.sql.filters import RowFilter, compile_filter
from obsync.sql.filters.terms import SqlEval
from obsync.task.config import ObjectConfig, TaskConfig
from obsync.task.naming import TopicKind, topic_kind
from obsync.task.selection import SYSTEM_SCHEMAS, Selection, is_pattern

log = logging.getLogger(__name__)

TableName = tuple[str, str]


class Catalog(Protocol):
    """What this module asks of the source (implemented by `obsync.connectors.mysql.catalog.SqlCatalog`)."""

    def tables(self, schemas: Sequence[str] | None = None) -> dict[TableName, str]:
        """Every table the user can see in `schemas` (all when None), with its type ('BASE TABLE', 'VIEW',
        ...)."""
        ...

    def table_schema(self, db: str, table: str) -> TableSchema:
        """The current definition of `db.table` (SourceError when it does not exist)."""
        ...


def list_source_tables(catalog: Catalog, schemas: Sequence[str] | None = None) -> dict[TableName, str]:
    """Every table the user can see (outside system schemas), with its type ('BASE TABLE', 'VIEW', ...)."""
    return {name: kind for name, kind in catalog.tables(schemas).items() if name[0] not in SYSTEM_SCHEMAS}


@dataclass(frozen=True)
class ObjectPlan:
    """What the task does with one table: its rule, topic, row filter, columns and key."""

    db: str
    table: str
    index: int  # the `objects:` entry whose settings apply
    rule: ObjectConfig
    topic: str
    topic_kind: TopicKind

    @property
    def name(self) -> TableName:
        return (self.db, self.table)

    @property
    def origin(self) -> str:
        return f"objects.{self.index} ({self.rule.match})"


def plan_for(task: TaskConfig, selection: Selection, db: str, table: str) -> ObjectPlan | None:
    """The plan of one table, or None when no rule selects it (or an exclude pattern removes it)."""
    i = selection.index_for(db, table)
    if i is None:
        return None
    rule = task.objects[i]
    return ObjectPlan(db, table, i, rule, task.topic_for(db, table, rule), topic_kind(task.topic, rule))


def kept_columns(rule: ObjectConfig, schema: TableSchema) -> tuple[str, ...] | None:
    """The columns sent of a table (its listed columns plus key and sharding columns, in table order), or
    None when every column is sent."""
    if rule.columns is None:
        return None
    keep = set(rule.columns) | set(schema.key_columns) | set(rule.sharding_columns)
    return tuple(c for c in schema.column_names if c in keep)


def project_schema(schema: TableSchema, columns: tuple[str, ...]) -> TableSchema:
    """The schema narrowed to `columns` (keys whose columns are all kept stay keys)."""
    keep = set(columns)
    return dataclasses.replace(
        schema, columns=tuple(c for c in schema.columns if c.name in keep),
        unique_keys=tuple(k for k in schema.unique_keys if set(k) <= keep),
    )


def compile_where(plan_or_rule: ObjectPlan | ObjectConfig, schema: TableSchema,
                  origin: str | None = None, sql_eval: SqlEval | None = None) -> RowFilter | None:
    """The object's row filter compiled for `schema` (ConfigError naming what is wrong), or None."""
    rule = plan_or_rule.rule if isinstance(plan_or_rule, ObjectPlan) else plan_or_rule
    if rule.where is None:
        return None
    label = origin or (f"objects.{plan_or_rule.index}.where" if isinstance(plan_or_rule, ObjectPlan)
                       else f"the row filter of {rule.match!r}")
    return compile_filter(rule.where, schema, origin=f"{label} ({schema.full_name})", sql_eval=sql_eval)


def check_table(plan: ObjectPlan, schema: TableSchema) -> None:
    """Every column the object names must be a column of the table, and its filter must compile."""
    names = schema.column_names
    for field_name in ("sharding_columns", "columns"):
        for c in getattr(plan.rule, field_name) or ():
            if c not in names:
                raise ConfigError(
                    f"field `objects.{plan.index}.{field_name}`: table {schema.full_name} (matched by "
                    f"{plan.rule.match!r}) has no column {c!r}; its columns: {', '.join(names)}")
    compile_where(plan, schema, origin=f"field `objects.{plan.index}.where`")


@dataclass
class Resolution:
    """The task's objects on the source now."""

    plans: dict[TableName, ObjectPlan]
    schemas: dict[TableName, TableSchema]
    skipped: list[tuple[TableName, str, int]] = field(default_factory=list)  # (table, its type, rule index)
    unmatched: list[int] = field(default_factory=list)  # rules that select no table (yet)


def resolve_objects(catalog: Catalog, task: TaskConfig, *, load_schemas: bool = True) -> Resolution:
    """Apply the task's rules to the source's tables (read from `catalog`); check names and each table's
    settings."""
    selection = task.selection()
    on_source = list_source_tables(catalog, selection.schemas())
    selected = selection.select(on_source)
    used = {s.index for s in selected}
    res = Resolution({}, {})
    for s in selected:
        kind = on_source[s.name]
        if kind != "BASE TABLE":
            res.skipped.append((s.name, kind, s.index))
            log.warning("objects.%d (%s): %s.%s is a %s, not a table; only tables sync, it is skipped",
                        s.index, task.objects[s.index].match, s.db, s.table, kind.lower())
    selection.check_names(s for s in selected if on_source[s.name] == "BASE TABLE")
    for i, obj in enumerate(task.objects):
        if i in used:
            continue
        if not is_pattern(obj.match):
            shadow = selection.excluded_by(obj.db, obj.table)
            if (obj.db, obj.table) not in on_source:
                raise ConfigError(f"field `objects.{i}`: table {obj.match} does not exist on the source "
                                  "(or the user cannot see it)")
            if shadow is not None:
                raise ConfigError(f"field `objects.{i}`: table {obj.match} is also removed by the exclude "
                                  f"pattern {shadow!r}; drop one of the two")
        res.unmatched.append(i)
    for s in selected:
        if on_source[s.name] != "BASE TABLE":
            continue
        plan = plan_for(task, selection, s.db, s.table)
        assert plan is not None
        res.plans[s.name] = plan
        if load_schemas:
            schema = catalog.table_schema(s.db, s.table)
            check_table(plan, schema)
            res.schemas[s.name] = schema
    return res

"""The `ignore` schema-change policy's pure part: a table's rows sent in the shape it had before its DDL.

A `Shape` is what messages of a table keep: its *frozen* schema, and for each frozen column the name the column
has in the table now (`names`: absent means the same name, None means the column is gone). The source's DDL
still moves obsync's own schema (rows are decoded with the real one); `follow_ddl` moves only the names, and
`projector` turns a row of the real table into a row of the frozen shape (docs/schema-changes.md):

- a column added by the DDL is left out;
- a dropped column is sent as its default (`Column.default`) or null; a dropped NOT NULL column without a
  default is the one change ignore makes to the shape: it becomes nullable (it has no value to send), and
  `follow_ddl` says so;
- a renamed column keeps its old name;
- a column whose type changed keeps its old declared type; its values are sent unchanged when they are of the
  old type's canonical kind (an INT widened to BIGINT, a longer VARCHAR: values are never cut), else converted
  (a number to its text, text to a number), and a value that does not convert stops the task
  (`ShapeConversionError`): sending a wrong value is not an option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from obsync.core.canonical_text import render_function
from obsync.core.defaults import default_value
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column, TableSchema

Row = dict[str, Any]


class ShapeConversionError(ValueError):
    """A value of a column whose type changed does not convert to the column's old type."""


@dataclass(frozen=True, slots=True)
class Shape:
    """The shape a table's messages keep, and the current name of each of its columns."""

    schema: TableSchema
    names: Mapping[str, str | None] = field(default_factory=dict)

    def current_name(self, column: str) -> str | None:
        return self.names.get(column, column)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "names": dict(self.names)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shape:
        return cls(TableSchema.from_dict(d["schema"]), dict(d.get("names") or {}))

    def renamed(self, db: str, name: str) -> Shape:
        """The same shape for the table under a new name (RENAME TABLE)."""
        return Shape(dataclasses.replace(self.schema, db=db, name=name), self.names)


def follow_ddl(shape: Shape, before: TableSchema | None, new: TableSchema,
               renames: Mapping[str, str]) -> tuple[Shape, list[str]]:
    """The shape after a DDL that turned the table `before` into `new`, renaming its columns `renames` (old ->
    new name), and what it changes for the messages, in words (one line per column)."""
    present = set(new.column_names)
    names: dict[str, str | None] = {}
    cols: list[Column] = []
    notes: list[str] = []
    for c in shape.schema.columns:
        was = shape.current_name(c.name)
        cur = renames.get(was, was) if was is not None else None
        if cur is not None and cur not in present:
            cur = None
        if cur is None and was is not None:
            if not c.nullable and c.default is None:
                c = dataclasses.replace(c, nullable=True)
                notes.append(f"column {c.name} is gone: sent as null, so it is now optional (it had no default)")
            else:
                notes.append(f"column {c.name} is gone: sent as " +
                             ("null" if c.default is None else f"its default {c.default}"))
        elif cur is not None and cur != was:
            notes.append(f"column {was} is renamed {cur}: still sent as {c.name}")
        elif cur is not None and _kind(new.column(cur)) != _kind(c):
            notes.append(f"column {c.name} changed type to {new.column(cur).column_type}: still sent as "
                         f"{c.column_type}, its values converted")
        if cur != c.name:
            names[c.name] = cur
        cols.append(c)
    had = {renames.get(n, n) for n in before.column_names} if before is not None else set()
    notes += [f"column {n} is new: left out" for n in new.column_names if n not in had]
    schema = dataclasses.replace(shape.schema, columns=tuple(cols)) if cols != list(shape.schema.columns) \
        else shape.schema
    return Shape(schema, names), notes


def projector(shape: Shape, current: TableSchema) -> Callable[[Row], Row]:
    """The function that turns a row of `current` (the real table) into a row of `shape`."""
    plan: list[tuple[str, str | None, Callable[[Any], Any] | None, Any]] = []
    have = set(current.column_names)
    for c in shape.schema.columns:
        cur = shape.current_name(c.name)
        if cur is None or cur not in have:
            plan.append((c.name, None, None, default_value(c)))
        else:
            plan.append((c.name, cur, converter(current.column(cur), c), None))

    def project(row: Row) -> Row:
        out: Row = {}
        for name, cur, conv, fill in plan:
            if cur is None:
                out[name] = fill
            else:
                v = row[cur]
                out[name] = v if conv is None or v is None else conv(v)
        return out
    return project


def _kind(c: Column) -> type:
    """The Python class of a column's canonical values (`obsync.core.schema`)."""
    t = c.data_type
    if t in INTEGER_TYPES or t in ("year", "bit"):
        return int
    if t in ("decimal", "numeric"):
        return Decimal
    if t in ("float", "double", "real", "double precision"):
        return float
    if t in BINARY_TYPES or c.is_binary:
        return bytes
    if t in TEXT_TYPES or t in ("json", "enum", "set"):
        return str
    return object  # temporal types: their values pass only between the same type


def converter(new: Column, old: Column) -> Callable[[Any], Any] | None:
    """How a value of column `new` becomes a value of `old` (the frozen column); None when it needs nothing."""
    src, dst = _kind(new), _kind(old)
    if src is dst and (src is not object or new.data_type == old.data_type):
        return None
    where = f"column {old.name} ({new.column_type} now, sent as {old.column_type})"
    if dst is str:
        render = render_function(new)
        return lambda v: v if isinstance(v, str) else render(v)
    parsers: dict[type, Callable[[Any], Any]] = {int: _to_int, Decimal: _to_decimal, float: float, bytes: _to_bytes}
    parse = parsers.get(dst)

    def convert(v: Any) -> Any:
        try:
            if parse is None or isinstance(v, (bytes, bytearray)) and dst is not bytes:
                raise ValueError(f"a {type(v).__name__} value")
            return parse(v)
        except (ValueError, TypeError, ArithmeticError, InvalidOperation) as e:
            raise ShapeConversionError(f"{where}: value {v!r} does not convert to the old type ({e})") from None
    return convert


def _to_int(v: Any) -> int:
    if isinstance(v, (int, Decimal)) and v == int(v):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        return int(v.strip())
    raise ValueError("not an integer")


def _to_decimal(v: Any) -> Decimal:
    if isinstance(v, float):
        return Decimal(repr(v))
    return Decimal(v.strip() if isinstance(v, str) else v)


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    raise ValueError("not text")

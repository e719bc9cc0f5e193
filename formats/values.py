"""Canonical column values (see `obsync.core.schema`) rendered for the OMS-style formats, planned per table.

Each value's text is `obsync.core.canonical_text` (docs/formats/README.md, "Column values"); key columns in a
JSON message key are the same text, except integers and YEAR, which are JSON numbers (`key_render_function`).
`json_key` is the JSON array of a row's message key values (`[42]`, `["a",7]`): the Kafka key of the OMS-style
formats, and the bytes the Hash rule hashes (`obsync.steps.partitioning`).

Rendering is planned once per table: `table_renderer(schema)` returns a `TableRenderer` holding one render
function per column, chosen from the column's declared type, so rendering a row does no type dispatch.
Render functions take a non-NULL value; NULL is handled by the row renderer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from obsync.core.canonical_text import Render, compiled_kind, render_function
from obsync.core.errors import SchemaMismatchError
from obsync.core.schema import INTEGER_TYPES, Column, TableSchema
from obsync.formats.base import TableCache

KeyRender = Callable[[Any], "int | str"]
KeyValues = Callable[[Mapping[str, Any]], "list[int | str | None]"]


def _json_dumps(obj: Any) -> bytes:
    """The standard library's encoding of `obj`: byte for byte what orjson writes for keys (tested)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


try:  # built by `pip install` when a C compiler is there (setup.py)
    from obsync.core._render import JsonTemplate as _JsonTemplate
    from obsync.core._render import RowRenderer as _CompiledRow
except ImportError:  # pragma: no cover - installed without a C compiler
    _CompiledRow = _JsonTemplate = None

JsonMessage = Callable[..., bytes]

_dumps: Callable[[Any], bytes] = orjson.dumps  # about twice as fast as `_json_dumps`, same bytes


def json_key(values: list[Any]) -> bytes:
    """A JSON message key: the array of key values (`[42]` written directly, as most keys are one integer)."""
    if len(values) == 1 and type(values[0]) is int:
        return b"[%d]" % values[0]
    return _dumps(values)


def key_render_function(column: Column) -> KeyRender:
    """How a key column's value appears in a JSON message key: integers as JSON numbers, others as text."""
    if column.data_type in INTEGER_TYPES or column.data_type == "year":
        return int
    return render_function(column)


# ---------------------------------------------------------------- per table


class TableRenderer:
    """Render functions of one table's columns, built once per schema (see `table_renderer`)."""

    __slots__ = ("schema", "renders", "key_columns", "_key_json", "_full_row", "message_key_values")

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self.renders: dict[str, Render] = {c.name: render_function(c) for c in schema.columns}
        self.key_columns: tuple[str, ...] = schema.key_columns
        self._key_json: tuple[tuple[str, KeyRender], ...] = tuple(
            (name, key_render_function(schema.column(name))) for name in self.key_columns
        )
        self._full_row = full_row_renderer(schema.columns, self.renders)
        # row -> the message key columns' values for a JSON key (`TableSchema.message_key_columns`: the sharding
        # columns if set, else the key columns); None when the table has no message key
        self.message_key_values: KeyValues | None = self._message_key_values()

    def render_row(self, row: Mapping[str, Any]) -> dict[str, str | None]:
        """Column -> rendered value, in the row's column order (the columns the row carries)."""
        try:
            if len(row) == len(self.renders):
                try:
                    return self._full_row(row)  # every column, straight-line code
                except KeyError:
                    pass  # same count, other columns: the general path says which
            renders = self.renders
            return {k: None if v is None else renders[k](v) for k, v in row.items()}
        except Exception as exc:  # find the column at fault; the fast paths have no per-value checks
            raise self._explain(row, exc) from exc

    def json_template(self, fragments: tuple[bytes, ...]) -> JsonMessage | None:
        """A compiled writer of one JSON message shape: `fragments` with a value's JSON between each two, byte
        for byte what orjson writes of the same document. A value is None, a str, an int of 64 bits, or a row
        of this table's columns (a dict), written as the JSON object of `render_row(row)`. It raises on anything
        else (a row of other columns, a value its column cannot render, a str orjson refuses): the caller then
        builds the document and lets orjson write it or say what is wrong. None when the compiled module was
        not built."""
        if _JsonTemplate is None or type(self._full_row) is not _CompiledRow:
            return None
        return _JsonTemplate(fragments, self._full_row)

    def key_text(self, rendered: Mapping[str, str | None], joiner: str) -> str:
        """The key columns' values joined by `joiner`, from a row already rendered by `render_row`."""
        cols = self.key_columns
        if len(cols) == 1:
            return rendered[cols[0]]  # type: ignore[return-value]  # key columns are NOT NULL
        return joiner.join(rendered[c] for c in cols)  # type: ignore[misc]  # key columns are NOT NULL

    def key_json_values(self, row: Mapping[str, Any]) -> list[int | str | None]:
        """The key columns' values for a JSON message key (`[42]`, `["a",7]`), from a canonical row."""
        return [None if (v := row[c]) is None else f(v) for c, f in self._key_json]

    def _message_key_values(self) -> KeyValues | None:
        cols = self.schema.message_key_columns
        if not cols:
            return None
        if cols == self.key_columns:
            return self.key_json_values
        renders = tuple((c, key_render_function(self.schema.column(c))) for c in cols)

        def values(row: Mapping[str, Any]) -> list[int | str | None]:
            return [None if (v := row[c]) is None else f(v) for c, f in renders]

        return values

    def _explain(self, row: Mapping[str, Any], exc: Exception) -> Exception:
        table = self.schema.full_name
        for name, value in row.items():
            if name not in self.renders:
                return SchemaMismatchError(
                    f"row of {table} has column {name!r}, which its schema does not know; "
                    f"known: {', '.join(self.renders)}"
                )
            if value is None:
                continue
            try:
                self.renders[name](value)
            except Exception as e:  # noqa: BLE001 - whatever the renderer raised is the failure being explained
                col = self.schema.column(name)
                return SchemaMismatchError(
                    f"column {table}.{name} ({col.column_type}) cannot be rendered from a "
                    f"{type(value).__name__} value {value!r:.80}: {e}"
                )
        return exc


def full_row_renderer(columns: tuple[Column, ...], renders: dict[str, Render],
                      compiled: bool = True) -> Callable[[Mapping[str, Any]], dict]:
    """A function rendering a row that has every column, in the columns' order: the compiled one
    (`obsync/core/_render.c`) when it was built and `compiled`, else generated Python code. Both raise KeyError
    for a missing column and whatever a render function raises."""
    if compiled and _CompiledRow is not None:
        kinds = [compiled_kind(renders[c.name]) for c in columns]
        return _CompiledRow(tuple(c.name for c in columns), tuple(k for k, _ in kinds), tuple(p for _, p in kinds),
                            tuple(renders[c.name] for c in columns))
    return _compile_full_row(columns, renders)


def _compile_full_row(columns: tuple[Column, ...], renders: dict[str, Render]) -> Callable[[Mapping[str, Any]], dict]:
    """A function rendering a row that has every column: no loop, no per-value lookups (about twice as fast
    as the general comprehension for a 10-column row). Column names only appear as dict keys via repr()."""
    env: dict[str, Any] = {}
    lines = ["def render(row):"]
    items = []
    for i, c in enumerate(columns):
        fn = renders[c.name]
        env[f"r{i}"] = fn
        lines.append(f"    v{i} = row[{c.name!r}]")
        items.append(f"{c.name!r}: None if v{i} is None else r{i}(v{i})")
    lines.append("    return {" + ", ".join(items) + "}")
    exec("\n".join(lines), env)  # the names in it are repr()-quoted literals
    return env["render"]


# schema -> its `TableRenderer`, cached by identity and, for equal copies, by value (the bound method, called for
# every change, saves a call)
table_renderer: Callable[[TableSchema], TableRenderer] = TableCache(TableRenderer).get

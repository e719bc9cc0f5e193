"""Table definitions and what statements do to them: `create_table_def` and `apply_alter` (pure functions).

A `TableDef` is a table's `TableSchema` plus what the schema does not carry: its key names and its default
character set. Its keys are derived as `catalog.load_table_schema` derives them from the server (the primary
key; unique keys whose columns are all NOT NULL), column names match without regard to case as in MySQL,
and a statement that does not fit the table (a column that is not there) raises `DdlSyntaxError`: the
tracked definition can no longer be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from obsync.core.schema import Column, TableSchema
from obsync.sql.ddl.columns import TEXT_TO_BLOB
from obsync.sql.ddl.lexer import DdlSyntaxError, TableName
from obsync.sql.ddl.literals import with_default
from obsync.sql.ddl.statements import AlterTable, ColumnDef, CreateTable, IndexDef

__all__ = ["TableDef", "apply_alter", "build_schema", "create_table_def"]


@dataclass(frozen=True, slots=True)
class TableDef:
    """A tracked table: its schema plus what the schema does not carry (key names, default charset)."""

    schema: TableSchema
    keys: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (index name, "primary"|"unique", columns)
    charset: str | None = None  # the table's default character set

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "keys": [[n, k, list(c)] for n, k, c in self.keys],
                "charset": self.charset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableDef:
        return cls(TableSchema.from_dict(d["schema"]), tuple((n, k, tuple(c)) for n, k, c in d.get("keys", ())),
                   d.get("charset"))

    def renamed(self, name: TableName) -> TableDef:
        return replace(self, schema=build_schema(name, self.schema.columns, self.keys, self.charset,
                                                 self.schema.comment))


def build_schema(name: TableName, columns: Iterable[Column], keys: Iterable[tuple[str, str, tuple[str, ...]]],
                 charset: str | None = None, comment: str | None = None) -> TableSchema:
    """A TableSchema with keys derived like `catalog.load_table_schema` does (`charset`: the table's default
    character set; `comment`: its COMMENT)."""
    columns = tuple(columns)
    nullable = {c.name for c in columns if c.nullable}
    pk: tuple[str, ...] = ()
    uks = []
    for _name, kind, cols in sorted(keys, key=lambda k: (k[1] != "primary", k[0])):
        if kind == "primary":
            pk = cols
        elif cols and not (set(cols) & nullable):
            uks.append(cols)
    return TableSchema(db=name[0], name=name[1], columns=columns, primary_key=pk, unique_keys=tuple(uks),
                       default_charset=charset, comment=comment)


class _Cols:
    """Case-insensitive column lookup over a mutable list (MySQL column names ignore case)."""

    def __init__(self, cols: Iterable[Column]) -> None:
        self.cols = list(cols)

    def index(self, name: str) -> int:
        low = name.lower()
        for i, c in enumerate(self.cols):
            if c.name.lower() == low:
                return i
        raise DdlSyntaxError(f"no column {name}")

    def has(self, name: str) -> bool:
        return any(c.name.lower() == name.lower() for c in self.cols)

    def insert(self, col: Column, pos: Any) -> None:
        if pos == "FIRST":
            self.cols.insert(0, col)
        elif pos is None:
            self.cols.append(col)
        else:
            self.cols.insert(self.index(pos[1]) + 1, col)


def _auto_index_name(col: str, taken: set[str]) -> str:
    if col.lower() not in {t.lower() for t in taken}:
        return col
    n = 2
    while f"{col}_{n}".lower() in {t.lower() for t in taken}:
        n += 1
    return f"{col}_{n}"


def _add_key(keys: list[tuple[str, str, tuple[str, ...]]], idx: IndexDef, cols: _Cols) -> None:
    if idx.kind not in ("primary", "unique"):
        return
    names = tuple(cols.cols[cols.index(c)].name for c in idx.columns) if idx.columns else ()
    if idx.kind == "primary":
        keys[:] = [k for k in keys if k[1] != "primary"]
        keys.append(("PRIMARY", "primary", names))
        for c in names:  # primary key columns are NOT NULL
            i = cols.index(c)
            cols.cols[i] = replace(cols.cols[i], nullable=False)
        return
    name = idx.name or _auto_index_name(names[0] if names else "key", {k[0] for k in keys})
    if names:
        keys.append((name, "unique", names))


def create_table_def(st: CreateTable, default_charset: str | None) -> TableDef:
    """The table a CREATE TABLE (with a column list) defines."""
    charset = st.charset or default_charset
    cols = _Cols(d.to_column(charset) for d in st.columns)
    keys: list[tuple[str, str, tuple[str, ...]]] = []
    for d in st.columns:
        if d.primary:
            _add_key(keys, IndexDef("PRIMARY", "primary", (d.name,)), cols)
    for idx in st.indexes:
        _add_key(keys, idx, cols)
    for d in st.columns:
        if d.unique and not d.primary:
            _add_key(keys, IndexDef(None, "unique", (d.name,)), cols)
    return TableDef(build_schema(st.table, cols.cols, keys, charset, st.comment), tuple(keys), charset)


def apply_alter(tdef: TableDef, st: AlterTable) -> TableDef:
    """The table after an ALTER TABLE. Raises DdlSyntaxError when the statement does not fit the table
    (a column that is not there), which means the tracked definition cannot be trusted."""
    cols = _Cols(tdef.schema.columns)
    keys = list(tdef.keys)
    charset = tdef.charset
    comment = tdef.schema.comment
    name: TableName = (tdef.schema.db, tdef.schema.name)
    for action in st.actions:
        kind = action[0]
        if kind == "add_column":
            d: ColumnDef = action[1]
            if cols.has(d.name):
                raise DdlSyntaxError(f"column {d.name} already exists")
            cols.insert(d.to_column(charset), action[2])
            if d.primary:
                _add_key(keys, IndexDef("PRIMARY", "primary", (d.name,)), cols)
            elif d.unique:
                _add_key(keys, IndexDef(None, "unique", (d.name,)), cols)
        elif kind == "drop_column":
            i = cols.index(action[1])
            gone = cols.cols.pop(i).name
            keys = [(n, k, tuple(c for c in cs if c != gone)) for n, k, cs in keys]
            keys = [k for k in keys if k[2]]
        elif kind == "modify_column":
            old, d, pos = action[1], action[2], action[3]
            i = cols.index(old)
            old_name = cols.cols.pop(i).name
            new = d.to_column(charset)
            if pos is None:
                cols.cols.insert(i, new)
            else:
                cols.insert(new, pos)
            if new.name != old_name:
                keys = [(n, k, tuple(new.name if c == old_name else c for c in cs)) for n, k, cs in keys]
            if d.primary:
                _add_key(keys, IndexDef("PRIMARY", "primary", (new.name,)), cols)
            elif d.unique:
                _add_key(keys, IndexDef(None, "unique", (new.name,)), cols)
            if any(new.name in cs for n, k, cs in keys if k == "primary") and new.nullable:
                cols.cols[cols.index(new.name)] = replace(new, nullable=False)
        elif kind == "rename_column":
            i = cols.index(action[1])
            old_name = cols.cols[i].name
            cols.cols[i] = replace(cols.cols[i], name=action[2])
            keys = [(n, k, tuple(action[2] if c == old_name else c for c in cs)) for n, k, cs in keys]
        elif kind == "set_default":
            i = cols.index(action[1])
            cols.cols[i] = with_default(cols.cols[i], action[2])
        elif kind == "add_index":
            _add_key(keys, action[1], cols)
        elif kind == "drop_index":
            keys = [k for k in keys if k[0].lower() != action[1].lower()]
        elif kind == "drop_primary":
            keys = [k for k in keys if k[1] != "primary"]
        elif kind == "rename_index":
            keys = [(action[2] if n.lower() == action[1].lower() else n, k, cs) for n, k, cs in keys]
        elif kind == "rename_table":
            name = action[1]
        elif kind == "default_charset":
            charset = action[1]
        elif kind == "table_comment":
            comment = action[1]
        elif kind == "convert_charset":
            charset = action[1]
            cols.cols = [_convert(c, charset) for c in cols.cols]
        else:
            raise DdlSyntaxError(f"unknown action {kind}")
    return TableDef(build_schema(name, cols.cols, keys, charset, comment), tuple(keys), charset)


def _convert(c: Column, charset: str) -> Column:
    """CONVERT TO CHARACTER SET: text columns take the new set (binary ones keep theirs)."""
    if c.charset is None or c.charset == "binary":
        return c
    if charset == "binary" and c.data_type in TEXT_TO_BLOB:
        dtype = TEXT_TO_BLOB[c.data_type]
        blob = replace(c, data_type=dtype, column_type=c.column_type.replace(c.data_type, dtype, 1),
                       charset="binary", default=None)
        return with_default(blob, None if c.default is None else ("str", c.default))
    return replace(c, charset=charset)

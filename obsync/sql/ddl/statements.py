"""What a DDL statement says, as frozen values (the grammar's syntax tree).

One class per statement that changes what a table's rows look like (`CreateTable`, `AlterTable`, `DropTables`,
`RenameTables`, `TruncateTable`, `CreateIndex`, `DropIndex`, `DropDatabase`, `DatabaseChanged`), and
`Unparsed` for DDL the grammar could not read with certainty, naming the tables to re-read from the source.
`Statement` is their union. A column is a `ColumnDef` as written; `ColumnDef.to_column` resolves it against
the table's default character set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obsync.core.defaults import Literal
from obsync.core.schema import Column
from obsync.sql.ddl.lexer import TableName
from obsync.sql.ddl.literals import with_default

__all__ = ["AlterAction", "AlterTable", "ColumnDef", "CreateIndex", "CreateTable", "DatabaseChanged", "DropDatabase",
           "DropIndex", "DropTables", "IndexDef", "RenameTables", "Statement", "TruncateTable", "Unparsed",
           "statement_tables"]


@dataclass(frozen=True, slots=True)
class ColumnDef:
    """A column as written in DDL; its character set may still be the table's default."""

    name: str
    data_type: str
    column_type: str
    unsigned: bool = False
    length: int | None = None  # CHAR/BINARY length, DECIMAL precision
    scale: int | None = None
    fsp: int = 0
    values: tuple[str, ...] = ()
    charset: str | None = None  # explicit CHARACTER SET (or implied by COLLATE / NATIONAL / binary types)
    nullable: bool = True
    generated: str | None = None
    primary: bool = False
    collation: str | None = None  # explicit COLLATE (else the tracker fills it in, see SchemaTracker)
    unique: bool = False
    is_char: bool = False  # takes the table's default character set when none is given
    default: Literal | None = None  # the DEFAULT literal (None: none, NULL or an expression)
    auto_increment: bool = False
    comment: str | None = None

    def to_column(self, default_charset: str | None) -> Column:
        charset = self.charset
        if self.is_char and charset is None:
            charset = default_charset
        precision: int | None
        if self.data_type == "decimal":
            precision = self.length
        else:
            precision = _char_max_length(self.data_type, self.length, self.values)
        col = Column(
            name=self.name, data_type=self.data_type, column_type=self.column_type,
            nullable=self.nullable and not self.primary, unsigned=self.unsigned, charset=charset,
            precision=precision, scale=self.scale if self.data_type == "decimal" else None,
            fsp=self.fsp if self.data_type in ("time", "datetime", "timestamp") else 0,
            values=self.values, generated=self.generated, auto_increment=self.auto_increment,
            comment=self.comment,
            collation=self.collation.lower() if self.collation and charset not in (None, "binary") else None,
        )
        return with_default(col, self.default)


_LOB_LENGTHS = {"tinytext": 255, "tinyblob": 255, "text": 65535, "blob": 65535,
                "mediumtext": 16777215, "mediumblob": 16777215}


def _char_max_length(data_type: str, length: int | None, values: tuple[str, ...]) -> int | None:
    """information_schema.COLUMNS.CHARACTER_MAXIMUM_LENGTH, as `catalog` stores it."""
    if data_type in ("char", "varchar", "binary", "varbinary"):
        return length
    if data_type in _LOB_LENGTHS:
        return _LOB_LENGTHS[data_type]
    if data_type == "enum":
        return max((len(v) for v in values), default=0)
    if data_type == "set":
        return sum(len(v) for v in values) + max(len(values) - 1, 0)
    return None


@dataclass(frozen=True, slots=True)
class IndexDef:
    name: str | None  # None: the server names it after its first column
    kind: str  # "primary", "unique" or "index"
    columns: tuple[str, ...]  # empty when a key part is an expression (not usable as a row key)


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: TableName
    columns: tuple[ColumnDef, ...] = ()
    indexes: tuple[IndexDef, ...] = ()
    charset: str | None = None
    like: TableName | None = None
    if_not_exists: bool = False
    comment: str | None = None  # the table option COMMENT


AlterAction = tuple[Any, ...]
"""One clause of an ALTER TABLE: its kind first, then that kind's values (the list is in
`obsync.sql.ddl.alter_table`), e.g. `("add_column", ColumnDef, position)`, `("drop_column", name)`."""


@dataclass(frozen=True, slots=True)
class AlterTable:
    table: TableName
    actions: tuple[AlterAction, ...]

    @property
    def new_name(self) -> TableName | None:
        for a in self.actions:
            if a[0] == "rename_table":
                return a[1]
        return None


@dataclass(frozen=True, slots=True)
class DropTables:
    tables: tuple[TableName, ...]


@dataclass(frozen=True, slots=True)
class RenameTables:
    pairs: tuple[tuple[TableName, TableName], ...]


@dataclass(frozen=True, slots=True)
class TruncateTable:
    table: TableName


@dataclass(frozen=True, slots=True)
class CreateIndex:
    table: TableName
    index: IndexDef


@dataclass(frozen=True, slots=True)
class DropIndex:
    table: TableName
    name: str


@dataclass(frozen=True, slots=True)
class DropDatabase:
    db: str


@dataclass(frozen=True, slots=True)
class DatabaseChanged:
    """CREATE / ALTER DATABASE: its default character set may have changed."""

    db: str


@dataclass(frozen=True, slots=True)
class Unparsed:
    """DDL on `tables` that could not be read: re-read those tables from the source."""

    tables: tuple[TableName, ...]
    reason: str


Statement = (CreateTable | AlterTable | DropTables | RenameTables | TruncateTable | CreateIndex | DropIndex
             | DropDatabase | DatabaseChanged | Unparsed)


def statement_tables(st: Statement) -> tuple[TableName, ...]:
    """The (db, table) pairs a statement names, in order, without duplicates."""
    names: list[TableName] = []
    if isinstance(st, CreateTable):
        names = [st.table] + ([st.like] if st.like else [])
    elif isinstance(st, AlterTable):
        names = [st.table] + ([st.new_name] if st.new_name else [])
    elif isinstance(st, (DropTables, Unparsed)):
        names = list(st.tables)
    elif isinstance(st, RenameTables):
        names = [n for pair in st.pairs for n in pair]
    elif isinstance(st, (TruncateTable, CreateIndex, DropIndex)):
        names = [st.table]
    return tuple(dict.fromkeys(names))

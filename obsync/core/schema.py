"""What obsync knows about a table: its columns, their declared types and its keys.

Values of a column are carried as *canonical* Python values, the same whether the row came from a
snapshot SELECT or from the binlog (see `obsync.connectors.mysql.values`):

| column types                                | canonical value                             |
|---------------------------------------------|---------------------------------------------|
| TINYINT..BIGINT (signed/unsigned), YEAR     | int                                         |
| BIT                                         | int                                         |
| DECIMAL                                     | decimal.Decimal                             |
| FLOAT                                       | float, rounded to float32                   |
| DOUBLE                                      | float                                       |
| CHAR, VARCHAR, TEXT kinds                   | str                                         |
| BINARY, VARBINARY, BLOB kinds               | bytes                                       |
| DATE / DATETIME                             | datetime.date / naive datetime.datetime;    |
|                                             | str for zero dates ("0000-00-00")           |
| TIME                                        | datetime.timedelta                          |
| TIMESTAMP                                   | aware datetime.datetime in UTC              |
| JSON                                        | str: parsed and re-dumped as MySQL prints it |
|                                             | (json.dumps defaults, key order kept)        |
| ENUM                                        | str (the member)                            |
| SET                                         | str, members joined by "," in declared order|
| NULL                                        | None                                        |
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
TEMPORAL_TYPES = frozenset({"date", "time", "datetime", "timestamp", "year"})

_ENUM_VALUES = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True, slots=True)
class Column:
    """One column as declared in the source."""

    name: str
    data_type: str  # lower-case base type: "int", "varchar", "decimal", "timestamp", ...
    column_type: str  # the full declaration: "int(10) unsigned", "decimal(12,2)", "enum('a','b')"
    nullable: bool = True
    unsigned: bool = False
    charset: str | None = None  # None for non-character types; "binary" for binary strings
    precision: int | None = None  # DECIMAL precision, or length for CHAR kinds
    scale: int | None = None  # DECIMAL scale
    fsp: int = 0  # fractional seconds digits of TIME/DATETIME/TIMESTAMP
    values: tuple[str, ...] = ()  # ENUM / SET members in declared order
    generated: str | None = None  # "VIRTUAL" or "STORED" for generated columns
    collation: str | None = None  # text/ENUM/SET columns: "utf8mb4_general_ci", ...; None when not known
    # the column's literal DEFAULT as canonical text (see `obsync.core.defaults`): the canonical value printed as
    # the Default format prints it ("1.50" in DECIMAL(10,2), "it's", "2020-01-02"); None for no default,
    # DEFAULT NULL and expressions (CURRENT_TIMESTAMP, functions, `(expr)`)
    default: str | None = None
    auto_increment: bool = False  # AUTO_INCREMENT (SERIAL included)
    comment: str | None = None  # the column's COMMENT; None when it has none (or an empty one)

    @property
    def is_binary(self) -> bool:
        """True for columns holding bytes rather than text."""
        return self.data_type in BINARY_TYPES or (
            self.data_type in TEXT_TYPES and self.charset == "binary"
        )

    @property
    def bit_width(self) -> int:
        """A BIT column's width in bits: the n of its declaration `bit(n)` (a bare `bit` is BIT(1)). Read from
        `column_type`, which the catalog and the DDL reader always fill (`precision` is not a BIT's width)."""
        ct = self.column_type
        if "(" in ct:
            return int(ct[ct.index("(") + 1 : ct.index(")")])
        return 1

    @staticmethod
    def parse_members(column_type: str) -> tuple[str, ...]:
        """ENUM/SET members from a declaration such as `enum('a','it''s')`."""
        inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
        return tuple(m.replace("''", "'") for m in _ENUM_VALUES.findall(inner))


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table's columns in ordinal order and its keys."""

    db: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()  # unique keys whose columns are all NOT NULL
    sharding_columns: tuple[str, ...] = ()  # set by the task (per object); empty means "the key columns"
    default_charset: str | None = None  # the table's default character set (None when not known)
    comment: str | None = None  # the table's COMMENT; None when it has none (or an empty one)
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # a dict of its own: `dataclasses.replace` passes the original's, which must not take the new columns
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def full_name(self) -> str:
        return f"{self.db}.{self.name}"

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns that identify a row: the primary key, else the first non-null unique key."""
        if self.primary_key:
            return self.primary_key
        return self.unique_keys[0] if self.unique_keys else ()

    @property
    def message_key_columns(self) -> tuple[str, ...]:
        """Columns of the Kafka message key and of the Hash rule: the sharding columns if the task sets
        them, else `key_columns` (empty: no key, null message keys)."""
        return self.sharding_columns or self.key_columns

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"table {self.full_name} has no column {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "name": self.name,
            "columns": [asdict(c) for c in self.columns],
            "primary_key": list(self.primary_key),
            "unique_keys": [list(k) for k in self.unique_keys],
            "sharding_columns": list(self.sharding_columns),
            "default_charset": self.default_charset,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableSchema:
        cols = tuple(Column(**{**c, "values": tuple(c.get("values", ()))}) for c in d["columns"])
        return cls(
            db=d["db"],
            name=d["name"],
            columns=cols,
            primary_key=tuple(d.get("primary_key", ())),
            unique_keys=tuple(tuple(k) for k in d.get("unique_keys", ())),
            sharding_columns=tuple(d.get("sharding_columns", ())),
            default_charset=d.get("default_charset"),
            comment=d.get("comment"),
        )

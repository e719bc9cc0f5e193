"""Key ranges in SQL: comparing and ordering rows by a (possibly composite) key.

Two orders exist for a key column:

- *native*: the column itself, compared under its own collation. The index is in this order, so ranges and
  ORDER BY use it. Chunk boundaries are always in native order.
- *binary*: for character columns, `CAST(col AS BINARY)` (after `CONVERT(col USING utf8mb4)` for columns not
  stored in UTF-8): the UTF-8 bytes, whose order is Python's order of the decoded `str`. The Kafka sink
  compares snapshot positions (key tuples) in Python, so rows inside a chunk must come in Python's order;
  a case- or accent-insensitive collation, and even `utf8mb4_bin` (PAD SPACE: `'a\\x01' < 'a'`), does not
  give it. Checked on MariaDB 10.11 and seekdb 1.4.

Integer, DECIMAL, FLOAT/DOUBLE, BIT, YEAR, temporal and binary columns are in Python's order natively.
ENUM and SET (ordered by member index, compared as text) and other types are not supported as snapshot keys;
such tables are read like tables without a key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from obsync.connectors.mysql.connection import quote_ident
from obsync.connectors.mysql.values import select_list, time_text
from obsync.core.positions import SnapshotPosition, position_from_json
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column

KeyOrder = Literal["native", "binary"]

_NATIVE_TYPES = INTEGER_TYPES | BINARY_TYPES | frozenset(
    {"decimal", "float", "double", "bit", "year", "date", "datetime", "timestamp", "time"})
_UTF8_CHARSETS = frozenset({"utf8mb4", "utf8", "utf8mb3", "ascii"})


def key_order(column: Column) -> KeyOrder | None:
    """How rows are ordered by `column` inside a chunk; None when the column cannot be a snapshot key."""
    if column.data_type in _NATIVE_TYPES or column.is_binary:
        return "native"
    if column.data_type in TEXT_TYPES:
        return "binary"
    return None


def ident(name: str) -> str:
    """A quoted identifier for SQL run with pymysql parameters (`%` doubled; every query here passes a
    parameter list, possibly empty, so pymysql always formats)."""
    return quote_ident(name).replace("%", "%%")


def order_expression(column: Column, order: KeyOrder) -> str:
    q = ident(column.name)
    if order == "native":
        return q
    if (column.charset or "utf8mb4") in _UTF8_CHARSETS:
        return f"CAST({q} AS BINARY)"
    return f"CAST(CONVERT({q} USING utf8mb4) AS BINARY)"


def param(value: Any, order: KeyOrder) -> Any:
    """A canonical key value as a query parameter compared against `order_expression`."""
    if order == "binary" and isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dt.timedelta):
        return time_text(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # pymysql would write the wall time and drop the zone; the session is in UTC.
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


@dataclass(frozen=True, slots=True)
class KeySql:
    """SQL fragments for one key, in one order (native or the chunk's read order)."""

    exprs: tuple[str, ...]
    orders: tuple[KeyOrder, ...]

    @classmethod
    def of(cls, columns: Sequence[Column], orders: Sequence[KeyOrder]) -> KeySql:
        return cls(tuple(order_expression(c, o) for c, o in zip(columns, orders, strict=False)), tuple(orders))

    @property
    def order_by(self) -> str:
        return ", ".join(self.exprs)

    def compare(self, op: Literal[">", "<="], key: Sequence[Any]) -> tuple[str, list[Any]]:
        """`(key columns) op key` as an expansion the range optimizer understands (no row constructors):
        `a > x` or, for composite keys, `a >= x AND (a > x OR (a = x AND b > y))`; `<=` likewise."""
        strict = "<" if op == "<=" else ">"
        wide = op if op == "<=" else ">="
        ps = [param(v, o) for v, o in zip(key, self.orders, strict=False)]
        e = self.exprs
        n = len(e)
        if n == 1:
            return f"{e[0]} {op} %s", [ps[0]]
        terms: list[str] = []
        params: list[Any] = []
        for i in range(n):
            last = i == n - 1
            parts = [f"{e[j]} = %s" for j in range(i)]
            parts.append(f"{e[i]} {op if last else strict} %s")
            terms.append("(" + " AND ".join(parts) + ")")
            params.extend(ps[: i + 1])
        return f"{e[0]} {wide} %s AND ({' OR '.join(terms)})", [ps[0], *params]


def encode_key(key: Sequence[Any]) -> list[Any]:
    """A key tuple as JSON (types kept, as in positions)."""
    return SnapshotPosition("", tuple(key)).to_json()[2]


def decode_key(data: list[Any]) -> tuple[Any, ...]:
    return position_from_json(["snap", "", data]).key  # type: ignore[union-attr]  # a "snap" position is a SnapshotPosition


def table_sql(db: str, name: str, scn: int | None) -> str:
    """`db`.`t`, read at `scn` on OceanBase (a literal: the syntax takes no subquery nor parameter)."""
    ref = f"{ident(db)}.{ident(name)}"
    return ref if scn is None else f"{ref} AS OF SNAPSHOT {int(scn)}"


def select_sql(columns: Sequence[Column]) -> str:
    """The SELECT list of `columns` (see `obsync.connectors.mysql.values.select_list`)."""
    return select_list(columns, ident)

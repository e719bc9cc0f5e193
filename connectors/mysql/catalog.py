"""Reading table definitions from information_schema into `TableSchema`s, and the tables there are.

`SqlCatalog` is the catalog over one open session that `obsync.task.objects` resolves a task's objects with.

Column defaults (`Column.default`, see `obsync.core.defaults`) come from COLUMNS.COLUMN_DEFAULT, which the servers
write differently: MariaDB (10.2.7 and later) as SQL (`'it''s'`, `1.50`, `b'101'`, `NULL`, `current_timestamp()`,
`(1 + 1)`), read with the DDL grammar's literal reader; MySQL 8 and OceanBase as the bare value (`it's`, NULL as
SQL NULL), MySQL marking expression defaults with DEFAULT_GENERATED in EXTRA, both writing CURRENT_TIMESTAMP
for temporal columns that default to the current time, and `b'101'` for BIT defaults. OceanBase writes other
expression defaults bare too (`(1 + 1)`): they are not read as values where they do not convert (numbers,
dates), but a text column's expression default cannot be told from a string literal.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import pymysql

from obsync.core.defaults import Literal, default_text
from obsync.core.errors import SourceError
from obsync.core.schema import TEMPORAL_TYPES, Column, TableSchema
from obsync.sql.ddl import charset_of_collation, literal_of

_COLUMNS_SQL = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME,
       NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, EXTRA, COLLATION_NAME,
       COLUMN_DEFAULT, COLUMN_COMMENT
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

_KEYS_SQL = """
SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX
"""


_TABLE_SQL = ("SELECT TABLE_COLLATION, TABLE_COMMENT FROM information_schema.TABLES "
              "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s")
_TABLES_SQL = "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES"


def _text(v: object) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


_NOW = re.compile(r"^\s*(current_timestamp|now|localtime|localtimestamp)\b", re.I)


def _catalog_literal(raw: object, data_type: str, extra: str, sql_text: bool) -> Literal | None:
    """The literal of a COLUMN_DEFAULT value (None: no default, NULL or an expression). `sql_text`: the server
    writes it as SQL (MariaDB)."""
    if raw is None:
        return None
    text = _text(raw)
    if data_type in TEMPORAL_TYPES and _NOW.match(text):
        return ("now", None)  # the current time (Debezium gives a NOT NULL TIMESTAMP the epoch for it)
    if "DEFAULT_GENERATED" in extra:
        return None
    if sql_text or (data_type == "bit" and text[:2].lower() == "b'"):
        return literal_of(text)  # the DDL grammar's literal reader
    return ("str", text)


def column_from_row(row: tuple, sql_defaults: bool = False) -> Column:
    """A `Column` from one information_schema.COLUMNS row (in `_COLUMNS_SQL` order). `sql_defaults`: the
    server writes COLUMN_DEFAULT as SQL (MariaDB, see the module's doc)."""
    name, data_type, column_type, nullable, charset, num_prec, num_scale, dt_prec, char_len, extra = row[:10]
    collation = row[10] if len(row) > 10 else None
    raw_default = row[11] if len(row) > 11 else None
    comment = _text(row[12]) if len(row) > 12 and row[12] else None
    data_type = _text(data_type).lower()
    column_type = _text(column_type)
    if data_type in ("enum", "set"):  # members keep their case ('Y' is not 'y'); the rest is lower-case
        head, paren, rest = column_type.partition("(")
        tail = rest[rest.rfind(")") + 1:] if ")" in rest else ""
        column_type = head.lower() + paren + rest[:len(rest) - len(tail)] + tail.lower()
    else:
        column_type = column_type.lower()
    extra = _text(extra or "").upper()
    generated = None
    if "VIRTUAL GENERATED" in extra:
        generated = "VIRTUAL"
    elif "STORED GENERATED" in extra or "PERSISTENT GENERATED" in extra:
        generated = "STORED"
    if data_type in ("enum", "set"):
        values = Column.parse_members(column_type)
    else:
        values = ()
    if data_type == "decimal":
        precision, scale = (int(num_prec) if num_prec is not None else None), (
            int(num_scale) if num_scale is not None else None)
    else:
        precision = int(char_len) if char_len is not None and char_len < 2**31 else None
        scale = None
    cs = _text(charset).lower() if charset else None
    if data_type in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"):
        cs = "binary"
    col = Column(
        name=_text(name),
        data_type=data_type,
        column_type=column_type,
        nullable=_text(nullable).upper() == "YES",
        unsigned="unsigned" in column_type,
        charset=cs,
        precision=precision,
        scale=scale,
        fsp=int(dt_prec) if dt_prec is not None and data_type in ("time", "datetime", "timestamp") else 0,
        values=values,
        generated=generated,
        collation=_text(collation).lower() if collation else None,
        auto_increment="AUTO_INCREMENT" in extra,
        comment=comment,
    )
    if generated:
        return col
    text = default_text(col, _catalog_literal(raw_default, data_type, extra, sql_defaults))
    return col if text is None else dataclasses.replace(col, default=text)


def load_table_schema(conn: pymysql.Connection, db: str, table: str) -> TableSchema:
    """The current definition of `db.table`; raises SourceError if it does not exist."""
    with conn.cursor() as cur:
        cur.execute(_COLUMNS_SQL, (db, table))
        rows = cur.fetchall()
        if not rows:
            raise SourceError(f"table {db}.{table} does not exist on the source (or the user cannot see it)")
        sql_defaults = "mariadb" in (conn.get_server_info() or "").lower()
        columns = tuple(column_from_row(r, sql_defaults) for r in rows)
        cur.execute(_KEYS_SQL, (db, table))
        index_rows = cur.fetchall()
        cur.execute(_TABLE_SQL, (db, table))
        table_row = cur.fetchone()
    by_index: dict[str, list[str]] = {}
    unique: dict[str, bool] = {}
    for index_name, col, non_unique in index_rows:
        index_name = _text(index_name)
        by_index.setdefault(index_name, []).append(_text(col))
        unique[index_name] = int(non_unique) == 0
    nullable = {c.name for c in columns if c.nullable}
    pk = tuple(by_index.get("PRIMARY", ()))
    uks = tuple(
        tuple(cols) for name, cols in by_index.items()
        if name != "PRIMARY" and unique[name] and not (set(cols) & nullable)
    )
    collation, comment = table_row if table_row else (None, None)
    return TableSchema(db=db, name=table, columns=columns, primary_key=pk, unique_keys=uks,
                       default_charset=charset_of_collation(_text(collation)) if collation else None,
                       comment=_text(comment) if comment else None)


def table_kind(conn: pymysql.Connection, db: str, table: str) -> str | None:
    """'BASE TABLE', 'VIEW', ... or None when the table does not exist."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
            (db, table),
        )
        row = cur.fetchone()
    return _text(row[0]) if row else None


def list_tables(conn: pymysql.Connection, schemas: Sequence[str] | None = None) -> dict[tuple[str, str], str]:
    """Every table the user can see in `schemas` (all when None), with its type ('BASE TABLE', 'VIEW', ...)."""
    sql = _TABLES_SQL
    args: tuple[str, ...] = ()
    if schemas is not None:
        if not schemas:
            return {}
        sql += " WHERE TABLE_SCHEMA IN (" + ", ".join(["%s"] * len(schemas)) + ")"
        args = tuple(schemas)
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    return {(_text(db), _text(table)): _text(kind) for db, table, kind in rows}


class SqlCatalog:
    """The source's catalog read over an open session (`obsync.task.objects.Catalog`); the caller owns `conn`."""

    def __init__(self, conn: pymysql.Connection) -> None:
        self.conn = conn

    def tables(self, schemas: Sequence[str] | None = None) -> dict[tuple[str, str], str]:
        return list_tables(self.conn, schemas)

    def table_schema(self, db: str, table: str) -> TableSchema:
        return load_table_schema(self.conn, db, table)

"""Canonical values (see `obsync.core.schema`) from what a SQL read returns, and helpers the binlog side shares.

Reading rows with SQL
---------------------
A snapshot read goes through three pieces that belong together:

- `select_list(columns)`: the SELECT list. Columns are named one by one (never `*`), and FLOAT columns are read
  as `col + 0e0`: MySQL and MariaDB print a FLOAT with 6 significant digits (`1.2345678` comes back as
  `1.23457`), which loses bits; as a DOUBLE expression the stored float32 comes back exactly.
- `use_sql_decoders(conn)`: pymysql hands DATE, DATETIME, TIMESTAMP and TIME over as the server's text
  (pymysql's own parsers are regex based, about 20x slower than `datetime.fromisoformat`, and return
  TIMESTAMPs naive). Integers, DECIMAL, FLOAT/DOUBLE and YEAR keep pymysql's `int`/`Decimal`/`float`.
  `mysqldb_conversions()` is the same for mysqlclient (MySQLdb), whose rows then hold the same values
  (`obsync.connectors.mysql.fastsql`).
- `row_converter(columns)`: one function per table that turns a result tuple into a list of canonical values,
  built from a precomputed list of per-column converters (no per-value type dispatch; columns whose pymysql
  value is already canonical are not touched).

Binary columns: pymysql (and mysqlclient with `mysqldb_conversions`) returns `bytes` for every column whose
result charset is `binary` (charset number 63):
BINARY, VARBINARY, the BLOB kinds, BIT, and `CHAR/VARCHAR ... CHARACTER SET binary`, which the server turns
into BINARY/VARBINARY anyway (checked on MariaDB 10.11 and seekdb 1.4). Text columns come back as `str`
decoded from the connection's utf8mb4, whatever the column's own charset. So binary columns need no converter.

The session must be in UTC (`obsync.connectors.mysql.connection.connect` sets `time_zone = '+00:00'`): TIMESTAMP
text is read as UTC wall time.

Values that are not dates: MySQL stores zero dates (`0000-00-00`), dates with zero parts (`2024-00-10`) and,
with ALLOW_INVALID_DATES, impossible dates (`2024-02-30`). They stay the server's text, e.g.
`"0000-00-00 00:00:00.000"` for a DATETIME(3); `temporal_text` prints such a value the same way from its
parts, for readers (the binlog) that get parts rather than text.

MariaDB's JSON is LONGTEXT in the catalog (its text is kept as stored); only a column whose type is `json`
(MySQL, OceanBase) is re-dumped by `json_text`.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pymysql
from pymysql.constants import FIELD_TYPE, FLAG

from obsync.connectors.mysql.connection import quote_ident
from obsync.core.schema import Column

Converter = Callable[[Any], Any]

UTC = dt.UTC
_FLOAT32 = struct.Struct("<f")
_fromiso_datetime = dt.datetime.fromisoformat
_fromiso_date = dt.date.fromisoformat


# ---------------------------------------------------------------------------------------------------------
# Shared helpers (also used by the binlog reader)


def float32(x: float) -> float:
    """`x` rounded to the nearest float32, as a Python float (what a FLOAT column stores)."""
    return _FLOAT32.unpack(_FLOAT32.pack(x))[0]


def bit_int(raw: bytes | int) -> int:
    """A BIT value as an unsigned int (big-endian bytes, as both SQL and the binlog send it)."""
    return raw if isinstance(raw, int) else int.from_bytes(raw, "big")


def json_text(value: Any) -> str:
    """The canonical text of a JSON value: parsed, then `json.dumps(..., ensure_ascii=False)`.

    `value` is JSON text (`str` or UTF-8 `bytes`, as SQL returns it) or an already decoded object (as a
    binlog JSON decoder returns it: `bytes` keys and strings are decoded as UTF-8, `Decimal` becomes a float
    as it does when MySQL's text is parsed, since text cannot tell a DECIMAL `1.10` from a DOUBLE; dates and
    times as MySQL prints them inside JSON). Key order is kept, so text and binary forms of the same
    document give the same canonical text.
    """
    if isinstance(value, (str, bytes, bytearray)):
        return json.dumps(json.loads(value), ensure_ascii=False)
    return json.dumps(_plain_json(value), ensure_ascii=False)


def _plain_json(v: Any) -> Any:
    if isinstance(v, dict):
        return {_plain_json(k): _plain_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain_json(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", errors="replace")
    if isinstance(v, Decimal):
        return float(v)  # SQL's text "1.10" parses to the float 1.1 too: both sides must agree
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")  # as MySQL prints a DATETIME inside JSON
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.strftime("%H:%M:%S.%f")
    return v


def temporal_text(column: Column, year: int, month: int, day: int, hour: int = 0, minute: int = 0,
                  second: int = 0, microsecond: int = 0) -> str:
    """How the server prints a DATE/DATETIME/TIMESTAMP of `column` from its parts (for zero dates)."""
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if column.data_type == "date":
        return text
    text += f" {hour:02d}:{minute:02d}:{second:02d}"
    if column.fsp:
        text += "." + f"{microsecond:06d}"[: column.fsp]
    return text


def time_text(value: dt.timedelta) -> str:
    """A TIME value as the server's text with 6 fractional digits (`-838:59:59.000000`)."""
    us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if us < 0 else ""
    us = abs(us)
    secs, frac = divmod(us, 1_000_000)
    return f"{sign}{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac:06d}"


# ---------------------------------------------------------------------------------------------------------
# Parsers of the server's text (what `use_sql_decoders` leaves as str)


def parse_date(text: str) -> dt.date | str:
    """`2024-02-29` -> date; zero or invalid dates stay text."""
    try:
        return _fromiso_date(text)
    except ValueError:
        return text
    except TypeError:  # already a date (a connection with pymysql's default decoders)
        return text


def parse_datetime(text: str) -> dt.datetime | str:
    """`2024-01-02 03:04:05.000006` -> naive datetime; zero or invalid values stay text."""
    try:
        return _fromiso_datetime(text)
    except ValueError:
        return text
    except TypeError:
        return text


def parse_timestamp(text: str) -> dt.datetime | str:
    """TIMESTAMP text read in a UTC session -> aware UTC datetime; the zero value stays text."""
    try:
        return _fromiso_datetime(text + "+00:00")
    except ValueError:
        return text
    except TypeError:  # a naive datetime from pymysql's default decoders (session in UTC)
        return text.replace(tzinfo=UTC) if isinstance(text, dt.datetime) else text


def parse_time(text: str) -> dt.timedelta:
    """`-838:59:58.999999` -> timedelta (negative values as Python represents them)."""
    if not isinstance(text, str):
        return text  # already a timedelta
    neg = text[0] == "-"
    if neg:
        text = text[1:]
    h, m, s = text.split(":")
    if "." in s:
        s, frac = s.split(".")
        us = int(frac.ljust(6, "0")[:6])
    else:
        us = 0
    total = (int(h) * 3600 + int(m) * 60 + int(s)) * 1_000_000 + us
    return dt.timedelta(microseconds=-total if neg else total)


# ---------------------------------------------------------------------------------------------------------
# SQL reads

# pymysql decoders for snapshot reads: temporal types stay text (parsed by the converters below).
SQL_DECODERS: dict[int, Converter] = {
    k: v
    for k, v in pymysql.converters.decoders.items()
    if k not in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE, FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP,
                 FIELD_TYPE.TIME)
}


def use_sql_decoders(conn: pymysql.Connection) -> None:
    """Make `conn` return values in the form the converters of this module expect.

    pymysql reads `Connection.decoders` afresh for every result, so this works on an open connection.
    """
    conn.decoders = dict(SQL_DECODERS)


# The same for mysqlclient (MySQLdb, C), whose C row reader calls these per value: `int` and `str` (and
# `bytes`) are its fast paths, done in C; `float` gets the text as bytes, `Decimal` as str. Character
# types go by the result charset, as with pymysql: `bytes` for charset 63 (binary), else `str` decoded from
# the connection's utf8mb4 (the C code sets the BINARY flag from the charset number for these pairs). JSON
# is always text. BIT and GEOMETRY have no entry: MySQLdb hands over bytes. Temporal types stay text.
_TEXT_OR_BINARY = ((FLAG.BINARY, bytes), (None, str))
MYSQLDB_DECODERS: dict[int, Any] = {
    **{t: int for t in (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG,
                        FIELD_TYPE.INT24, FIELD_TYPE.YEAR)},
    FIELD_TYPE.FLOAT: float,
    FIELD_TYPE.DOUBLE: float,
    FIELD_TYPE.DECIMAL: Decimal,
    FIELD_TYPE.NEWDECIMAL: Decimal,
    **{t: str for t in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE, FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP,
                        FIELD_TYPE.TIME, FIELD_TYPE.JSON)},
    **{t: _TEXT_OR_BINARY for t in (FIELD_TYPE.STRING, FIELD_TYPE.VAR_STRING, FIELD_TYPE.VARCHAR,
                                    FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB,
                                    FIELD_TYPE.BLOB, FIELD_TYPE.ENUM, FIELD_TYPE.SET)},
}


def mysqldb_conversions() -> dict[Any, Any]:
    """The `conv` argument of `MySQLdb.connect` for snapshot reads: MySQLdb's own encoders (how query
    parameters are written) and `MYSQLDB_DECODERS`, so that a row holds the same values as one read by
    pymysql with `use_sql_decoders`. Needs mysqlclient (imported here, not at module import)."""
    from MySQLdb.converters import conversions

    conv: dict[Any, Any] = {k: v for k, v in conversions.items() if not isinstance(k, int)}
    conv.update(MYSQLDB_DECODERS)
    return conv


def select_expression(column: Column, quote: Callable[[str], str] = quote_ident) -> str:
    """How `column` is selected so that its converter gets an exact value (FLOAT as a DOUBLE expression)."""
    q = quote(column.name)
    return f"{q} + 0e0" if column.data_type == "float" else q


def select_list(columns: Sequence[Column], quote: Callable[[str], str] = quote_ident) -> str:
    """The SELECT list for `columns`; `quote` quotes identifiers (pass one that doubles `%` when the query
    is run with pymysql parameters)."""
    return ", ".join(select_expression(c, quote) for c in columns)


def sql_converter(column: Column) -> Converter | None:
    """The function that turns this column's non-NULL value (as read with `select_list` and
    `use_sql_decoders`) into its canonical value; None where pymysql's value is already canonical."""
    t = column.data_type
    if t == "date":
        return parse_date
    if t == "datetime":
        return parse_datetime
    if t == "timestamp":
        return parse_timestamp
    if t == "time":
        return parse_time
    if t == "bit":
        return bit_int
    if t == "float":
        return float32
    if t == "json":
        return json_text
    # Integers and YEAR (int), DECIMAL (Decimal), DOUBLE (float), text, ENUM and SET (str), binary (bytes)
    # are canonical as pymysql returns them.
    return None


def canonical_from_sql(column: Column, value: Any) -> Any:
    """The canonical value of one value of `column` read with `select_list` on a connection prepared by
    `use_sql_decoders` (values from pymysql's default decoders are accepted too, except FLOAT, whose
    default SELECT text has lost precision)."""
    if value is None:
        return None
    conv = sql_converter(column)
    return value if conv is None else conv(value)


def row_converter(columns: Sequence[Column]) -> Callable[[tuple], list]:
    """A function turning one result tuple (columns in `columns` order) into a list of canonical values.

    Built once per table: only the columns that need a converter are visited per row.
    """
    todo = tuple((i, conv) for i, c in enumerate(columns) if (conv := sql_converter(c)) is not None)
    if not todo:
        return list

    def convert(row: tuple) -> list:
        out = list(row)
        for i, conv in todo:
            v = out[i]
            if v is not None:
                out[i] = conv(v)
        return out

    return convert


def row_dict_converter(columns: Sequence[Column]) -> Callable[[tuple], dict[str, Any]]:
    """A function turning one result tuple into the row dict `{column name: canonical value}`.

    Generated once per table as straight-line code (`{"id": r[0], "f": None if r[6] is None else c6(r[6]),
    ...}`): about twice as fast as a loop over converters plus `dict(zip(...))`, and the snapshot's
    throughput is bound by per-row Python work.
    """
    env: dict[str, Any] = {}
    items = []
    for i, c in enumerate(columns):
        conv = sql_converter(c)
        if conv is None:
            items.append(f"{c.name!r}: r[{i}]")
        else:
            env[f"c{i}"] = conv
            items.append(f"{c.name!r}: None if r[{i}] is None else c{i}(r[{i}])")
    src = "def convert(r):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(src, f"<row_dict_converter {len(columns)} columns>", "exec"), env)  # column names repr()-quoted
    return env["convert"]

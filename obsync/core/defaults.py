"""Column defaults: a DEFAULT literal as the canonical text `Column.default` holds, and back to a value.

`Column.default` is the literal default converted to the column's canonical value (see `obsync.core.schema`) and
printed the way the Default format prints values (`obsync.core.canonical_text.render_value`), so the same default reads
the same from any source: `DECIMAL(10,2) DEFAULT 1.5` in a DDL statement and `1.50` in information_schema
are both "1.50"; `INT DEFAULT '5'` is "5"; `DATE DEFAULT '2020-1-2'` is "2020-01-02"; a TIMESTAMP default is
epoch seconds (the literal read as UTC, the session time zone obsync's connections use); BIT and binary
defaults are Base64 of their bytes. NULL, expressions and literals that do not convert have no default (None).

A literal, as the DDL reader (`obsync.sql.ddl`) and the catalog (`obsync.connectors.mysql.catalog`) pass
it, is one of:
- `("str", text)`: a string literal, unquoted and unescaped (also what MySQL 8 and OceanBase report in
  information_schema.COLUMNS.COLUMN_DEFAULT);
- `("num", text)`: a number as written, sign included ("-5", "2.5e3"); TRUE / FALSE are "1" / "0";
- `("bytes", b)`: a hexadecimal or bit-value literal (`x'0a'`, `0x0a`, `b'101'`);
- `("now", None)`: CURRENT_TIMESTAMP / NOW() / LOCALTIMESTAMP (any precision) on a DATETIME or TIMESTAMP:
  the default text is "CURRENT_TIMESTAMP", whose value (`default_value`) is Debezium's convention: the epoch
  for a NOT NULL TIMESTAMP (so a schema registry accepts `ADD COLUMN ts TIMESTAMP NOT NULL DEFAULT
  CURRENT_TIMESTAMP`), none otherwise.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from obsync.core.canonical_text import render_value
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column

Literal = tuple[str, Any]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d*))?)?\s*$")
_DATE_DIGITS = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})(?:\.(\d*))?)?\s*$")
_TIME = re.compile(r"^\s*(-)?(?:(\d+) )?(\d+):(\d{1,2})(?::(\d{1,2})(?:\.(\d*))?)?\s*$")
_ZERO_DATE = "0000-00-00"
CURRENT_TIME = "CURRENT_TIMESTAMP"  # `Column.default` of a DATETIME/TIMESTAMP that defaults to the current time
_ZERO_DATETIME = "0000-00-00 00:00:00"


def default_text(column: Column, literal: Literal | None) -> str | None:
    """The canonical text of `literal` as `column`'s default (None when it has none or does not convert)."""
    if literal is None or column.generated:
        return None
    if literal[0] == "now":
        return CURRENT_TIME if column.data_type in ("timestamp", "datetime") else None
    try:
        value = literal_value(column, literal)
        return None if value is None else render_value(column, value)
    except (ValueError, ArithmeticError, InvalidOperation, IndexError, UnicodeDecodeError, OverflowError):
        return None


def literal_value(column: Column, literal: Literal) -> Any:
    """`literal` as a canonical value of `column` (None: no value of this type). Raises ValueError (or an
    arithmetic error) for text that does not convert."""
    kind, v = literal
    t = column.data_type
    if kind == "bytes":
        if t in INTEGER_TYPES or t in ("bit", "year", "decimal", "numeric", "float", "double", "real"):
            n = int.from_bytes(v, "big")
            return _number(column, str(n), "num")
        if t in BINARY_TYPES or column.is_binary:
            return bytes(v)
        if t in TEXT_TYPES or t in ("enum", "set"):
            return _text_value(column, v.decode("utf-8"), "str")
        return None
    text = str(v)
    if t in INTEGER_TYPES or t in ("bit", "year", "decimal", "numeric", "float", "double", "real"):
        if t == "bit" and kind == "str":  # a string for a BIT: its bytes
            return int.from_bytes(text.encode("utf-8"), "big")
        return _number(column, text, kind)
    if t in BINARY_TYPES or column.is_binary:
        return text.encode("utf-8")
    if t in TEXT_TYPES or t in ("enum", "set"):
        return _text_value(column, text, kind)
    if t == "date":
        d = _datetime(text, 0)
        return d if isinstance(d, str) else d.date()
    if t == "datetime":
        d = _datetime(text, column.fsp)
        return _ZERO_DATETIME if isinstance(d, str) else d
    if t == "timestamp":
        d = _datetime(text, column.fsp)
        return _ZERO_DATETIME if isinstance(d, str) else d.replace(tzinfo=_UTC)
    if t == "time":
        return _time(text, column.fsp)
    return None  # JSON (MySQL allows only expression defaults), spatial types


def _number(column: Column, text: str, kind: str) -> Any:
    t = column.data_type
    d = Decimal(text.strip())
    if not d.is_finite():
        raise ValueError(text)
    if t in ("float", "double", "real"):
        return float(d)
    if t in ("decimal", "numeric"):
        return d.quantize(Decimal(1).scaleb(-(column.scale or 0)), ROUND_HALF_UP)
    n = int(d.to_integral_value(ROUND_HALF_UP))
    if t == "year":
        digits = len(text.strip().lstrip("+-"))
        if kind == "str" and digits <= 2 or kind == "num" and 0 < n < 100:  # two-digit years
            n += 2000 if n < 70 else 1900
    return n


def _text_value(column: Column, text: str, kind: str) -> str:
    if column.data_type == "enum":
        if kind == "num":  # an index into the members
            i = int(text)
            if not 1 <= i <= len(column.values):
                raise ValueError(text)
            return column.values[i - 1]
        return _member(column, text)
    if column.data_type == "set":
        if kind == "num":  # a bit mask of the members
            mask = int(text)
            return ",".join(m for i, m in enumerate(column.values) if mask >> i & 1)
        given = {_member(column, m) for m in text.split(",") if m}
        return ",".join(m for m in column.values if m in given)
    return text


def _member(column: Column, text: str) -> str:
    """The declared ENUM/SET member `text` names (compared as MySQL does: case and trailing spaces aside)."""
    want = text.rstrip(" ").lower()
    for m in column.values:
        if m.rstrip(" ").lower() == want:
            return m
    raise ValueError(f"{text!r} is not a member")


def _fraction(frac: str | None, fsp: int) -> tuple[int, int]:
    """(microseconds rounded to `fsp` digits, carry in seconds)."""
    if not frac:
        return 0, 0
    us = int((Decimal("0." + frac).quantize(Decimal(1).scaleb(-fsp), ROUND_HALF_UP)).scaleb(6))
    return (us, 0) if us < 1_000_000 else (us - 1_000_000, 1)


def _datetime(text: str, fsp: int) -> dt.datetime | str:
    """A DATE/DATETIME/TIMESTAMP literal as a naive datetime, or the zero date as a string."""
    m = _DATE.match(text) or _DATE_DIGITS.match(text)
    if m is None:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac = m.groups()
    if int(y) == 0 and int(mo) == 0 and int(d) == 0:
        return _ZERO_DATE
    us, carry = _fraction(frac, fsp)
    return dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), us) \
        + dt.timedelta(seconds=carry)


def _time(text: str, fsp: int) -> dt.timedelta:
    m = _TIME.match(text)
    if m is None:
        raise ValueError(text)
    neg, days, h, mi, s, frac = m.groups()
    us, carry = _fraction(frac, fsp)
    v = dt.timedelta(days=int(days or 0), hours=int(h), minutes=int(mi), seconds=int(s or 0) + carry,
                     microseconds=us)
    return -v if neg else v


# ------------------------------------------------------------------------------------------- back to values


def default_value(column: Column) -> Any:
    """`column.default` (canonical text) as the canonical value it prints (None when there is no default)."""
    text = column.default
    if text is None:
        return None
    t = column.data_type
    if text == CURRENT_TIME:  # no value; Debezium's schema default for a NOT NULL TIMESTAMP is the epoch
        return _EPOCH if t == "timestamp" and not column.nullable else None
    if t in INTEGER_TYPES or t == "year":
        return int(text)
    if t in ("decimal", "numeric"):
        return Decimal(text)
    if t in ("float", "double", "real", "double precision"):
        return float(text)
    if t == "bit":
        return int.from_bytes(base64.b64decode(text), "big")
    if t in BINARY_TYPES or column.is_binary:
        return base64.b64decode(text)
    if t in TEXT_TYPES or t in ("json", "enum", "set"):
        return text
    if t == "date":
        return text if text.startswith(_ZERO_DATE) else dt.date.fromisoformat(text)
    if t == "datetime":
        return text if text.startswith(_ZERO_DATE) else dt.datetime.fromisoformat(text)
    if t == "timestamp":
        return _EPOCH + dt.timedelta(microseconds=int(Decimal(text).scaleb(6)))
    if t == "time":
        return _time(text, 6)
    return None

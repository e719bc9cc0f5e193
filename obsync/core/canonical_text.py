"""Canonical column values (see `obsync.core.schema`) as text: the one text form of each value.

The OMS-style formats carry values in this form (`obsync.formats.values` plans it per table), and column defaults
are stored in it (`obsync.core.defaults`), so a default reads exactly as the column's values do. Rules
(docs/formats/README.md, "Column values"): every value is a string, or None for SQL NULL.
- integers and YEAR in decimal (YEAR zero-padded to four digits, as MySQL prints it);
- DECIMAL in plain notation with the column's scale (`5` in DECIMAL(12,2) is `5.00`), never rounded, never
  scientific, never `-0`;
- FLOAT as the shortest text that reads back as the same float32, DOUBLE as the shortest text that reads
  back as the same double, both in plain notation (no exponent, no trailing ".0");
- BIT as Base64 of its declared width's big-endian bytes (`Column.bit_width`); BINARY, VARBINARY, BLOB kinds and
  text columns of the `binary` charset as Base64 of their bytes;
- TIMESTAMP as epoch seconds, with exactly `fsp` fraction digits when the column has them;
- DATE, DATETIME and TIME as MySQL prints them (`2024-01-02 03:04:05.120000`, `-838:59:59`); zero dates,
  which arrive as strings, unchanged;
- JSON, ENUM, SET and text as their strings.

`render_function(column)` chooses the function from the column's declared type once, so rendering a value does
no type dispatch. Render functions take a non-NULL value.
"""

from __future__ import annotations

import datetime as dt
import struct
from binascii import b2a_base64
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column

Render = Callable[[Any], str]

# What the compiled row renderer (`obsync/core/_render.c`) writes itself for a render function, as (kind,
# param); kind 0: it calls the function for every value. A kind hands a value back to the function whenever it is
# not of the type the kind writes (zero dates arrive as text, say), so the text is always the function's
# (tests/unit/test_format_values.py compares both on every kind and edge).
KIND_CALL, KIND_STR, KIND_DECIMAL, KIND_DOUBLE, KIND_DATETIME, KIND_TIMESTAMP, KIND_DATE = range(7)


def _compiled(kind: int, param: int, render: Render) -> Render:
    """`render`, marked as one the compiled row renderer writes as `kind` with `param`."""
    render.compiled_as = (kind, param)  # type: ignore[attr-defined]  # a function's attribute
    return render


def compiled_kind(render: Render) -> tuple[int, int]:
    """(kind, param) of a render function for the compiled row renderer."""
    if render is str:
        return KIND_STR, 0
    return getattr(render, "compiled_as", (KIND_CALL, 0))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ZERO = dt.timedelta(0)
_F32 = struct.Struct("<f")


# ---------------------------------------------------------------- numbers


def _plain(text: str) -> str:
    """A number's text without exponent: '1e+20' -> '100000000000000000000', '1.5e-07' -> '0.00000015'."""
    return format(Decimal(text), "f")


def render_double(v: float) -> str:
    """Shortest round-trip text of a double, in plain notation ('0.1', '5', '-0', '1e20' -> '1000...')."""
    r = repr(v)
    if "e" in r:
        return _plain(r)
    return r[:-2] if r.endswith(".0") else r


_compiled(KIND_DOUBLE, 0, render_double)


_F32_MIN_NORMAL = 1.1754943508222875e-38
_F32_SPECS = (".6g", ".7g", ".8g", ".9g")
_F32_SPECS_SUBNORMAL = tuple(f".{p}g" for p in range(1, 10))


def _to_f32(v: float) -> float:
    return _F32.unpack(_F32.pack(v))[0]


def render_float(v: float) -> str:
    """Shortest text that reads back as the same float32 (float32(1.1) -> '1.1'), in plain notation."""
    x = _to_f32(v)  # the canonical value is already a float32; this makes sure of it
    if x != x or x in (float("inf"), float("-inf")):  # impossible in MySQL; never loop on them
        return repr(x)
    # A normal float32 has more than 6 significant digits of precision, so a decimal of 6 or fewer digits
    # that reads back as x is x's nearest at 6 digits: the first width from 6 up that reads back is the
    # shortest. Subnormals have fewer digits of precision and try every width.
    for spec in _F32_SPECS if abs(x) >= _F32_MIN_NORMAL else _F32_SPECS_SUBNORMAL:
        s = format(x, spec)
        if _to_f32(float(s)) == x:
            break
    return _plain(s) if "e" in s else s


def _decimal_renderer(scale: int) -> Render:
    def render(v: Any) -> str:
        t = str(v)  # exact; plain unless the exponent is positive or the value tiny
        if "E" in t or "e" in t:
            t = format(Decimal(t), "f")  # formatting never rounds to the context's precision
        if t[0] == "-" and not v:
            t = t[1:]  # DECIMAL has no negative zero
        if scale:
            dot = t.find(".")
            if dot < 0:
                return f"{t}.{'0' * scale}"
            pad = scale - (len(t) - dot - 1)
            if pad > 0:
                return t + "0" * pad
        return t

    return _compiled(KIND_DECIMAL, scale, render)


def render_year(v: int) -> str:
    return f"{v:04d}"


# ---------------------------------------------------------------- bytes


def render_bytes(v: bytes) -> str:
    return b2a_base64(v, newline=False).decode("ascii")


def _bit_renderer(width: int) -> Render:
    size = max(1, (width + 7) // 8)

    def render(v: Any) -> str:
        if type(v) is int:
            return b2a_base64(v.to_bytes(size, "big"), newline=False).decode("ascii")
        return b2a_base64(bytes(v).rjust(size, b"\0"), newline=False).decode("ascii")

    return render


# ---------------------------------------------------------------- temporal


def render_date(v: Any) -> str:
    return v if type(v) is str else v.isoformat()


_compiled(KIND_DATE, 0, render_date)


def _datetime_renderer(fsp: int) -> Render:
    cut = 20 + fsp if fsp else 19
    zeros = "." + "0" * fsp if fsp else ""

    def render(v: Any) -> str:
        if type(v) is str:  # zero dates
            return v + zeros if fsp and "." not in v else v
        return v.isoformat(" ", "microseconds")[:cut]

    return _compiled(KIND_DATETIME, fsp, render)


def _timestamp_renderer(fsp: int) -> Render:
    def render(v: Any) -> str:
        try:
            d = v - _EPOCH
        except TypeError:
            if type(v) is str:  # a zero TIMESTAMP ('0000-00-00 00:00:00') is 0 in the server
                d = _ZERO
            else:  # naive: taken as UTC
                d = v.replace(tzinfo=dt.UTC) - _EPOCH
        if fsp:
            text = f"{d.days * 86400 + d.seconds}.{d.microseconds:06d}"
            return text if fsp >= 6 else text[: fsp - 6]
        return str(d.days * 86400 + d.seconds)

    return _compiled(KIND_TIMESTAMP, fsp, render)


def _time_renderer(fsp: int) -> Render:
    def render(v: dt.timedelta) -> str:
        total = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
        sign = ""
        if total < 0:
            sign, total = "-", -total
        secs, frac = divmod(total, 1_000_000)
        mins, s = divmod(secs, 60)
        h, m = divmod(mins, 60)
        if fsp:
            return f"{sign}{h:02d}:{m:02d}:{s:02d}.{frac:06d}"[: None if fsp >= 6 else fsp - 6]
        return f"{sign}{h:02d}:{m:02d}:{s:02d}"

    return render


# ---------------------------------------------------------------- choice per column


def _render_other(v: Any) -> str:
    """Types the canonical table does not name (spatial types, ...): bytes as Base64, else their text."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return render_bytes(bytes(v))
    return str(v)


def render_function(column: Column) -> Render:
    """The function that renders a non-NULL canonical value of `column`."""
    t = column.data_type
    if t in INTEGER_TYPES:
        return str
    if t in ("decimal", "numeric"):
        return _decimal_renderer(column.scale or 0)
    if t == "float":
        return render_float
    if t in ("double", "real", "double precision"):
        return render_double
    if t == "bit":
        return _bit_renderer(column.bit_width)
    if t in BINARY_TYPES or column.is_binary:
        return render_bytes
    if t in TEXT_TYPES or t in ("json", "enum", "set"):
        return str
    if t == "year":
        return render_year
    if t == "date":
        return render_date
    if t == "datetime":
        return _datetime_renderer(column.fsp)
    if t == "timestamp":
        return _timestamp_renderer(column.fsp)
    if t == "time":
        return _time_renderer(column.fsp)
    return _render_other


def render_value(column: Column, value: Any) -> str | None:
    """One value of `column` as text (None for NULL). For rows, `obsync.formats.values.table_renderer` plans the
    render functions once per table."""
    return None if value is None else render_function(column)(value)

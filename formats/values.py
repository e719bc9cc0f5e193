"""Canonical column values (see `obsync.core.schema`) rendered as the text the OMS-style formats carry.

Rules (docs/formats/README.md, "Column values"): every value is a string, or None for SQL NULL.
- integers and YEAR in decimal (YEAR zero-padded to four digits, as MySQL prints it);
- DECIMAL in plain notation with the column's scale (`5` in DECIMAL(12,2) is `5.00`), never rounded, never
  scientific, never `-0`;
- FLOAT as the shortest text that reads back as the same float32, DOUBLE as the shortest text that reads
  back as the same double, both in plain notation (no exponent, no trailing ".0");
- BIT as Base64 of its declared width's big-endian bytes; BINARY, VARBINARY, BLOB kinds and text columns of
  the `binary` charset as Base64 of their bytes;
- TIMESTAMP as epoch seconds, with exactly `fsp` fraction digits when the column has them;
- DATE, DATETIME and TIME as MySQL prints them (`2024-01-02 03:04:05.120000`, `-838:59:59`); zero dates,
  which arrive as strings, unchanged;
- JSON, ENUM, SET and text as their strings.

Rendering is planned once per table: `table_renderer(schema)` returns a `TableRenderer` holding one render
function per column, chosen from the column's declared type, so rendering a row does no type dispatch.
Render functions take a non-NULL value; NULL is handled by the row renderer.
"""

from __future__ import annotations

import datetime as dt
import struct
from binascii import b2a_base64
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from obsync.core.errors import SchemaMismatchError
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column, TableSchema

Render = Callable[[Any], str]
KeyRender = Callable[[Any], "int | str"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
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

    return render


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


def _bit_width(column: Column) -> int:
    if column.precision:
        return column.precision
    ct = column.column_type
    if "(" in ct:
        return int(ct[ct.index("(") + 1 : ct.index(")")])
    return 1


# ---------------------------------------------------------------- temporal


def render_date(v: Any) -> str:
    return v if type(v) is str else v.isoformat()


def _datetime_renderer(fsp: int) -> Render:
    cut = 20 + fsp if fsp else 19
    zeros = "." + "0" * fsp if fsp else ""

    def render(v: Any) -> str:
        if type(v) is str:  # zero dates
            return v + zeros if fsp and "." not in v else v
        return v.isoformat(" ", "microseconds")[:cut]

    return render


def _timestamp_renderer(fsp: int) -> Render:
    def render(v: Any) -> str:
        try:
            d = v - _EPOCH
        except TypeError:
            if type(v) is str:  # a zero TIMESTAMP ('0000-00-00 00:00:00') is 0 in the server
                d = _ZERO
            else:  # naive: taken as UTC
                d = v.replace(tzinfo=dt.timezone.utc) - _EPOCH
        if fsp:
            text = f"{d.days * 86400 + d.seconds}.{d.microseconds:06d}"
            return text if fsp >= 6 else text[: fsp - 6]
        return str(d.days * 86400 + d.seconds)

    return render


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
        return _bit_renderer(_bit_width(column))
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
    """One value of `column` as the formats carry it (None for NULL). For rows use `table_renderer`."""
    return None if value is None else render_function(column)(value)


def key_render_function(column: Column) -> KeyRender:
    """How a key column's value appears in a JSON message key: integers as JSON numbers, others as text."""
    if column.data_type in INTEGER_TYPES or column.data_type == "year":
        return int
    return render_function(column)


# ---------------------------------------------------------------- per table


class TableRenderer:
    """Render functions of one table's columns, built once per schema (see `table_renderer`)."""

    __slots__ = ("schema", "renders", "key_columns", "_key_json", "_full_row")

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self.renders: dict[str, Render] = {c.name: render_function(c) for c in schema.columns}
        self.key_columns: tuple[str, ...] = schema.key_columns
        self._key_json: tuple[tuple[str, KeyRender], ...] = tuple(
            (name, key_render_function(schema.column(name))) for name in self.key_columns
        )
        self._full_row = _compile_full_row(schema.columns, self.renders)

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

    def key_text(self, rendered: Mapping[str, str | None], joiner: str) -> str:
        """The key columns' values joined by `joiner`, from a row already rendered by `render_row`."""
        cols = self.key_columns
        if len(cols) == 1:
            return rendered[cols[0]]  # type: ignore[return-value]
        return joiner.join(rendered[c] for c in cols)  # type: ignore[misc]

    def key_json_values(self, row: Mapping[str, Any]) -> list[int | str | None]:
        """The key columns' values for a JSON message key (`[42]`, `["a",7]`), from a canonical row."""
        return [None if (v := row[c]) is None else f(v) for c, f in self._key_json]

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
            except Exception as e:
                col = self.schema.column(name)
                return SchemaMismatchError(
                    f"column {table}.{name} ({col.column_type}) cannot be rendered from a "
                    f"{type(value).__name__} value {value!r:.80}: {e}"
                )
        return exc


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
    exec("\n".join(lines), env)  # noqa: S102 - names are repr()-quoted literals
    return env["render"]


_BY_ID: dict[int, tuple[TableSchema, TableRenderer]] = {}
_BY_VALUE: dict[TableSchema, TableRenderer] = {}
_CACHE_LIMIT = 4096


def table_renderer(schema: TableSchema) -> TableRenderer:
    """The `TableRenderer` of `schema`, cached by identity and, for equal copies, by value."""
    hit = _BY_ID.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    renderer = _BY_VALUE.get(schema)
    if renderer is None:
        if len(_BY_VALUE) >= _CACHE_LIMIT:
            _BY_VALUE.clear()
        renderer = _BY_VALUE[schema] = TableRenderer(schema)
    if len(_BY_ID) >= _CACHE_LIMIT:
        _BY_ID.clear()
    _BY_ID[id(schema)] = (schema, renderer)  # holding `schema` keeps its id from being reused
    return renderer

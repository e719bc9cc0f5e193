"""Decoding the rows of a rows event with the layout of its table map and the tracked schema's meaning.

A `RowDecoder` is compiled once per (table map, schema) pair: one small function per column, chosen from
the column's binlog type code and metadata, closed over the schema's signedness, character set and
ENUM/SET members. Decoding a row is then a loop over those functions on the event's bytes.

Where the C module `obsync/connectors/mysql/binlog/_rowimage.c` was built (`pip install` compiles it), a row
event's images are decoded by its `RowProgram` (`compiled_program`: one op per column, chosen by the same rules
as the generated code, other types read by the same Python readers); what it does not decode exactly (a read
past the end, a fraction of a second out of range, a DECIMAL beyond 18 digits' arithmetic) it hands back, and
the generated Python code decodes those bytes, with the same values and errors.
"""

from __future__ import annotations

import decimal
import struct
from collections.abc import Callable
from datetime import datetime as _datetime
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as FT

from obsync.connectors.mysql.binlog import values as V
from obsync.core.errors import SchemaMismatchError, SourceError
from obsync.core.schema import Column, TableSchema

_RowProgram: Any
try:  # built by `pip install` when a C compiler is there (setup.py)
    from obsync.connectors.mysql.binlog._rowimage import RowProgram as _RowProgram
except ImportError:  # pragma: no cover - built without a C compiler: the generated Python code decodes every row
    _RowProgram = None

ColumnReader = Callable[[bytes, int], "tuple[Any, int]"]

# Table-map type codes each declared type may appear as (MySQL, MariaDB and OceanBase Binlog Service).
_TEXTLIKE = {FT.STRING, FT.VAR_STRING, FT.VARCHAR}
COMPATIBLE_TYPES: dict[str, set[int]] = {
    "tinyint": {FT.TINY}, "bool": {FT.TINY}, "boolean": {FT.TINY},
    "smallint": {FT.SHORT}, "mediumint": {FT.INT24}, "int": {FT.LONG}, "integer": {FT.LONG},
    "bigint": {FT.LONGLONG},
    "float": {FT.FLOAT}, "double": {FT.DOUBLE}, "real": {FT.DOUBLE},
    "decimal": {FT.NEWDECIMAL}, "numeric": {FT.NEWDECIMAL},
    "date": {FT.DATE, FT.NEWDATE}, "datetime": {FT.DATETIME, FT.DATETIME2},
    "timestamp": {FT.TIMESTAMP, FT.TIMESTAMP2}, "time": {FT.TIME, FT.TIME2}, "year": {FT.YEAR},
    "char": _TEXTLIKE, "varchar": _TEXTLIKE, "binary": _TEXTLIKE, "varbinary": _TEXTLIKE,
    "inet6": _TEXTLIKE, "inet4": _TEXTLIKE, "uuid": _TEXTLIKE,
    "tinytext": {FT.BLOB}, "text": {FT.BLOB}, "mediumtext": {FT.BLOB}, "longtext": {FT.BLOB},
    "tinyblob": {FT.BLOB}, "blob": {FT.BLOB}, "mediumblob": {FT.BLOB}, "longblob": {FT.BLOB},
    "json": {FT.JSON, FT.BLOB},
    "enum": {FT.ENUM}, "set": {FT.SET}, "bit": {FT.BIT},
    "geometry": {FT.GEOMETRY}, "point": {FT.GEOMETRY}, "linestring": {FT.GEOMETRY},
    "polygon": {FT.GEOMETRY}, "multipoint": {FT.GEOMETRY}, "multilinestring": {FT.GEOMETRY},
    "multipolygon": {FT.GEOMETRY}, "geometrycollection": {FT.GEOMETRY}, "geomcollection": {FT.GEOMETRY},
}
_RAW_BYTES_TYPES = frozenset({"inet6", "inet4", "uuid"})  # MariaDB's binary-stored types


def table_map_signature(tm_columns: list) -> tuple:
    """What in a table map determines how its rows are laid out."""
    sig: list[tuple[Any, ...]] = []
    for c in tm_columns:
        t = c.type
        if t in (FT.VARCHAR, FT.STRING, FT.VAR_STRING):
            sig.append((t, c.max_length))
        elif t in (FT.ENUM, FT.SET):
            sig.append((t, c.size))
        elif t in (FT.BLOB, FT.JSON, FT.GEOMETRY):
            sig.append((t, c.length_size))
        elif t == FT.NEWDECIMAL:
            sig.append((t, c.precision, c.decimals))
        elif t in (FT.TIME2, FT.DATETIME2, FT.TIMESTAMP2):
            sig.append((t, c.fsp))
        elif t == FT.BIT:
            sig.append((t, c.bits, c.bytes))
        else:
            sig.append((t,))
    return tuple(sig)


def mismatch_reason(schema: TableSchema | None, tm_columns: list, tm_names: list[str] | None) -> str | None:
    """Why the table map cannot be decoded with `schema` (None when it can)."""
    if schema is None:
        return "the table does not exist in the tracked schema"
    if len(schema.columns) != len(tm_columns):
        return f"the table map has {len(tm_columns)} columns, the tracked schema {len(schema.columns)}"
    for i, (col, tm) in enumerate(zip(schema.columns, tm_columns, strict=True)):  # lengths checked above
        allowed = COMPATIBLE_TYPES.get(col.data_type)
        if allowed is not None and tm.type not in allowed:
            return (f"column {i + 1} ({col.name} {col.column_type}) arrives as binlog type {tm.type}, "
                    f"expected one of {sorted(allowed)}")
        if tm.type == FT.NEWDECIMAL and col.precision is not None and (
                (tm.precision, tm.decimals) != (col.precision, col.scale or 0)):
            return (f"column {col.name} is decimal({tm.precision},{tm.decimals}) in the table map, "
                    f"decimal({col.precision},{col.scale}) in the tracked schema")
        if tm.type in (FT.TIME2, FT.DATETIME2, FT.TIMESTAMP2) and tm.fsp != col.fsp:
            return f"column {col.name} has {tm.fsp} fractional digits in the table map, {col.fsp} tracked"
        if tm_names and tm_names[i] != col.name:
            return f"column {i + 1} is named {tm_names[i]!r} in the table map, {col.name!r} tracked"
    return None


def _int_reader(size: int, signed: bool) -> ColumnReader:
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}.get(size)
    if fmt is not None:
        unpack = struct.Struct("<" + (fmt if signed else fmt.upper())).unpack_from

        def read(b: bytes, o: int, unpack=unpack, size=size) -> tuple[Any, int]:
            return unpack(b, o)[0], o + size
        return read

    def read3(b: bytes, o: int, signed=signed) -> tuple[Any, int]:
        return int.from_bytes(b[o:o + 3], "little", signed=signed), o + 3
    return read3


def _length_prefixed(prefix: int) -> Callable[[bytes, int], tuple[int, int]]:
    if prefix == 1:
        return lambda b, o: (b[o], o + 1)
    if prefix == 2:
        return lambda b, o: (b[o] | b[o + 1] << 8, o + 2)
    return lambda b, o: (int.from_bytes(b[o:o + prefix], "little"), o + prefix)


def _string_reader(prefix: int, col: Column, where: str) -> ColumnReader:
    length_of = _length_prefixed(prefix)
    encoding = None if (col.is_binary or col.data_type in _RAW_BYTES_TYPES) else V.python_encoding(col.charset)
    if encoding is None:
        pad = col.precision if col.data_type == "binary" else None
        if pad:
            def read_bin_padded(b: bytes, o: int) -> tuple[Any, int]:
                n, o = length_of(b, o)
                return V.pad_binary(b[o:o + n], pad), o + n
            return read_bin_padded

        def read_bytes(b: bytes, o: int) -> tuple[Any, int]:
            n, o = length_of(b, o)
            return b[o:o + n], o + n
        return read_bytes

    strip = col.data_type == "char"  # SELECT returns CHAR values without trailing spaces

    def read_text(b: bytes, o: int) -> tuple[Any, int]:
        n, o = length_of(b, o)
        try:
            text = b[o:o + n].decode(encoding)
            return (text.rstrip(" ") if strip else text), o + n
        except UnicodeDecodeError as e:
            raise SchemaMismatchError(
                f"{where}: column {col.name} holds bytes that are not {col.charset} text ({e.reason}); "
                f"the tracked schema's character set for it is probably wrong") from None
    return read_text


def column_reader(tm: Any, col: Column, where: str) -> ColumnReader:
    """The reader for one column: layout from the table-map column `tm`, meaning from `col`."""
    t = tm.type
    if t == FT.TINY:
        return _int_reader(1, not col.unsigned)
    if t == FT.SHORT:
        return _int_reader(2, not col.unsigned)
    if t == FT.INT24:
        return _int_reader(3, not col.unsigned)
    if t == FT.LONG:
        return _int_reader(4, not col.unsigned)
    if t == FT.LONGLONG:
        return _int_reader(8, not col.unsigned)
    if t == FT.FLOAT:
        u = struct.Struct("<f").unpack_from
        return lambda b, o: (u(b, o)[0], o + 4)
    if t == FT.DOUBLE:
        u = struct.Struct("<d").unpack_from
        return lambda b, o: (u(b, o)[0], o + 8)
    if t == FT.NEWDECIMAL:
        return _decimal_reader(tm.precision, tm.decimals)
    if t in (FT.VARCHAR, FT.VAR_STRING, FT.STRING):
        return _string_reader(2 if tm.max_length > 255 else 1, col, where)
    if t == FT.BLOB:
        return _string_reader(tm.length_size, col, where)
    if t == FT.ENUM:
        size, members = tm.size, col.values
        return lambda b, o: (V.enum_value(int.from_bytes(b[o:o + size], "little"), members), o + size)
    if t == FT.SET:
        size, members = tm.size, col.values
        return lambda b, o: (V.set_value(int.from_bytes(b[o:o + size], "little"), members), o + size)
    if t == FT.BIT:
        nbytes = (tm.bits + 7) // 8
        return lambda b, o: (int.from_bytes(b[o:o + nbytes], "big"), o + nbytes)
    if t == FT.DATE or t == FT.NEWDATE:
        return _date_reader()
    if t == FT.DATETIME2:
        return _datetime2_reader(tm.fsp)
    if t == FT.TIMESTAMP2:
        return _timestamp2_reader(tm.fsp)
    if t == FT.TIME2:
        fsp = tm.fsp
        return lambda b, o: V.decode_time2(b, o, fsp)
    if t == FT.TIMESTAMP:
        return lambda b, o: (V.timestamp_value(int.from_bytes(b[o:o + 4], "little")), o + 4)
    if t == FT.DATETIME:
        return lambda b, o: (V.decode_datetime_old(int.from_bytes(b[o:o + 8], "little")), o + 8)
    if t == FT.TIME:
        return lambda b, o: (V.decode_time_old(int.from_bytes(b[o:o + 3], "little")), o + 3)
    if t == FT.YEAR:
        return lambda b, o: (V.year_value(b[o]), o + 1)
    if t == FT.JSON:
        length_of = _length_prefixed(tm.length_size)

        def read_json(b: bytes, o: int) -> tuple[Any, int]:
            n, o = length_of(b, o)
            return V.decode_json_binary(bytes(b[o:o + n])), o + n
        return read_json
    if t == FT.GEOMETRY:
        length_of = _length_prefixed(tm.length_size)

        def read_geometry(b: bytes, o: int) -> tuple[Any, int]:
            n, o = length_of(b, o)
            return b[o:o + n], o + n
        return read_geometry
    raise SourceError(f"{where}: column {col.name} has binlog type {t}, which obsync cannot decode")


# ---- inline code for the frequent column types --------------------------------------------------------
#
# Each `_*_lines` function returns the source lines that decode column `i` at offset `o` of `b` into `v{i}` and
# advance `o`, adding the constants they name to `ns`. The generated row function inlines them (no call and no
# tuple per value); `column_reader` compiles the same lines into a reader of one value, so the two agree.

_DECIMAL_CONTEXT = decimal.Context(prec=100)  # scaleb is exact up to DECIMAL's 65 digits (the default 28 rounds)
_CACHE_SIZE = 4096  # entries of a column's cache of decoded dates and seconds (cleared when full)


def _cache(cache: dict[int, Any], key: int, value: Any) -> Any:
    """Remember `value` for `key` in a bounded per-column cache; `value`."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


_BE_CODES = {1: ("B",), 2: ("H",), 3: ("B", "H"), 4: ("I",), 5: ("B", "I"), 6: ("H", "I")}


def _be_fields(widths: list[int], ns: dict[str, Any], name: str) -> tuple[str, list[str], int]:
    """Big-endian unsigned fields of the given byte widths read by one struct unpack: (the unpacking line, an
    expression of each field's value, the bytes read). The first struct item is the first field's top byte(s)."""
    codes = ""
    items: list[str] = []  # the struct's items
    exprs: list[str] = []  # each field's value from them
    for w in widths:
        parts = _BE_CODES[w]
        names = [f"t{len(items) + k}" for k in range(len(parts))]
        codes += "".join(parts)
        items += names
        low_bits = 8 * struct.calcsize(">" + parts[-1])
        exprs.append(names[0] if len(names) == 1 else f"({names[0]} << {low_bits} | {names[1]})")
    ns[name] = struct.Struct(">" + codes).unpack_from
    return f"{''.join(x + ', ' for x in items)}= {name}(b, o)", exprs, struct.calcsize(">" + codes)


def _decimal_lines(i: int, precision: int, scale: int, ns: dict[str, Any]) -> list[str]:
    """DECIMAL(precision, scale): its digit groups read by one struct unpack and composed into the scaled
    integer n, then n * 10**-scale, exact (`values.decode_decimal` is the reference; Decimal of a formatted
    string costs five times as much). A negative zero keeps its sign and scale, as in the reference."""
    size = V.decimal_size(precision, scale)
    intg = precision - scale
    groups: list[tuple[int, int]] = []  # (bytes, digits) from the most significant end
    if intg % 9:
        groups.append((V._DIG2BYTES[intg % 9], intg % 9))
    groups += [(4, 9)] * (intg // 9 + scale // 9)
    if scale % 9:
        groups.append((V._DIG2BYTES[scale % 9], scale % 9))
    unpack, values, nbytes = _be_fields([w for w, _ in groups], ns, f"S{i}")
    assert nbytes == size
    pos_terms, neg_terms = [], []
    after = precision
    for k, ((w, digits), value) in enumerate(zip(groups, values, strict=True)):
        after -= digits
        full = (1 << w * 8) - 1
        scale_by = f" * {10 ** after}" if after else ""
        if k == 0:  # the sign bit is the first group's top bit (a group's value never reaches it)
            pos_terms.append(f"({value} & {full >> 1}){scale_by}")
            neg_terms.append(f"(({value} ^ {full}) & {full >> 1}){scale_by}")
        else:
            pos_terms.append(f"{value}{scale_by}")
            neg_terms.append(f"({value} ^ {full}){scale_by}")
    top_bits = 8 * struct.calcsize(">" + _BE_CODES[groups[0][0]][0])
    ns["_D"], ns["_scaleb"] = V.Decimal, _DECIMAL_CONTEXT.scaleb
    ns[f"NZ{i}"] = V.Decimal("-0" + ("." + "0" * scale if scale else ""))
    if scale:
        pos, neg = f"_scaleb({' + '.join(pos_terms)}, {-scale})", f"_scaleb(-n, {-scale})"
    else:
        pos, neg = f"_D({' + '.join(pos_terms)})", "_D(-n)"
    return [unpack,
            f"o += {size}",
            f"if t0 >> {top_bits - 1}:",
            f"    v{i} = {pos}",
            "else:",
            f"    n = {' + '.join(neg_terms)}",
            f"    v{i} = {neg} if n else NZ{i}"]


def _datetime2_miss(raw: int, us: int, cache: dict[int, Any], fsp: int) -> Any:
    """A DATETIME2 whose 5 bytes (`raw`) are not in the column's cache: its value (a naive datetime, or the
    server's text for zero and partial dates), cached by `raw`: the value itself without fractional digits,
    else the datetime's fields (a date's text is never cached then: its fraction varies)."""
    x = raw - 0x8000000000
    ymd = x >> 17
    ym = ymd >> 5
    year, month, day = ym // 13, ym % 13, ymd & 31
    hour, minute, second = (x >> 12) & 31, (x >> 6) & 63, x & 63
    try:
        v = _datetime(year, month, day, hour, minute, second, us)
    except ValueError:
        text = V.format_datetime(year, month, day, hour, minute, second, us, fsp)
        return _cache(cache, raw, text) if fsp == 0 else text
    _cache(cache, raw, v if fsp == 0 else (year, month, day, hour, minute, second))
    return v


def _timestamp2_miss(sec: int, us: int, cache: dict[int, Any], fsp: int) -> Any:
    """TIMESTAMP2 seconds not in the column's cache: the aware UTC datetime, or the zero timestamp's text
    (`values.timestamp_value`), cached by `sec` as `_datetime2_miss` does."""
    if sec == 0:
        text = V.timestamp_value(0, us, fsp)
        return _cache(cache, sec, text) if fsp == 0 else text
    v = _datetime.fromtimestamp(sec, V.UTC)
    if us:
        v = _datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, us, V.UTC)
    _cache(cache, sec, v if fsp == 0 else (v.year, v.month, v.day, v.hour, v.minute, v.second))
    return v


def _temporal_lines(i: int, fsp: int, ns: dict[str, Any], size: int, miss: Callable[..., Any], tz: str) -> list[str]:
    """DATETIME2 and TIMESTAMP2 from a per-column cache by their whole seconds (rows of a transaction often
    share them): without fractional digits the value itself, else its fields, the datetime built from them and
    the microseconds (datetime.replace costs four times as much)."""
    ns[f"C{i}"], ns[f"M{i}"], ns["_mk"], ns["_UTC"] = {}, miss, _datetime, V.UTC
    n = (fsp + 1) // 2
    unpack, values, nbytes = _be_fields([size, n] if n else [size], ns, f"S{i}")
    us = "0" if n == 0 else values[1] if n == 3 else f"{values[1]} * {10 ** (6 - 2 * n)}"
    head = [unpack, f"x = {values[0]}", f"us = {us}", f"o += {nbytes}"]
    if fsp == 0:
        return [*head, f"v{i} = C{i}.get(x)", f"if v{i} is None:", f"    v{i} = M{i}(x, 0, C{i}, 0)"]
    return [*head, f"t = C{i}.get(x)", f"v{i} = M{i}(x, us, C{i}, {fsp}) if t is None else _mk(*t, us{tz})"]


def _datetime2_lines(i: int, fsp: int, ns: dict[str, Any]) -> list[str]:
    """DATETIME2(fsp): naive datetimes, or the server's text for zero and partial dates
    (`values.decode_datetime2` is the reference)."""
    return _temporal_lines(i, fsp, ns, 5, _datetime2_miss, "")


def _timestamp2_lines(i: int, fsp: int, ns: dict[str, Any]) -> list[str]:
    """TIMESTAMP2(fsp): aware UTC datetimes whatever the local zone, or the zero timestamp's text
    (`values.decode_timestamp2` is the reference)."""
    return _temporal_lines(i, fsp, ns, 4, _timestamp2_miss, ", _UTC")


def _date_lines(i: int, ns: dict[str, Any]) -> list[str]:
    """DATE (3 bytes, little-endian): the value from a per-column cache (`values.decode_date` is the rule)."""
    ns[f"C{i}"], ns[f"S{i}"] = {}, struct.Struct("<HB").unpack_from
    ns["_date"], ns["_cache"] = V.decode_date, _cache
    return [f"t0, t1 = S{i}(b, o)",
            "x = t0 | t1 << 16",
            "o += 3",
            f"v{i} = C{i}.get(x)",
            f"if v{i} is None:",
            f"    v{i} = _cache(C{i}, x, _date(x))"]


def _reader_from_lines(lines: list[str], ns: dict[str, Any], name: str) -> ColumnReader:
    """One column's reader compiled from its inline lines (written for column 0)."""
    src = "\n".join(["def read(b, o):", *("    " + x for x in lines), "    return v0, o"])
    ns.setdefault("_int_from", int.from_bytes)
    exec(compile(src, f"<{name} reader>", "exec"), ns)  # generated above
    return ns["read"]


def _decimal_reader(precision: int, scale: int) -> ColumnReader:
    """A reader of packed DECIMAL(precision, scale) values (the generated row function inlines the same)."""
    ns: dict[str, Any] = {}
    return _reader_from_lines(_decimal_lines(0, precision, scale, ns), ns, f"decimal({precision},{scale})")


def _datetime2_reader(fsp: int) -> ColumnReader:
    ns: dict[str, Any] = {}
    return _reader_from_lines(_datetime2_lines(0, fsp, ns), ns, f"datetime({fsp})")


def _timestamp2_reader(fsp: int) -> ColumnReader:
    ns: dict[str, Any] = {}
    return _reader_from_lines(_timestamp2_lines(0, fsp, ns), ns, f"timestamp({fsp})")


def _date_reader() -> ColumnReader:
    ns: dict[str, Any] = {}
    return _reader_from_lines(_date_lines(0, ns), ns, "date")


# struct codes of the fixed-width little-endian numbers (signed; upper case for UNSIGNED)
_FIXED = {FT.TINY: "b", FT.SHORT: "h", FT.LONG: "i", FT.LONGLONG: "q"}


def _struct_code(t: int, col: Column) -> str | None:
    """The struct code of a fixed-width little-endian number column (None for other types)."""
    if t in _FIXED:
        return _FIXED[t].upper() if col.unsigned else _FIXED[t]
    if t == FT.FLOAT:
        return "f"
    if t == FT.DOUBLE:
        return "d"
    return None


def _inline_lines(i: int, tm: Any, col: Column, ns: dict[str, Any]) -> list[str] | None:
    """Lines that decode column i inline (None: through its `column_reader`)."""
    t = tm.type
    code = _struct_code(t, col)
    if code is not None:
        ns[f"U{i}"] = struct.Struct("<" + code).unpack_from
        return [f"v{i}, = U{i}(b, o)", f"o += {struct.calcsize(code)}"]
    if t == FT.INT24:
        return [f"v{i} = _int_from(b[o:o + 3], 'little', signed={not col.unsigned})", "o += 3"]
    if t == FT.NEWDECIMAL:
        return _decimal_lines(i, tm.precision, tm.decimals, ns)
    if t == FT.DATETIME2:
        return _datetime2_lines(i, tm.fsp, ns)
    if t == FT.TIMESTAMP2:
        return _timestamp2_lines(i, tm.fsp, ns)
    if t == FT.DATE or t == FT.NEWDATE:
        return _date_lines(i, ns)
    text = _short_text(tm, col)
    if text is not None:
        skip, encoding, strip = text
        length = "b[o]" if skip == 1 else "b[o] | b[o + 1] << 8"
        ns[f"E{i}"] = encoding
        value = f"b[o + {skip}:o + {skip} + ln]" + (f".decode(E{i})" if encoding else "")
        if strip:
            value += ".rstrip(' ')"
        return [f"ln = {length}", f"v{i} = {value}", f"o += {skip} + ln"]
    return None


def _short_text(tm: Any, col: Column) -> tuple[int, str | None, bool] | None:
    """How a VARCHAR/CHAR/VARBINARY column is decoded inline (None: another type, or BINARY and MariaDB's
    binary-stored types, read by their `column_reader`): (bytes of its length, its codec or None for bytes,
    whether trailing spaces are stripped, as SELECT returns CHAR)."""
    if tm.type not in (FT.VARCHAR, FT.VAR_STRING, FT.STRING) or col.data_type == "binary" or \
            col.data_type in _RAW_BYTES_TYPES:
        return None
    encoding = None if col.is_binary else V.python_encoding(col.charset)
    return (1 if tm.max_length <= 255 else 2), encoding, bool(encoding) and col.data_type == "char"


RowFunctions = tuple[Callable[[bytes, int], "tuple[dict[str, Any], int]"],
                     Callable[[bytes, int, int], "list[dict[str, Any]]"],
                     Callable[[bytes, int, int], "list[tuple[dict[str, Any], dict[str, Any]]]"]]


def compile_row_functions(tm_columns: list, schema: TableSchema, nullable: bytes | None, where: str
                          ) -> RowFunctions:
    """Generate straight-line code that decodes one row image: numbers, short strings, DECIMAL, DATE,
    DATETIME2 and TIMESTAMP2 read inline, other types through `column_reader` functions; NULL checks only for
    nullable columns; consecutive NOT NULL fixed-width numbers read by one struct unpack. Three functions share
    that code: `row(b, o)` -> (row, offset after it), `rows(b, o, end)` -> the rows up to `end` and
    `pairs(b, o, end)` -> the (before, after) pairs up to `end` (no call per row)."""
    ns: dict[str, Any] = {"_int_from": int.from_bytes}
    n = len(tm_columns)
    nb = (n + 7) // 8

    def is_nullable(i: int) -> bool:
        return nullable is None or bool(nullable[i // 8] >> (i % 8) & 1)

    body: list[str] = []  # one row image at `o` into v0, v1, ...; `o` after it
    if any(is_nullable(i) for i in range(n)):
        body.append("nulls = b[o]" if nb == 1 else f"nulls = _int_from(b[o:o + {nb}], 'little')")
    body.append(f"o += {nb}")
    run: list[tuple[int, str]] = []  # consecutive NOT NULL fixed-width numbers: (column, struct code)

    def end_run() -> None:
        if run:
            first, codes = run[0][0], "".join(c for _, c in run)
            ns[f"S{first}"] = struct.Struct("<" + codes).unpack_from
            body.append(f"{''.join(f'v{j}, ' for j, _ in run)}= S{first}(b, o)")
            body.append(f"o += {struct.calcsize('<' + codes)}")
            run.clear()

    for i, (tm, col) in enumerate(zip(tm_columns, schema.columns, strict=False)):
        code = _struct_code(tm.type, col)
        if code is not None and not is_nullable(i):
            run.append((i, code))
            continue
        end_run()
        lines = _inline_lines(i, tm, col, ns)
        if lines is None:
            ns[f"R{i}"] = column_reader(tm, col, where)
            lines = [f"v{i}, o = R{i}(b, o)"]
        if is_nullable(i):
            body += [f"if nulls & {1 << i}:", f"    v{i} = None", "else:", *("    " + x for x in lines)]
        else:
            body += lines
    end_run()
    row = "{" + ", ".join(f"{c.name!r}: v{i}" for i, c in enumerate(schema.columns)) + "}"

    def indent(depth: int) -> list[str]:
        return [" " * 4 * depth + x for x in body]

    src = ["def row(b, o):", *indent(1), f"    return {row}, o",
           "def rows(b, o, end):", "    out = []", "    add = out.append", "    while o < end:", *indent(2),
           f"        add({row})", "    return out",
           "def pairs(b, o, end):", "    out = []", "    add = out.append", "    while o < end:", *indent(2),
           f"        before = {row}", *indent(2), f"        add((before, {row}))", "    return out"]
    exec(compile("\n".join(src), f"<row decoder {where}>", "exec"), ns)  # generated above
    return ns["row"], ns["rows"], ns["pairs"]


# RowProgram's op kinds (`_rowimage.c`)
_K_PY, _K_INT, _K_FLOAT, _K_DOUBLE, _K_DECIMAL, _K_DATETIME2, _K_TIMESTAMP2, _K_DATE, _K_TEXT = range(9)
_INT_WIDTHS = {"b": 1, "h": 2, "i": 4, "q": 8}
_C_DECIMAL_DIGITS = 18  # DECIMALs of more digits are read by their Python reader (the C code's arithmetic is 64-bit)


def compiled_program(tm_columns: list, schema: TableSchema, nullable: bytes | None, where: str) -> Any:
    """The C module's `RowProgram` for the row images `compile_row_functions` decodes (None without the module):
    each column's op chosen by the same rules as `_inline_lines`, the others read by their `column_reader`."""
    if _RowProgram is None or len(tm_columns) != len(schema.columns):  # (a mismatch is refused before this)
        return None
    ops: list[tuple[Any, ...]] = []
    for i, (tm, col) in enumerate(zip(tm_columns, schema.columns, strict=True)):
        t = tm.type
        null = int(nullable is None or bool(nullable[i // 8] >> (i % 8) & 1))
        code = _struct_code(t, col)
        if code is not None:
            if code in "fd":
                ops.append((_K_FLOAT if code == "f" else _K_DOUBLE, null, 0, 0, None, None, None))
            else:
                ops.append((_K_INT, null, _INT_WIDTHS[code.lower()], int(code.isupper()), None, None, None))
        elif t == FT.INT24:
            ops.append((_K_INT, null, 3, int(bool(col.unsigned)), None, None, None))
        elif t == FT.NEWDECIMAL and tm.precision <= _C_DECIMAL_DIGITS:
            p, s = tm.precision, tm.decimals
            negative_zero = V.Decimal("-0" + ("." + "0" * s if s else ""))
            ops.append((_K_DECIMAL, null, p, s, _DECIMAL_CONTEXT.scaleb if s else V.Decimal, negative_zero, None))
        elif t == FT.DATETIME2:
            ops.append((_K_DATETIME2, null, tm.fsp, 0, _datetime2_miss, {}, None))
        elif t == FT.TIMESTAMP2:
            ops.append((_K_TIMESTAMP2, null, tm.fsp, 0, _timestamp2_miss, {}, V.UTC))
        elif t == FT.DATE or t == FT.NEWDATE:
            ops.append((_K_DATE, null, 0, 0, V.decode_date, None, None))
        elif (text := _short_text(tm, col)) is not None:
            skip, encoding, strip = text
            ops.append((_K_TEXT, null, skip, int(strip), encoding, None, None))
        else:
            ops.append((_K_PY, null, 0, 0, column_reader(tm, col, where), None, None))
    return _RowProgram(tuple(schema.column_names), tuple(ops), (len(tm_columns) + 7) // 8)


class RowDecoder:
    """Decodes the row images of rows events for one table map + schema (`compiled`: by the C module's
    `RowProgram` where it is built, the generated Python code for what it hands back)."""

    __slots__ = ("schema", "names", "row", "_rows", "_pairs", "_program", "ncols", "full_bitmap", "where")

    def __init__(self, tm_columns: list, schema: TableSchema, where: str, nullable: bytes | None = None,
                 compiled: bool = True) -> None:
        self.schema = schema
        self.where = where
        self.names = schema.column_names
        self.ncols = len(tm_columns)
        self.row, self._rows, self._pairs = compile_row_functions(tm_columns, schema, nullable, where)
        self._program = compiled_program(tm_columns, schema, nullable, where) if compiled else None
        full = (1 << self.ncols) - 1
        self.full_bitmap = full.to_bytes((self.ncols + 7) // 8, "little")

    def check_bitmap(self, bitmap: bytes, where: str) -> None:
        if bytes(bitmap) != self.full_bitmap:
            raise SourceError(
                f"{where}: the rows event for {self.schema.full_name} does not carry every column; "
                "set binlog_row_image=FULL on the source")

    def _bad_text(self, e: UnicodeDecodeError, where: str) -> SchemaMismatchError:
        return SchemaMismatchError(
            f"{where}: a text column of {self.schema.full_name} holds bytes that are not valid in its "
            f"character set ({e.reason}); the tracked schema's character set is probably wrong")

    def rows(self, b: bytes, o: int, end: int, where: str = "") -> list[dict[str, Any]]:
        """Single-image rows (WRITE and DELETE events) from offset `o` to `end`."""
        try:
            if self._program is not None:
                out = self._program.rows(b, o, end)
                if out is not None:
                    return out
            return self._rows(b, o, end)
        except UnicodeDecodeError as e:
            raise self._bad_text(e, where or self.where) from None

    def row_pairs(self, b: bytes, o: int, end: int, where: str = "") -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(before, after) pairs of UPDATE events."""
        try:
            if self._program is not None:
                out = self._program.pairs(b, o, end)
                if out is not None:
                    return out
            return self._pairs(b, o, end)
        except UnicodeDecodeError as e:
            raise self._bad_text(e, where or self.where) from None

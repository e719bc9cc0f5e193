"""Decoding the rows of a rows event with the layout of its table map and the tracked schema's meaning.

A `RowDecoder` is compiled once per (table map, schema) pair: one small function per column, chosen from
the column's binlog type code and metadata, closed over the schema's signedness, character set and
ENUM/SET members. Decoding a row is then a loop over those functions on the event's bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime as _datetime
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as FT

from obsync.connectors.mysql.binlog import values as V
from obsync.core.errors import SchemaMismatchError, SourceError
from obsync.core.schema import Column, TableSchema

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
        return lambda b, o: (V.decode_date(b[o] | b[o + 1] << 8 | b[o + 2] << 16), o + 3)
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


def _datetime2_reader(fsp: int) -> ColumnReader:
    """DATETIME2 specialised for its fractional digits (values.decode_datetime2 is the reference)."""
    n = (fsp + 1) // 2
    mul = 10 ** (6 - 2 * n)
    size = 5 + n
    mk = _datetime

    def read(b: bytes, o: int) -> tuple[Any, int]:
        x = int.from_bytes(b[o:o + 5], "big") - 0x8000000000
        us = int.from_bytes(b[o + 5:o + size], "big") * mul if n else 0
        ymd = x >> 17
        ym = ymd >> 5
        try:
            return mk(ym // 13, ym % 13, ymd & 31, (x >> 12) & 31, (x >> 6) & 63, x & 63, us), o + size
        except ValueError:
            return V.decode_datetime2(b, o, fsp)
    return read


def _timestamp2_reader(fsp: int) -> ColumnReader:
    """TIMESTAMP2 specialised for its fractional digits: aware UTC datetimes, whatever the local zone."""
    n = (fsp + 1) // 2
    mul = 10 ** (6 - 2 * n)
    size = 4 + n
    from_ts = _datetime.fromtimestamp
    utc = V.UTC

    def read(b: bytes, o: int) -> tuple[Any, int]:
        sec = int.from_bytes(b[o:o + 4], "big")
        us = int.from_bytes(b[o + 4:o + size], "big") * mul if n else 0
        if sec == 0:
            return V.timestamp_value(sec, us, fsp), o + size
        v = from_ts(sec, utc)
        return (v.replace(microsecond=us) if us else v), o + size
    return read


def _decimal_reader(precision: int, scale: int) -> ColumnReader:
    """A packed DECIMAL read as one big integer and split by shifts (values.decode_decimal is the
    reference; this is about 5x faster)."""
    size = V.decimal_size(precision, scale)
    intg = precision - scale
    lead_bytes = V._DIG2BYTES[intg % 9]
    tail_digits = scale % 9
    tail_bytes = V._DIG2BYTES[tail_digits]
    # fields from the most significant end: (shift, mask, digits)
    fields: list[tuple[int, int, int]] = []
    bits = size * 8
    if lead_bytes:
        bits -= lead_bytes * 8
        fields.append((bits, (1 << lead_bytes * 8) - 1, intg % 9))
    for _ in range(intg // 9):
        bits -= 32
        fields.append((bits, 0xFFFFFFFF, 9))
    n_int = len(fields)
    for _ in range(scale // 9):
        bits -= 32
        fields.append((bits, 0xFFFFFFFF, 9))
    if tail_bytes:
        bits -= tail_bytes * 8
        fields.append((bits, (1 << tail_bytes * 8) - 1, tail_digits))
    int_fields = tuple((sh, m) for sh, m, _ in fields[:n_int])
    frac_fields = tuple((sh, m, 10 ** d) for sh, m, d in fields[n_int:])
    all_ones = (1 << size * 8) - 1
    sign_bit = 1 << (size * 8 - 1)
    frac_fmt = "%0" + str(scale) + "d"
    dec = V.Decimal

    def read(b: bytes, o: int) -> tuple[Any, int]:
        x = int.from_bytes(b[o:o + size], "big")
        neg = not (x & sign_bit)
        if neg:
            x ^= all_ones
        x ^= sign_bit
        ip = 0
        for sh, m in int_fields:
            ip = ip * 1000000000 + (x >> sh & m)
        if scale:
            fp = 0
            for sh, m, mul in frac_fields:
                fp = fp * mul + (x >> sh & m)
            text = f"{ip}.{frac_fmt % fp}"
        else:
            text = str(ip)
        return dec("-" + text if neg else text), o + size
    return read


_FIXED = {FT.TINY: (1, "b"), FT.SHORT: (2, "h"), FT.LONG: (4, "i"), FT.LONGLONG: (8, "q")}


def compile_row_function(tm_columns: list, schema: TableSchema, nullable: bytes | None, where: str
                         ) -> Callable[[bytes, int], tuple[dict[str, Any], int]]:
    """Generate straight-line code that decodes one row image: fixed-size numbers and short strings are
    read inline, other types through `column_reader` functions; NULL checks only for nullable columns."""
    ns: dict[str, Any] = {"_int_from": int.from_bytes}
    n = len(tm_columns)
    nb = (n + 7) // 8
    lines = ["def row(b, o):",
             f"    nulls = _int_from(b[o:o + {nb}], 'little')",
             f"    o += {nb}"]
    for i, (tm, col) in enumerate(zip(tm_columns, schema.columns, strict=False)):
        t = tm.type
        body: list[str]
        if t in _FIXED or t in (FT.FLOAT, FT.DOUBLE):
            if t in _FIXED:
                size, code = _FIXED[t]
                code = code.upper() if col.unsigned else code
            else:
                size, code = (4, "f") if t == FT.FLOAT else (8, "d")
            ns[f"U{i}"] = struct.Struct("<" + code).unpack_from
            body = [f"v{i} = U{i}(b, o)[0]", f"o += {size}"]
        elif t == FT.INT24:
            body = [f"v{i} = _int_from(b[o:o + 3], 'little', signed={not col.unsigned})", "o += 3"]
        elif t == FT.NEWDECIMAL:
            ns[f"R{i}"] = _decimal_reader(tm.precision, tm.decimals)
            body = [f"v{i}, o = R{i}(b, o)"]
        elif t in (FT.VARCHAR, FT.VAR_STRING, FT.STRING) and not (
                col.data_type == "binary" or col.data_type in _RAW_BYTES_TYPES):
            length = "b[o]" if tm.max_length <= 255 else "b[o] | b[o + 1] << 8"
            skip = 1 if tm.max_length <= 255 else 2
            encoding = None if col.is_binary else V.python_encoding(col.charset)
            ns[f"E{i}"] = encoding
            value = f"b[o + {skip}:o + {skip} + ln]" + (f".decode(E{i})" if encoding else "")
            if encoding and col.data_type == "char":  # as SELECT returns CHAR: without trailing spaces
                value += ".rstrip(' ')"
            body = [f"ln = {length}", f"v{i} = {value}", f"o += {skip} + ln"]
        else:
            ns[f"R{i}"] = column_reader(tm, col, where)
            body = [f"v{i}, o = R{i}(b, o)"]
        if nullable is None or nullable[i // 8] >> (i % 8) & 1:
            lines.append(f"    if nulls & {1 << i}:")
            lines.append(f"        v{i} = None")
            lines.append("    else:")
            lines.extend("        " + x for x in body)
        else:
            lines.extend("    " + x for x in body)
    items = ", ".join(f"{c.name!r}: v{i}" for i, c in enumerate(schema.columns))
    lines.append(f"    return {{{items}}}, o")
    exec(compile("\n".join(lines), f"<row decoder {where}>", "exec"), ns)  # generated above
    return ns["row"]


class RowDecoder:
    """Decodes the row images of rows events for one table map + schema."""

    __slots__ = ("schema", "names", "row", "ncols", "full_bitmap", "where")

    def __init__(self, tm_columns: list, schema: TableSchema, where: str, nullable: bytes | None = None) -> None:
        self.schema = schema
        self.where = where
        self.names = schema.column_names
        self.ncols = len(tm_columns)
        self.row = compile_row_function(tm_columns, schema, nullable, where)
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
        row = self.row
        out = []
        try:
            while o < end:
                r, o = row(b, o)
                out.append(r)
        except UnicodeDecodeError as e:
            raise self._bad_text(e, where or self.where) from None
        return out

    def row_pairs(self, b: bytes, o: int, end: int, where: str = "") -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(before, after) pairs of UPDATE events."""
        row = self.row
        out = []
        try:
            while o < end:
                before, o = row(b, o)
                after, o = row(b, o)
                out.append((before, after))
        except UnicodeDecodeError as e:
            raise self._bad_text(e, where or self.where) from None
        return out

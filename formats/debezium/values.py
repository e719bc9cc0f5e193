"""Canonical column values (see `obsync.core.schema`) as the Debezium MySQL connector renders them.

Two renderings per column, chosen once per column from its kind (`kinds.column_kind`):

- *Connect* values, what a Connect `Struct` holds: int, float, bool, str, bytes, `decimal.Decimal` (with the
  column's exact scale) for Decimal-typed fields, dict for geometry structs. The Avro format encodes these.
- *JSON* values, what the JsonConverter writes: the same, except bytes and Decimal-typed fields as Base64 (a
  Decimal as its unscaled value in big-endian two's complement, minimal length, like Java's
  `BigInteger.toByteArray`).

Rules, as in Debezium's `BinlogValueConverters` with default settings (sources checked: Debezium's
`JdbcValueConverters`, `BinlogValueConverters`, `RowDeserializers`, `ZonedTimestamp`, `SpecialValueDecimal`):
- BIGINT UNSIGNED in `long` mode: the 64-bit pattern as a signed long (18446744073709551615 is -1), as
  Debezium delivers it from the binlog and from JDBC (`BigInteger.longValue()`); `precise`: a Decimal.
- FLOAT (single precision): the shortest decimal that reads back as the same float32 (what Java's
  `Float.toString` prints), DOUBLE as Python's shortest repr.
- DECIMAL `string` mode: Java's `BigDecimal.toString()` of the value at the column's scale, which uses
  E-notation below 1e-6 (`0E-10` is zero in DECIMAL(20,10)); Python's `str(Decimal)` follows the same rule.
- BIT(n), n > 1: little-endian bytes, padded to (n+7)//8 bytes; BIT(1): boolean.
- BINARY(n): right-padded with zero bytes to n (Debezium's DBZ-254 fix).
- DATE: days since 1970-01-01; DATETIME(0-3): epoch milliseconds, DATETIME(4-6): epoch microseconds (both read
  as UTC, floored); TIME: microseconds, negative allowed; YEAR: the int.
- TIMESTAMP: ISO-8601 in UTC ending in `Z`, with exactly `fsp` fraction digits when the column has them
  (`2024-01-01T22:04:05.120Z` for TIMESTAMP(3)), none for TIMESTAMP(0).
- Zero dates ('0000-00-00', which arrive as strings): DATE and DATETIME give null when the column is nullable,
  else 0 (the epoch), as Debezium's fallback does; a zero TIMESTAMP is the epoch, which is what the binlog
  holds for it.
"""

from __future__ import annotations

import datetime as dt
import struct as _struct
from binascii import b2a_base64
from collections.abc import Callable
from decimal import Context, Decimal, Inexact
from typing import Any

from obsync.core.errors import SchemaMismatchError
from obsync.core.schema import Column
from obsync.formats.debezium.config import DebeziumConfig
from obsync.formats.debezium.kinds import column_kind

Convert = Callable[[Any], Any]

# What the compiled JSON row writer (`obsync/core/_render.c`, JsonRow) does itself for a JSON converter, as (kind,
# param): 0 writes the value as it is (no converter), 1 calls the converter and writes its result; the others
# write exact `date` / naive `datetime` / UTC `datetime` / plain `Decimal` values themselves and hand anything
# else (zero dates, other zones, exponents) to the converter, so the JSON is always the converter's
# (tests/unit/test_format_debezium.py compares both).
JSON_ASIS, JSON_CALL, JSON_DATE, JSON_DATETIME, JSON_TIMESTAMP, JSON_DECIMAL, CONNECT_DECIMAL = range(7)


def _compiled(kind: int, param: int, convert: Convert) -> Convert:
    """`convert`, marked as one the compiled row writer writes as `kind` with `param`."""
    convert.compiled_json = (kind, param)  # type: ignore[attr-defined]  # a function's attribute
    return convert


def compiled_json_kind(convert: Convert | None) -> tuple[int, int]:
    """(kind, param) of a JSON converter (None: the value as it is) for the compiled row writer."""
    if convert is None:
        return JSON_ASIS, 0
    return getattr(convert, "compiled_json", (JSON_CALL, 0))

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_UTC = dt.UTC
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_F32 = _struct.Struct("<f")
_WIDE = Context(prec=200, traps=[Inexact])  # exact for DECIMAL(65,30) and beyond
_WIDE_LIMIT = 10**199  # an integer below it has fewer digits than _WIDE's precision
_DAY_US = 86_400_000_000


# ------------------------------------------------------------------------------------------- numbers


def b64(b: bytes) -> str:
    return b2a_base64(b, newline=False).decode("ascii")


def wrap_int64(v: int) -> int:
    """An unsigned 64-bit value as Java's signed long of the same bits."""
    return v - (1 << 64) if v >= (1 << 63) else v


def shortest_float32(v: float) -> float:
    """The double whose shortest repr is the shortest decimal that reads back as float32(v)."""
    x = _F32.unpack(_F32.pack(v))[0]
    if x != x or x in (float("inf"), float("-inf")):
        return x
    for p in range(1, 10):
        s = format(x, f".{p}g")
        if _F32.unpack(_F32.pack(float(s)))[0] == x:
            return float(s)
    return x


def unscaled(v: Decimal, scale: int) -> int:
    """The unscaled integer of `v` at `scale` (exact; raises if `v` has more fraction digits than `scale`)."""
    try:  # the value's exact ratio: the same integer, several times faster than scaleb at 200 digits
        num, den = v.as_integer_ratio()
    except (ValueError, OverflowError):  # NaN, infinities: the decimal context's error, below
        pass
    else:
        n = num * 10**scale
        rest = 0
        if den != 1:
            n, rest = divmod(n, den)
        if not rest and -_WIDE_LIMIT < n < _WIDE_LIMIT:
            return n
    try:
        return int(v.scaleb(scale, _WIDE).to_integral_exact(context=_WIDE))
    except Inexact:
        raise ValueError(f"{v} has more than {scale} fraction digits") from None


def twos_complement(n: int) -> bytes:
    """Big-endian two's complement of `n` in the fewest bytes (Java `BigInteger.toByteArray`)."""
    return n.to_bytes(((n if n >= 0 else ~n).bit_length() // 8) + 1, "big", signed=True)


def decimal_base64(v: Decimal, scale: int) -> str:
    """A Connect Decimal as the JsonConverter writes it (`decimal.format=BASE64`)."""
    return b64(twos_complement(unscaled(Decimal(v), scale)))


def _decimal_at_scale(scale: int) -> Convert:
    def convert(v: Any) -> Decimal:
        return Decimal(unscaled(v if type(v) is Decimal else Decimal(v), scale)).scaleb(-scale, _WIDE)

    # the compiled row's `values` keep a Decimal that this would give back equal in sign, digits and exponent
    return _compiled(CONNECT_DECIMAL, scale, convert)


def _decimal_json(scale: int) -> Convert:
    def convert(v: Any) -> str:  # a Decimal as it is: Decimal(v) would copy it, digits and exponent alike
        return b64(twos_complement(unscaled(v if type(v) is Decimal else Decimal(v), scale)))

    return _compiled(JSON_DECIMAL, scale, convert)


def _decimal_string(scale: int) -> Convert:
    def convert(v: Any) -> str:
        return str(Decimal(unscaled(Decimal(v), scale)).scaleb(-scale, _WIDE))

    return convert


def _decimal_double(v: Any) -> float:
    return float(v)


# ------------------------------------------------------------------------------------------- bits and bytes


def _bits(width: int) -> Convert:
    size = (width + 7) // 8

    def convert(v: Any) -> bytes:
        n = v if type(v) is int else int.from_bytes(bytes(v), "big")
        return n.to_bytes(size, "little")

    return convert


def _bit_bool(v: Any) -> bool:
    return bool(v if type(v) is int else int.from_bytes(bytes(v), "big"))


def _padded(length: int) -> Convert:
    def convert(v: Any) -> bytes:
        b = bytes(v)
        return b + b"\0" * (length - len(b)) if len(b) < length else b

    return convert


def _as_bytes(v: Any) -> bytes:
    return v if type(v) is bytes else bytes(v) if not isinstance(v, str) else v.encode()


# ------------------------------------------------------------------------------------------- temporal


def _zero_date(nullable: bool) -> Any:
    return None if nullable else 0


def _date(nullable: bool) -> Convert:
    fallback = _zero_date(nullable)

    def convert(v: Any) -> int | None:
        if type(v) is str:
            return fallback
        return v.toordinal() - _EPOCH_ORDINAL

    return _compiled(JSON_DATE, 0, convert)


def epoch_micros(v: dt.datetime) -> int:
    """Microseconds since the epoch of a datetime read as UTC (an aware one is converted to UTC first)."""
    if v.tzinfo is not None:
        v = v.astimezone(_UTC)
    return ((v.toordinal() - _EPOCH_ORDINAL) * 86400 + v.hour * 3600 + v.minute * 60 + v.second) * 1_000_000 \
        + v.microsecond


def _datetime(nullable: bool, unit: int) -> Convert:
    fallback = _zero_date(nullable)

    def convert(v: Any) -> int | None:
        if type(v) is str:
            return fallback
        if type(v) is dt.date:
            v = dt.datetime(v.year, v.month, v.day)
        return epoch_micros(v) // unit

    return _compiled(JSON_DATETIME, unit, convert)


def _time(v: dt.timedelta) -> int:
    return v.days * _DAY_US + v.seconds * 1_000_000 + v.microseconds


def zoned_timestamp(v: Any, fsp: int) -> str:
    """A TIMESTAMP value as Debezium's ZonedTimestamp: UTC, `Z`, exactly `fsp` fraction digits (minimal for 0)."""
    if type(v) is str:  # a zero TIMESTAMP: 0 seconds in the binlog
        v = _EPOCH_UTC
    elif v.tzinfo is not None and v.utcoffset():
        v = v.astimezone(_UTC)
    text = v.isoformat("T", "microseconds")[:26]  # naive is read as UTC; MySQL's range has 4-digit years
    if fsp > 0:  # MySQL allows 0 to 6
        return text[: 20 + fsp] + "Z"
    if v.microsecond:
        return text.rstrip("0") + "Z"
    return text[:19] + "Z"


def _timestamp(fsp: int) -> Convert:
    def convert(v: Any) -> str:
        return zoned_timestamp(v, fsp)

    return _compiled(JSON_TIMESTAMP, fsp, convert)


# ------------------------------------------------------------------------------------------- spatial


def _geometry_parts(v: Any) -> tuple[bytes, int | None]:
    """MySQL's internal geometry (4-byte little-endian SRID, then WKB) as (wkb, srid or None for 0)."""
    b = bytes(v)
    srid = int.from_bytes(b[:4], "little")
    return b[4:], (srid or None)


def _geometry(encode_bytes: Convert) -> Convert:
    def convert(v: Any) -> dict[str, Any]:
        wkb, srid = _geometry_parts(v)
        return {"wkb": encode_bytes(wkb), "srid": srid}

    return convert


def _point(encode_bytes: Convert) -> Convert:
    def convert(v: Any) -> dict[str, Any]:
        wkb, srid = _geometry_parts(v)
        order = "<" if wkb[0] == 1 else ">"
        x, y = _struct.unpack(order + "dd", wkb[5:21])
        return {"x": x, "y": y, "wkb": encode_bytes(wkb), "srid": srid}

    return convert


def _identity(v: Any) -> Any:
    return v


def _other(v: Any) -> str:
    return b64(bytes(v)) if isinstance(v, (bytes, bytearray, memoryview)) else str(v)


# ------------------------------------------------------------------------------------------- choice per column


def converters(column: Column, cfg: DebeziumConfig) -> tuple[Convert | None, Convert | None]:
    """(Connect converter, JSON converter) of `column`'s non-NULL values; None means the value is used as is."""
    kind = column_kind(column, cfg)
    if kind in ("int16", "int32", "int64", "float64", "string", "json", "enum", "set", "year"):
        return None, None
    if kind == "uint64_long":
        return wrap_int64, wrap_int64
    if kind == "uint64_precise":
        return _decimal_at_scale(0), _decimal_json(0)
    if kind == "float32":
        return shortest_float32, shortest_float32
    if kind == "decimal_precise":
        scale = column.scale or 0
        return _decimal_at_scale(scale), _decimal_json(scale)
    if kind == "decimal_string":
        f = _decimal_string(column.scale or 0)
        return f, f
    if kind == "decimal_double":
        return _decimal_double, _decimal_double
    if kind == "bool_bit":
        return _bit_bool, _bit_bool
    if kind == "bits":
        to_bytes = _bits(column.bit_width)
        return to_bytes, lambda v: b64(to_bytes(v))
    if kind == "binary_fixed" and column.precision:
        pad = _padded(column.precision)
        return pad, lambda v: b64(pad(v))
    if kind in ("bytes", "binary_fixed"):
        return _as_bytes, lambda v: b64(_as_bytes(v))
    if kind == "date":
        f = _date(column.nullable)
        return f, f
    if kind == "time":
        return _time, _time
    if kind in ("datetime_ms", "datetime_us"):
        f = _datetime(column.nullable, 1000 if kind == "datetime_ms" else 1)
        return f, f
    if kind == "timestamp":
        f = _timestamp(column.fsp)
        return f, f
    if kind == "geometry":
        return _geometry(_identity), _geometry(lambda b: b64(b))
    if kind == "point":
        return _point(_identity), _point(lambda b: b64(b))
    return _other, _other


def explain(table: str, column: Column, value: Any, exc: Exception) -> SchemaMismatchError:
    return SchemaMismatchError(f"column {table}.{column.name} ({column.column_type}) cannot be rendered from a "
                               f"{type(value).__name__} value {value!r:.80}: {exc}")

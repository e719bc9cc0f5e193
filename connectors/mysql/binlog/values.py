"""Binlog row values to canonical values (see the table at the top of `obsync.core.schema`).

Pure functions over the bytes of a rows event, so each rule is unit-testable without a server. The layout of
a value (lengths, fractional digits, decimal precision) always comes from the table-map event; its meaning
(signedness, character set, ENUM/SET members) from the tracked schema, because with
`binlog_row_metadata=MINIMAL` the table map carries none of that.

Why not mysql-replication's own decoder: it returns None for zero and partial dates (indistinguishable from
NULL), 1900 for YEAR 0000, BIT as a '0101' string, SET as an unordered Python set and None for the empty set,
TIMESTAMP as a naive datetime, BINARY(n) without its trailing zero bytes, decodes TIME2 with fractions wrong
for negative values, and costs about three times as much per row.
"""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

from pymysqlreplication.json_binary import parse_json

from obsync.connectors.mysql.values import json_text

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

# MySQL character set -> Python codec; None means "keep bytes".
_ENCODINGS = {
    "binary": None,
    "utf8": "utf-8",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
    "latin1": "cp1252",  # MySQL's latin1 is Windows-1252
    "ascii": "ascii",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
    "sjis": "shift_jis",
    "ujis": "euc_jp",
    "euckr": "euc_kr",
    "eucjpms": "euc_jp",
    "cp932": "cp932",
    "gb2312": "gb2312",
    "gbk": "gbk",
    "gb18030": "gb18030",
    "big5": "big5",
    "latin2": "iso8859-2",
    "latin5": "iso8859-9",
    "latin7": "iso8859-13",
    "greek": "iso8859-7",
    "hebrew": "iso8859-8",
    "tis620": "tis-620",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
}


def python_encoding(charset: str | None) -> str | None:
    """The Python codec for a MySQL character set; None for `binary` (values stay bytes)."""
    if charset is None:
        return "utf-8"
    cs = charset.lower()
    if cs in _ENCODINGS:
        return _ENCODINGS[cs]
    return cs  # e.g. "cp1250" spelled the same; unknown names fail loudly at decode time


# ---- integers, floats, bits -------------------------------------------------------------------------

def round_float32(x: float) -> float:
    """A float as the nearest float32 (what a FLOAT column holds)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bit_value(raw: bytes) -> int:
    """BIT(n): the big-endian bytes as an unsigned int."""
    return int.from_bytes(raw, "big")


def year_value(raw: int) -> int:
    """YEAR's one byte: 0 is the year 0000, else 1900 + n."""
    return 0 if raw == 0 else 1900 + raw


# ---- DECIMAL ----------------------------------------------------------------------------------------

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def decimal_size(precision: int, scale: int) -> int:
    """Bytes of a packed DECIMAL(precision, scale)."""
    intg = precision - scale
    return (intg // 9) * 4 + _DIG2BYTES[intg % 9] + (scale // 9) * 4 + _DIG2BYTES[scale % 9]


def decode_decimal(buf: bytes, off: int, precision: int, scale: int) -> tuple[Decimal, int]:
    """A packed DECIMAL at `off`: (exact value, offset after it). Exact up to 65 digits."""
    size = decimal_size(precision, scale)
    b = bytearray(buf[off:off + size])
    negative = not (b[0] & 0x80)
    b[0] ^= 0x80
    if negative:
        for i in range(size):
            b[i] ^= 0xFF
    intg = precision - scale
    p = 0
    int_digits = []
    lead = _DIG2BYTES[intg % 9]
    if lead:
        int_digits.append(str(int.from_bytes(b[p:p + lead], "big")))
        p += lead
    for _ in range(intg // 9):
        int_digits.append(f"{int.from_bytes(b[p:p + 4], 'big'):09d}")
        p += 4
    frac_digits = []
    for _ in range(scale // 9):
        frac_digits.append(f"{int.from_bytes(b[p:p + 4], 'big'):09d}")
        p += 4
    tail = scale % 9
    if tail:
        frac_digits.append(f"{int.from_bytes(b[p:p + _DIG2BYTES[tail]], 'big'):0{tail}d}")
    text = "".join(int_digits) or "0"
    if scale:
        text += "." + "".join(frac_digits)
    value = Decimal(("-" if negative else "") + text)
    return value, off + size


# ---- temporal ---------------------------------------------------------------------------------------

def fsp_size(fsp: int) -> int:
    """Bytes of the fractional part of TIME2/DATETIME2/TIMESTAMP2 with `fsp` digits."""
    return (fsp + 1) // 2


def _read_frac(buf: bytes, off: int, fsp: int) -> tuple[int, int]:
    """The fractional part in microseconds (unsigned reading) and the new offset."""
    n = (fsp + 1) // 2
    if n == 0:
        return 0, off
    raw = int.from_bytes(buf[off:off + n], "big")
    return raw * (10 ** (6 - 2 * n)), off + n


def format_datetime(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
                    micro: int = 0, fsp: int = 0, *, date_only: bool = False) -> str:
    """A date or datetime as the server prints it (used for zero and partial dates)."""
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if date_only:
        return text
    text += f" {hour:02d}:{minute:02d}:{second:02d}"
    if fsp:
        text += "." + f"{micro:06d}"[:fsp]
    return text


def decode_date(raw: int) -> dt.date | str:
    """DATE's 3-byte little-endian value: a date, or the server's text for zero/partial dates."""
    day = raw & 31
    month = (raw >> 5) & 15
    year = raw >> 9
    try:
        return dt.date(year, month, day)
    except ValueError:
        return format_datetime(year, month, day, date_only=True)


def decode_datetime2(buf: bytes, off: int, fsp: int) -> tuple[dt.datetime | str, int]:
    """DATETIME(fsp) in the 5.6+ format: naive datetime, or the server's text for zero/partial dates."""
    packed = int.from_bytes(buf[off:off + 5], "big") - 0x8000000000
    micro, off = _read_frac(buf, off + 5, fsp)
    ymd = packed >> 17
    hms = packed & 0x1FFFF
    ym = ymd >> 5
    year, month, day = ym // 13, ym % 13, ymd & 31
    hour, minute, second = hms >> 12, (hms >> 6) & 63, hms & 63
    try:
        return dt.datetime(year, month, day, hour, minute, second, micro), off
    except ValueError:
        return format_datetime(year, month, day, hour, minute, second, micro, fsp), off


def decode_datetime_old(raw: int) -> dt.datetime | str:
    """The pre-5.6 8-byte DATETIME (YYYYMMDDhhmmss as an integer)."""
    d, t = divmod(raw, 1000000)
    year, md = divmod(d, 10000)
    month, day = divmod(md, 100)
    hour, ms = divmod(t, 10000)
    minute, second = divmod(ms, 100)
    try:
        return dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return format_datetime(year, month, day, hour, minute, second)


def timestamp_value(seconds: int, micro: int = 0, fsp: int = 0) -> dt.datetime | str:
    """TIMESTAMP: an aware UTC datetime (whatever the process or session zone); 0 is the zero timestamp."""
    if seconds == 0 and micro == 0:
        return format_datetime(0, 0, 0, 0, 0, 0, 0, fsp)
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=micro)


def decode_timestamp2(buf: bytes, off: int, fsp: int) -> tuple[dt.datetime | str, int]:
    seconds = int.from_bytes(buf[off:off + 4], "big")
    micro, off = _read_frac(buf, off + 4, fsp)
    return timestamp_value(seconds, micro, fsp), off


def decode_time2(buf: bytes, off: int, fsp: int) -> tuple[dt.timedelta, int]:
    """TIME(fsp) in the 5.6+ format, negative and fractional values included (MySQL's
    my_time_packed_from_binary)."""
    intpart = int.from_bytes(buf[off:off + 3], "big") - 0x800000
    n = (fsp + 1) // 2
    if n == 0:
        packed = intpart << 24
    elif n == 1:
        frac = buf[off + 3]
        if intpart < 0 and frac:
            intpart += 1
            frac -= 0x100
        packed = (intpart << 24) + frac * 10000
    elif n == 2:
        frac = int.from_bytes(buf[off + 3:off + 5], "big")
        if intpart < 0 and frac:
            intpart += 1
            frac -= 0x10000
        packed = (intpart << 24) + frac * 100
    else:
        packed = int.from_bytes(buf[off:off + 6], "big") - 0x800000000000
    return time_from_packed(packed), off + 3 + n


def time_from_packed(packed: int) -> dt.timedelta:
    """MySQL's packed TIME integer (int part << 24 | microseconds) as a signed timedelta."""
    sign = -1 if packed < 0 else 1
    v = abs(packed)
    hms = v >> 24
    micro = v & 0xFFFFFF
    hour = (hms >> 12) & 0x3FF
    minute = (hms >> 6) & 63
    second = hms & 63
    return sign * dt.timedelta(hours=hour, minutes=minute, seconds=second, microseconds=micro)


def decode_time_old(raw: int) -> dt.timedelta:
    """The pre-5.6 3-byte TIME: a signed integer HHMMSS."""
    if raw >= 0x800000:
        raw -= 0x1000000
    sign = -1 if raw < 0 else 1
    v = abs(raw)
    hours, ms = divmod(v, 10000)
    minutes, seconds = divmod(ms, 100)
    return sign * dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


# ---- strings, ENUM, SET -----------------------------------------------------------------------------

def enum_value(index: int, members: tuple[str, ...]) -> str:
    """ENUM's 1-based index as its member; 0 (an invalid value stored in non-strict mode) is ''."""
    if 1 <= index <= len(members):
        return members[index - 1]
    return ""


def set_value(mask: int, members: tuple[str, ...]) -> str:
    """SET's bit mask as its members joined by ',' in declared order ('' for the empty set)."""
    return ",".join(m for i, m in enumerate(members) if mask >> i & 1)


def pad_binary(value: bytes, length: int | None) -> bytes:
    """BINARY(n): the binlog drops trailing zero bytes that a SELECT returns; put them back."""
    if length and len(value) < length:
        return value + b"\x00" * (length - len(value))
    return value


# ---- JSON -------------------------------------------------------------------------------------------

def decode_json_binary(raw: bytes) -> str | None:
    """MySQL's binary JSON (as in a rows event; OceanBase Binlog Service sends the same) as canonical text,
    through the same `json_text` the snapshot side uses, so both forms of a document compare equal."""
    if not raw:
        return None
    return json_text(parse_json(raw[0], raw[1:]))

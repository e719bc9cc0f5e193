"""Binlog value decoding: the bytes of a rows event to canonical values (no server needed)."""

from __future__ import annotations

import datetime as dt
import os
import random
import struct
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
from pymysqlreplication.constants import FIELD_TYPE as FT

from obsync.connectors.mysql.binlog import rows as rows_module
from obsync.connectors.mysql.binlog import values as V
from obsync.connectors.mysql.binlog.rows import (
    RowDecoder,
    _datetime2_reader,
    _decimal_reader,
    _timestamp2_reader,
    column_reader,
    mismatch_reason,
)
from obsync.core.errors import SchemaMismatchError
from obsync.core.schema import Column, TableSchema

UTC = dt.UTC


def encode_decimal(value: Decimal, precision: int, scale: int) -> bytes:
    """MySQL's decimal2bin, written independently of the decoder under test."""
    sign, digits, exp = value.as_tuple()
    text = f"{value.copy_abs():.{scale}f}"
    ip, _, fp = text.partition(".")
    intg = precision - scale
    ip = ip.rjust(intg, "0")[-intg:] if intg else ""
    out = bytearray()
    lead = intg % 9
    if lead:
        out += int(ip[:lead]).to_bytes(V._DIG2BYTES[lead], "big")
    for k in range(lead, intg, 9):
        out += int(ip[k:k + 9]).to_bytes(4, "big")
    for k in range(0, scale - scale % 9, 9):
        out += int(fp[k:k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(fp[scale - scale % 9:]).to_bytes(V._DIG2BYTES[scale % 9], "big")
    out[0] ^= 0x80
    if sign:
        out = bytearray(b ^ 0xFF for b in out)
    return bytes(out)


@pytest.mark.parametrize("precision,scale,text", [
    (10, 2, "12345678.90"), (10, 2, "-0.01"), (5, 0, "99999"), (5, 0, "-99999"), (1, 1, "0.5"),
    (14, 4, "1234567890.1234"), (65, 30, "-12345678901234567890123456789012345.123456789012345678901234567891"),
    (65, 0, "9" * 65), (65, 30, "0.000000000000000000000000000001"), (20, 10, "0.0000000000"), (18, 9, "-1.500000000"),
])
def test_decimal_is_exact_to_65_digits(precision: int, scale: int, text: str) -> None:
    raw = b"\x00" + encode_decimal(Decimal(text), precision, scale) + b"\xff"
    value, end = V.decode_decimal(raw, 1, precision, scale)
    assert value.as_tuple() == Decimal(text).as_tuple() and end == len(raw) - 1  # digits and scale kept
    fast, end2 = _decimal_reader(precision, scale)(raw, 1)
    assert (fast.as_tuple(), end2) == (value.as_tuple(), end)


def test_the_fast_decimal_reader_agrees_with_the_reference_on_random_values() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        precision = rnd.randint(1, 65)
        scale = rnd.randint(0, min(precision, 30))
        digits = "".join(rnd.choice("0123456789") for _ in range(precision)).lstrip("0") or "0"
        v = Decimal(digits).scaleb(-scale) * rnd.choice((1, -1))
        raw = encode_decimal(v, precision, scale)
        assert V.decode_decimal(raw, 0, precision, scale)[0] == v
        assert _decimal_reader(precision, scale)(raw, 0)[0] == v


def datetime2_bytes(y: int, mo: int, d: int, h: int, mi: int, s: int, us: int, fsp: int) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    hms = (h << 12) | (mi << 6) | s
    packed = ((ymd << 17) | hms) + 0x8000000000
    n = (fsp + 1) // 2
    frac = (us // 10 ** (6 - 2 * n)).to_bytes(n, "big") if n else b""
    return packed.to_bytes(5, "big") + frac


def test_datetime2_values_zero_and_partial_dates() -> None:
    raw = datetime2_bytes(2020, 1, 2, 3, 4, 5, 123456, 6)
    assert V.decode_datetime2(raw, 0, 6) == (dt.datetime(2020, 1, 2, 3, 4, 5, 123456), 8)
    assert V.decode_datetime2(datetime2_bytes(2020, 1, 2, 3, 4, 5, 120000, 2), 0, 2)[0] == \
        dt.datetime(2020, 1, 2, 3, 4, 5, 120000)
    assert V.decode_datetime2(datetime2_bytes(0, 0, 0, 0, 0, 0, 0, 0), 0, 0) == ("0000-00-00 00:00:00", 5)
    assert V.decode_datetime2(datetime2_bytes(0, 0, 0, 0, 0, 0, 0, 3), 0, 3)[0] == "0000-00-00 00:00:00.000"
    assert V.decode_datetime2(datetime2_bytes(2024, 0, 10, 1, 2, 3, 0, 0), 0, 0)[0] == "2024-00-10 01:02:03"


def test_date_and_year() -> None:
    assert V.decode_date((2024 << 9) | (2 << 5) | 29) == dt.date(2024, 2, 29)
    assert V.decode_date(0) == "0000-00-00"
    assert V.decode_date((2020 << 9) | 15) == "2020-00-15"
    assert V.decode_date((2024 << 9) | (2 << 5) | 30) == "2024-02-30"  # ALLOW_INVALID_DATES
    assert (V.year_value(0), V.year_value(1), V.year_value(255)) == (0, 1901, 2155)


@pytest.mark.parametrize("raw,fsp,expected", [
    (bytes.fromhex("800000"), 0, dt.timedelta(0)),
    (bytes.fromhex("7fffff"), 0, -dt.timedelta(seconds=1)),  # -00:00:01
    (bytes.fromhex("7fffffce"), 2, -dt.timedelta(microseconds=500000)),  # -00:00:00.50
    (bytes.fromhex("800001 32"), 2, dt.timedelta(seconds=1, microseconds=500000)),
    (bytes.fromhex("7ffffffc18"), 4, -dt.timedelta(microseconds=100000)),  # -00:00:00.1000
    (bytes.fromhex("7ffffffffffe"), 6, -dt.timedelta(microseconds=2)),
    (bytes.fromhex("b46efb000000"), 6, dt.timedelta(hours=838, minutes=59, seconds=59)),
    (bytes.fromhex("4b9104ffffff"), 6, -dt.timedelta(hours=838, minutes=59, seconds=59, microseconds=1)),
])
def test_time2_negative_and_fractional(raw: bytes, fsp: int, expected: dt.timedelta) -> None:
    raw = raw.replace(b" ", b"")
    value, end = V.decode_time2(raw, 0, fsp)
    assert value == expected and end == len(raw)


def test_time2_matches_mysqls_packing_for_every_sign_and_precision() -> None:
    """Encode like MySQL's my_time_packed_to_binary (C integer semantics) and decode back."""
    def c_mod(a: int, b: int) -> int:
        return a - b * int(a / b)

    rnd = random.Random(3)
    for _ in range(3000):
        fsp = rnd.randint(0, 6)
        us = rnd.randint(0, 999999) // 10 ** (6 - fsp) * 10 ** (6 - fsp) if fsp else 0
        h, m, s = rnd.randint(0, 838), rnd.randint(0, 59), rnd.randint(0, 59)
        sign = rnd.choice((1, -1))
        packed = sign * ((((h << 12) | (m << 6) | s) << 24) + us)
        n = (fsp + 1) // 2
        if n == 0:
            raw = ((packed >> 24) + 0x800000).to_bytes(3, "big")
        elif n == 1:
            raw = ((packed >> 24) + 0x800000).to_bytes(3, "big") + struct.pack("b", c_mod(packed, 1 << 24) // 10000
                                                                                if c_mod(packed, 1 << 24) >= 0 else
                                                                                int(c_mod(packed, 1 << 24) / 10000))
        elif n == 2:
            raw = ((packed >> 24) + 0x800000).to_bytes(3, "big") + struct.pack(">h", int(c_mod(packed, 1 << 24) / 100))
        else:
            raw = (packed + 0x800000000000).to_bytes(6, "big")
        expected = sign * dt.timedelta(hours=h, minutes=m, seconds=s, microseconds=us)
        assert V.decode_time2(raw, 0, fsp)[0] == expected, (h, m, s, us, sign, fsp, raw.hex())


def test_timestamps_are_utc_whatever_the_process_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        raw = (1622548800).to_bytes(4, "big") + (5000).to_bytes(2, "big")  # TIMESTAMP(3) .500
        assert V.decode_timestamp2(raw, 0, 3) == (dt.datetime(2021, 6, 1, 12, 0, 0, 500000, tzinfo=UTC), 6)
        assert V.decode_timestamp2(bytes(4), 0, 0) == ("0000-00-00 00:00:00", 4)
        assert V.decode_timestamp2(bytes(5), 0, 2)[0] == "0000-00-00 00:00:00.00"
        assert V.timestamp_value(1) == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert os.environ.get("TZ") is None


def test_enum_set_bit_binary_and_float() -> None:
    members = ("a", "b", "c d")
    assert [V.enum_value(i, members) for i in range(5)] == ["", "a", "b", "c d", ""]
    assert [V.set_value(m, ("x", "y", "z")) for m in (0, 1, 5, 7)] == ["", "x", "x,z", "x,y,z"]
    assert V.bit_value(b"\x80\x00\x00\x00\x00\x00\x00\x01") == 2**63 + 1
    assert V.pad_binary(b"ab", 4) == b"ab\x00\x00" and V.pad_binary(b"abcd", 4) == b"abcd"
    assert V.round_float32(1.1) == struct.unpack("<f", struct.pack("<f", 1.1))[0] == 1.100000023841858
    assert V.python_encoding("latin1") == "cp1252" and V.python_encoding("binary") is None
    assert V.python_encoding("utf8mb3") == V.python_encoding("utf8mb4") == "utf-8"


def test_binary_json_is_redumped_keeping_key_order() -> None:
    # {"b": 1, "a": "ü"} as MySQL's binary JSON (small object, keys b then a as stored)
    key_b, key_a, s = b"b", b"a", "ü".encode()
    header = 4 + 2 * 4 + 2 * 3  # count+size, two key entries, two value entries
    keys_at = header
    str_at = keys_at + 2
    body = (
        struct.pack("<HH", 2, 0)
        + struct.pack("<HH", keys_at, 1) + struct.pack("<HH", keys_at + 1, 1)
        + bytes([5]) + struct.pack("<h", 1)  # int16 inline
        + bytes([12]) + struct.pack("<H", str_at)  # string at offset
        + key_b + key_a + bytes([len(s)]) + s
    )
    body = body[:2] + struct.pack("<H", len(body)) + body[4:]
    assert V.decode_json_binary(bytes([0]) + body) == '{"b": 1, "a": "ü"}'
    assert V.decode_json_binary(bytes([4, 1])) == "true"
    assert V.decode_json_binary(b"") is None


def _tm(type_: int, **kw: object) -> SimpleNamespace:
    return SimpleNamespace(type=type_, **kw)


def test_a_compiled_row_decoder_reads_rows_with_the_schemas_meaning() -> None:
    cols = (
        Column("id", "int", "int unsigned", nullable=False, unsigned=True),
        Column("name", "varchar", "varchar(10)", charset="latin1", precision=10),
        Column("raw", "blob", "blob", charset="binary"),
        Column("e", "enum", "enum('x','y')", charset="utf8mb4", values=("x", "y")),
        Column("amount", "decimal", "decimal(10,2)", precision=10, scale=2),
        Column("code", "binary", "binary(3)", charset="binary", precision=3),
    )
    schema = TableSchema("d", "t", cols, primary_key=("id",))
    tm = [_tm(FT.LONG), _tm(FT.VARCHAR, max_length=10), _tm(FT.BLOB, length_size=2), _tm(FT.ENUM, size=1),
          _tm(FT.NEWDECIMAL, precision=10, decimals=2), _tm(FT.STRING, max_length=3)]
    assert mismatch_reason(schema, tm, None) is None
    dec = RowDecoder(tm, schema, "d.t at test", nullable=bytes([0b111110]))
    row1 = (bytes([0]) + struct.pack("<I", 4294967295) + bytes([5]) + "café".encode("cp1252") + b"\x00"
            + struct.pack("<H", 3) + b"\xff\x00\x01" + bytes([2]) + encode_decimal(Decimal("-3.25"), 10, 2)
            + bytes([1]) + b"a")
    row2 = bytes([0b111110]) + struct.pack("<I", 7)
    rows = dec.rows(row1 + row2, 0, len(row1 + row2))
    assert rows == [
        {"id": 4294967295, "name": "café\x00", "raw": b"\xff\x00\x01",
         "e": "y", "amount": Decimal("-3.25"), "code": b"a\x00\x00"},
        {"id": 7, "name": None, "raw": None, "e": None, "amount": None, "code": None},
    ]
    # text that is not valid in the tracked character set is refused, not guessed
    schema8 = TableSchema("d", "t", (cols[0], Column("name", "varchar", "varchar(10)", charset="utf8mb4")))
    dec8 = RowDecoder(tm[:2], schema8, "d.t at test")
    bad = bytes([0]) + struct.pack("<I", 1) + bytes([1]) + b"\xff"
    with pytest.raises(SchemaMismatchError, match="d.t at test"):
        dec8.rows(bad, 0, len(bad))


def test_table_map_mismatches_are_named() -> None:
    schema = TableSchema("d", "t", (Column("id", "int", "int"), Column("v", "varchar", "varchar(3)")))
    assert "tracked schema 2" in mismatch_reason(schema, [_tm(FT.LONG)], None)  # type: ignore[operator]  # a mismatch: the reason is set
    varchar = _tm(FT.VARCHAR, max_length=3)
    assert "binlog type 8" in mismatch_reason(schema, [_tm(FT.LONGLONG), varchar], None)  # type: ignore[operator]  # a mismatch: the reason is set
    assert "named 'w'" in mismatch_reason(schema, [_tm(FT.LONG), varchar], ["id", "w"])  # type: ignore[operator]  # a mismatch: the reason is set
    assert mismatch_reason(None, [], None) == "the table does not exist in the tracked schema"


# ---- the inline decoders of the generated row function against the reference functions in `values` -------------

def _same(a: object, b: object) -> bool:
    """Equal, of the same type, and for Decimals the same digits, exponent and sign (-0.00 is not 0.00 nor -0)."""
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a == b and a.tzinfo is b.tzinfo
    return type(a) is type(b) and a == b


def test_the_decimal_reader_keeps_digits_scale_and_sign_for_every_precision_and_scale() -> None:
    rnd = random.Random(11)
    for precision in range(1, 66):
        for scale in range(0, min(precision, 30) + 1):
            read = _decimal_reader(precision, scale)
            intg = precision - scale
            nines = ("9" * intg or "0") + ("." + "9" * scale if scale else "")
            zero = "0" + ("." + "0" * scale if scale else "")
            texts = [zero, "-" + zero, nines, "-" + nines]
            if scale:
                texts += ["0." + "0" * (scale - 1) + "1", "-0." + "0" * (scale - 1) + "1"]
            if intg:
                texts += ["1" + ("." + "0" * scale if scale else ""), "-1" + ("." + "0" * scale if scale else "")]
            for _ in range(6):
                ip = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, intg))) or "0"
                fp = "".join(rnd.choice("0123456789") for _ in range(scale))
                texts.append(rnd.choice(("", "-")) + ip + ("." + fp if scale else ""))
            for text in texts:
                raw = b"\x07" + encode_decimal(Decimal(text), precision, scale) + b"\x07"
                ref, end = V.decode_decimal(raw, 1, precision, scale)
                assert ref.as_tuple() == Decimal(text).as_tuple(), (precision, scale, text)
                value, end2 = read(raw, 1)
                assert _same(value, ref) and end2 == end, (precision, scale, text, value, ref)


def test_negative_zero_decimals_keep_their_sign_as_the_reference_does() -> None:
    for precision, scale in ((1, 0), (5, 2), (12, 2), (65, 30), (30, 30)):
        raw = encode_decimal(Decimal("-0"), precision, scale)
        ref = V.decode_decimal(raw, 0, precision, scale)[0]
        assert ref.is_signed() and ref.as_tuple().exponent == -scale
        assert _same(_decimal_reader(precision, scale)(raw, 0)[0], ref)


def _fsp_micro(rnd: random.Random, fsp: int) -> int:
    return rnd.randint(0, 999999) // 10 ** (6 - fsp) * 10 ** (6 - fsp) if fsp else 0


def test_the_datetime2_reader_agrees_with_the_reference_including_zero_partial_and_repeated_seconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "_CACHE_SIZE", 16)  # clearing the cache on the way
    rnd = random.Random(5)
    for fsp in range(7):
        read = _datetime2_reader(fsp)
        seconds = [(rnd.randint(1000, 9999), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23),
                    rnd.randint(0, 59), rnd.randint(0, 59)) for _ in range(40)]
        seconds += [(0, 0, 0, 0, 0, 0), (2024, 0, 10, 1, 2, 3), (2024, 2, 0, 0, 0, 0), (2024, 2, 30, 0, 0, 0),
                    (1, 1, 1, 0, 0, 0), (9999, 12, 31, 23, 59, 59)]
        for _ in range(3000):
            y, mo, d, h, mi, s = rnd.choice(seconds)  # repeated seconds: cache hits, with and without fractions
            us = rnd.choice((0, _fsp_micro(rnd, fsp)))
            raw = b"\x01" + datetime2_bytes(y, mo, d, h, mi, s, us, fsp) + b"\x02"
            ref, end = V.decode_datetime2(raw, 1, fsp)
            value, end2 = read(raw, 1)
            assert _same(value, ref) and end2 == end, (fsp, y, mo, d, h, mi, s, us, value, ref)


def test_the_timestamp2_reader_agrees_with_the_reference_including_zero_and_repeated_seconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "_CACHE_SIZE", 16)
    rnd = random.Random(6)
    for fsp in range(7):
        read = _timestamp2_reader(fsp)
        seconds = [rnd.randint(1, 2**32 - 1) for _ in range(40)] + [0, 1, 2**31 - 1, 2**32 - 1]
        for _ in range(3000):
            sec = rnd.choice(seconds)
            us = rnd.choice((0, _fsp_micro(rnd, fsp)))
            n = (fsp + 1) // 2
            frac = (us // 10 ** (6 - 2 * n)).to_bytes(n, "big") if n else b""
            raw = b"\x01" + sec.to_bytes(4, "big") + frac + b"\x02"
            ref, end = V.decode_timestamp2(raw, 1, fsp)
            value, end2 = read(raw, 1)
            assert _same(value, ref) and end2 == end, (fsp, sec, us, value, ref)


def test_the_date_reader_agrees_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "_CACHE_SIZE", 16)
    rnd = random.Random(8)
    read = column_reader(_tm(FT.DATE), Column("d", "date", "date"), "test")
    raws = [rnd.randint(0, 2**24 - 1) for _ in range(200)] + [0, (2024 << 9) | (2 << 5) | 29, (2020 << 9) | 15]
    for _ in range(3000):
        r = rnd.choice(raws)
        assert _same(read(b"\x00" + r.to_bytes(3, "little"), 1), (V.decode_date(r), 4)), r


def test_a_generated_row_reads_every_inline_type_nullable_or_not_as_the_references_do() -> None:
    """Runs of NOT NULL numbers (one struct), nullable columns between them, and the inline DECIMAL, DATE,
    DATETIME2 and TIMESTAMP2 code, over random rows."""
    cols = (
        Column("a", "bigint", "bigint", nullable=False), Column("b", "int", "int unsigned", unsigned=True),
        Column("c", "tinyint", "tinyint", nullable=False), Column("f", "float", "float", nullable=False),
        Column("g", "double", "double"), Column("m", "decimal", "decimal(65,30)", precision=65, scale=30),
        Column("n", "decimal", "decimal(12,2)", precision=12, scale=2, nullable=False),
        Column("d", "date", "date"), Column("dt", "datetime", "datetime(3)", fsp=3, nullable=False),
        Column("ts", "timestamp", "timestamp(6)", fsp=6), Column("s", "smallint", "smallint", nullable=False),
        Column("m24", "mediumint", "mediumint", nullable=False),
    )
    tm = [_tm(FT.LONGLONG), _tm(FT.LONG), _tm(FT.TINY), _tm(FT.FLOAT), _tm(FT.DOUBLE),
          _tm(FT.NEWDECIMAL, precision=65, decimals=30), _tm(FT.NEWDECIMAL, precision=12, decimals=2), _tm(FT.DATE),
          _tm(FT.DATETIME2, fsp=3), _tm(FT.TIMESTAMP2, fsp=6), _tm(FT.SHORT), _tm(FT.INT24)]
    nullable = [c.nullable for c in cols]
    mask = sum(1 << i for i, x in enumerate(nullable) if x).to_bytes(2, "little")
    dec = RowDecoder(tm, TableSchema("d", "t", cols), "d.t at test", nullable=mask)
    rnd = random.Random(9)
    data, expected = b"", []
    for _ in range(500):
        nulls = [x and rnd.random() < 0.3 for x in nullable]
        row: dict[str, object] = {}
        image = sum(1 << i for i, x in enumerate(nulls) if x).to_bytes(2, "little")
        values = [
            ("a", struct.pack("<q", v := rnd.randint(-2**63, 2**63 - 1)), v),
            ("b", struct.pack("<I", v := rnd.randint(0, 2**32 - 1)), v),
            ("c", struct.pack("<b", v := rnd.randint(-128, 127)), v),
            ("f", struct.pack("<f", x := rnd.uniform(-1e6, 1e6)), V.round_float32(x)),
            ("g", struct.pack("<d", x := rnd.uniform(-1e300, 1e300)), x),
            ("m", encode_decimal(q := Decimal(f"{rnd.randint(-10**65 + 1, 10**65 - 1)}E-30"), 65, 30), q),
            ("n", encode_decimal(q := Decimal(f"{rnd.randint(-10**12 + 1, 10**12 - 1)}E-2"), 12, 2), q),
            ("d", (r := rnd.choice((0, rnd.randint(0, 2**24 - 1)))).to_bytes(3, "little"), V.decode_date(r)),
            ("dt", raw := datetime2_bytes(2024, rnd.randint(0, 12), 5, 1, 2, 3, rnd.randint(0, 999) * 1000, 3),
             V.decode_datetime2(raw, 0, 3)[0]),
            ("ts", raw := rnd.randint(0, 3).to_bytes(4, "big") + rnd.randint(0, 999999).to_bytes(3, "big"),
             V.decode_timestamp2(raw, 0, 6)[0]),
            ("s", struct.pack("<h", v := rnd.randint(-32768, 32767)), v),
            ("m24", (v := rnd.randint(-2**23, 2**23 - 1)).to_bytes(3, "little", signed=True), v),
        ]
        for (name, raw, value), null in zip(values, nulls, strict=True):
            row[name] = None if null else value
            image += b"" if null else raw
        data += image
        expected.append(row)
    got = dec.rows(data, 0, len(data))
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert list(g) == list(e) and all(_same(g[k], e[k]) for k in e), [(k, g[k], e[k]) for k in e]

"""Canonical values from SQL reads, on values recorded from real servers (MariaDB 10.11 and seekdb 1.4).

Each raw value is what pymysql returned for a SELECT built with `select_list` on a connection prepared by
`use_sql_decoders` (temporal types as the server's text, FLOAT as `col + 0e0`), and what mysqlclient returns
with `mysqldb_conversions`. The live check of the same table, through both drivers, is
tests/integration/test_snapshot_values.py.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pymysql
import pytest
from pymysql.constants import FIELD_TYPE

from obsync.connectors.mysql.values import (
    MYSQLDB_DECODERS,
    SQL_DECODERS,
    bit_int,
    canonical_from_sql,
    float32,
    json_text,
    mysqldb_conversions,
    parse_time,
    row_converter,
    row_dict_converter,
    select_list,
    sql_converter,
    temporal_text,
    time_text,
    use_sql_decoders,
)
from obsync.core.schema import Column

UTC = dt.UTC


def col(data_type: str, column_type: str | None = None, **kw: object) -> Column:
    return Column(name="c", data_type=data_type, column_type=column_type or data_type, **kw)  # type: ignore[arg-type]  # kw: loosely typed Column fields


# (column, raw value from the server, canonical value)
RECORDED = [
    (col("tinyint", "tinyint(4)"), -128, -128),
    (col("tinyint", "tinyint(3) unsigned", unsigned=True), 255, 255),
    (col("smallint"), -32768, -32768),
    (col("mediumint", "mediumint(8) unsigned", unsigned=True), 16777215, 16777215),
    (col("int"), -2147483648, -2147483648),
    (col("bigint", "bigint(20)"), -9223372036854775808, -9223372036854775808),
    (col("bigint", "bigint(20) unsigned", unsigned=True), 18446744073709551615, 18446744073709551615),
    (col("decimal", "decimal(65,30)", precision=65, scale=30),
     Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
     Decimal("-12345678901234567890123456789012345.123456789012345678901234567890")),
    # FLOAT read as `col + 0e0`: the stored float32 exactly (a plain SELECT prints 1.23457).
    (col("float"), 1.2345677614212036, 1.2345677614212036),
    (col("float"), 0.10000000149011612, 0.10000000149011612),
    (col("float"), 3.4028234663852886e38, 3.4028234663852886e38),
    (col("float", "float(7,2)"), 12.350000381469727, 12.350000381469727),
    (col("double"), 0.30000000000000004, 0.30000000000000004),
    (col("double"), 1e-300, 1e-300),
    (col("bit", "bit(1)"), b"\x01", 1),
    (col("bit", "bit(64)"), b"\xff" * 8, 2**64 - 1),
    (col("bit", "bit(10)"), b"\x02\x01", 513),
    (col("char", "char(10)", charset="utf8mb4"), "a😀中", "a😀中"),
    (col("varchar", "varchar(20)", charset="utf8mb4"), "Ab 😀中文", "Ab 😀中文"),
    (col("varchar", "varchar(20)", charset="utf8mb4"), "Ab😀", "Ab😀"),  # COLLATE utf8mb4_bin: still text
    (col("text", charset="utf8mb4"), "x\ty😀", "x\ty😀"),
    (col("binary", "binary(4)", charset="binary"), b"\xff\x00\xfe\x00", b"\xff\x00\xfe\x00"),
    (col("varbinary", "varbinary(10)", charset="binary"), b"\xff\x80", b"\xff\x80"),
    (col("blob", charset="binary"), b"\x00\xff\xc3", b"\x00\xff\xc3"),
    # CHAR(4) CHARACTER SET binary: the catalog says binary(4); pymysql gives bytes (charset 63).
    (col("binary", "binary(4)", charset="binary"), b"\xff\x01\x00\x00", b"\xff\x01\x00\x00"),
    (col("date"), "2024-02-29", dt.date(2024, 2, 29)),
    (col("date"), "0000-00-00", "0000-00-00"),
    (col("date"), "2024-00-10", "2024-00-10"),
    (col("time", "time(6)", fsp=6), "-838:59:58.999999",
     -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999)),
    (col("time", "time(2)", fsp=2), "-00:00:01.50", -dt.timedelta(seconds=1, microseconds=500000)),
    (col("time"), "12:00:00", dt.timedelta(hours=12)),
    (col("time"), "838:59:59", dt.timedelta(hours=838, minutes=59, seconds=59)),
    (col("datetime", "datetime(6)", fsp=6), "2024-01-02 03:04:05.000006", dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
    (col("datetime", "datetime(3)", fsp=3), "0000-00-00 00:00:00.000", "0000-00-00 00:00:00.000"),
    (col("datetime"), "9999-12-31 23:59:59", dt.datetime(9999, 12, 31, 23, 59, 59)),
    (col("datetime", "datetime(2)", fsp=2), "1000-01-01 00:00:00.12", dt.datetime(1000, 1, 1, 0, 0, 0, 120000)),
    # Inserted as '2024-01-02 03:04:05.123456' in a +05:00 session, read in the UTC session.
    (col("timestamp", "timestamp(6)", fsp=6), "2024-01-01 22:04:05.123456",
     dt.datetime(2024, 1, 1, 22, 4, 5, 123456, tzinfo=UTC)),
    (col("timestamp"), "0000-00-00 00:00:00", "0000-00-00 00:00:00"),
    (col("year", "year(4)"), 2024, 2024),
    (col("year", "year(4)"), 0, 0),
    # seekdb's JSON (keys stored sorted by length, then bytes); MariaDB's JSON is LONGTEXT, kept as stored.
    (col("json"), '{"a": [1.5, "é😀", null, true], "b": 1, "aa": {"x": 1e300}}',
     '{"a": [1.5, "é😀", null, true], "b": 1, "aa": {"x": 1e+300}}'),
    (col("longtext", charset="utf8mb4"), '{"b": 1, "a": [1.5, "é😀", null, true]}',
     '{"b": 1, "a": [1.5, "é😀", null, true]}'),
    (col("enum", "enum('a','b','c d')", charset="utf8mb4", values=("a", "B", "c d")), "c d", "c d"),
    (col("set", "set('x','y','z')", charset="utf8mb4", values=("x", "y", "z")), "x,z", "x,z"),
    (col("set", "set('x','y','z')", charset="utf8mb4", values=("x", "y", "z")), "", ""),
]


@pytest.mark.parametrize(("column", "raw", "expected"), RECORDED,
                         ids=[f"{c.column_type}={r!r}"[:60] for c, r, _ in RECORDED])
def test_canonical_from_sql_gives_the_documented_value(column: Column, raw: object, expected: object) -> None:
    got = canonical_from_sql(column, raw)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, dt.datetime):
        assert got.tzinfo == expected.tzinfo  # type: ignore[attr-defined]  # got is a datetime here, like expected


@pytest.mark.parametrize("column", sorted({c for c, _, _ in RECORDED}, key=lambda c: c.column_type))
def test_null_is_none_for_every_type(column: Column) -> None:
    assert canonical_from_sql(column, None) is None


def test_values_from_pymysql_default_decoders_are_accepted_too() -> None:
    assert canonical_from_sql(col("date"), dt.date(2024, 2, 29)) == dt.date(2024, 2, 29)
    assert canonical_from_sql(col("datetime"), dt.datetime(2024, 1, 2)) == dt.datetime(2024, 1, 2)
    ts = canonical_from_sql(col("timestamp"), dt.datetime(2024, 1, 2, 3, 4, 5))
    assert ts == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC) and ts.tzinfo is UTC
    assert canonical_from_sql(col("time"), dt.timedelta(seconds=-1)) == dt.timedelta(seconds=-1)


def test_identity_types_have_no_converter() -> None:
    for c in (col("int"), col("bigint", unsigned=True), col("decimal"), col("double"), col("year"),
              col("varchar", charset="utf8mb4"), col("varbinary", charset="binary"), col("enum"), col("set")):
        assert sql_converter(c) is None, c.data_type


def test_float32_rounds_to_single_precision() -> None:
    assert float32(0.1) == 0.10000000149011612
    assert float32(1.2345678) == 1.2345677614212036
    assert float32(float32(0.1)) == float32(0.1)
    assert float32(-0.0) == 0.0 and float32(16777217.0) == 16777216.0


def test_bit_int_is_big_endian_unsigned() -> None:
    assert bit_int(b"") == 0 and bit_int(b"\x80") == 128 and bit_int(b"\x01\x00") == 256 and bit_int(5) == 5


def test_json_text_from_text_and_from_binlog_objects_agree() -> None:
    text = '{"a": [1.10, "é😀", null, true, false], "b": {"x": 1e300, "y": -5}, "ccc": "q\\"uote"}'
    decoded = {b"a": [Decimal("1.10"), "é😀".encode(), None, True, False], b"b": {b"x": 1e300, b"y": -5},
               b"ccc": b'q"uote'}
    assert json_text(text) == json_text(text.encode()) == json_text(decoded)
    assert json_text(text) == '{"a": [1.1, "é😀", null, true, false], "b": {"x": 1e+300, "y": -5}, "ccc": "q\\"uote"}'
    assert json.loads(json_text(text)) == json.loads(text)


def test_json_text_keeps_key_order_and_scalars() -> None:
    assert json_text('{"z":1,"a":2}') == '{"z": 1, "a": 2}'
    assert json_text("null") == "null" and json_text('"x"') == '"x"' and json_text("[]") == "[]"
    assert json_text({b"k": dt.datetime(2015, 1, 15, 23, 24, 25)}) == '{"k": "2015-01-15 23:24:25.000000"}'


def test_temporal_text_prints_like_the_server() -> None:
    assert temporal_text(col("date"), 0, 0, 0) == "0000-00-00"
    assert temporal_text(col("datetime"), 0, 0, 0) == "0000-00-00 00:00:00"
    assert temporal_text(col("datetime", "datetime(3)", fsp=3), 0, 0, 0) == "0000-00-00 00:00:00.000"
    assert temporal_text(col("timestamp", "timestamp(6)", fsp=6), 2024, 0, 10, 1, 2, 3, 4) == \
        "2024-00-10 01:02:03.000004"


@pytest.mark.parametrize("text", ["-838:59:58.999999", "-00:00:01.500000", "00:00:00.000000",
                                  "838:59:59.000000", "-00:00:00.000001", "12:34:56.000000"])
def test_time_text_and_parse_time_round_trip(text: str) -> None:
    assert time_text(parse_time(text)) == text


def test_parse_time_reads_any_fraction_width() -> None:
    assert parse_time("01:00:00.5") == dt.timedelta(hours=1, microseconds=500000)
    assert parse_time("-01:00:00") == dt.timedelta(hours=-1)


def test_row_converters_visit_only_columns_that_need_it() -> None:
    cols = [Column("id", "bigint", "bigint"), Column("n", "varchar", "varchar(5)", charset="utf8mb4"),
            Column("when", "timestamp", "timestamp(6)", fsp=6), Column("b", "bit", "bit(3)"),
            Column("f", "float", "float"), Column("it's", "date", "date")]
    raw = (7, "x", "2024-01-01 00:00:00.000001", b"\x05", 0.10000000149011612, None)
    want = [7, "x", dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 5, 0.10000000149011612, None]
    assert row_converter(cols)(raw) == want
    assert row_dict_converter(cols)(raw) == dict(zip([c.name for c in cols], want, strict=True))
    assert row_converter(cols[:2])((1, "a")) == [1, "a"]
    assert row_dict_converter([])(()) == {}


def test_select_list_reads_float_as_double() -> None:
    cols = [Column("id", "int", "int"), Column("f`x", "float", "float"), Column("d", "double", "double")]
    assert select_list(cols) == "`id`, `f``x` + 0e0, `d`"


def test_sql_decoders_leave_temporal_types_as_text() -> None:
    for t in (FIELD_TYPE.DATE, FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIME):
        assert t not in SQL_DECODERS
    assert SQL_DECODERS[FIELD_TYPE.LONGLONG] is int
    assert SQL_DECODERS[FIELD_TYPE.NEWDECIMAL] is pymysql.converters.decoders[FIELD_TYPE.NEWDECIMAL]

    class FakeConn:
        decoders: dict = {}

    conn = FakeConn()
    use_sql_decoders(conn)  # type: ignore[arg-type]  # a fake connection with just the decoders
    assert conn.decoders == SQL_DECODERS and conn.decoders is not SQL_DECODERS


def test_mysqldb_decoders_give_what_pymysql_gives() -> None:
    """mysqlclient's C reader: `int`/`str`/`bytes` are done in C; the pairs pick bytes for charset 63."""
    for t in (FIELD_TYPE.DATE, FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIME, FIELD_TYPE.JSON):
        assert MYSQLDB_DECODERS[t] is str  # temporal text, parsed by the converters; JSON is always text
    for t in (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG,
              FIELD_TYPE.YEAR):
        assert MYSQLDB_DECODERS[t] is int
    assert MYSQLDB_DECODERS[FIELD_TYPE.DOUBLE] is float and MYSQLDB_DECODERS[FIELD_TYPE.NEWDECIMAL] is Decimal
    for t in (FIELD_TYPE.STRING, FIELD_TYPE.VAR_STRING, FIELD_TYPE.BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.ENUM,
              FIELD_TYPE.SET):
        assert MYSQLDB_DECODERS[t] == ((128, bytes), (None, str))  # BINARY flag <=> charset 63
    assert FIELD_TYPE.BIT not in MYSQLDB_DECODERS and FIELD_TYPE.GEOMETRY not in MYSQLDB_DECODERS  # bytes
    assert float(b"1.2345677614212036") == 1.2345677614212036  # MySQLdb hands float() the bytes


def test_mysqldb_conversions_keep_mysqldb_encoders() -> None:
    pytest.importorskip("MySQLdb")
    from MySQLdb.converters import conversions

    conv = mysqldb_conversions()
    assert {k: v for k, v in conv.items() if isinstance(k, int)} == MYSQLDB_DECODERS
    for t in (int, float, Decimal, dt.datetime, dt.date, dt.timedelta, type(None)):
        assert conv[t] is conversions[t]  # query parameters are written as MySQLdb writes them
    assert conv is not mysqldb_conversions()

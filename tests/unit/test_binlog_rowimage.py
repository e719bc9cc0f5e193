"""The compiled row-image decoder (`obsync/connectors/mysql/binlog/_rowimage.c`) against the generated Python code
it stands for: the same rows, value for value and type for type, and the same errors; what it hands back to the
Python code (None) is decoded there. Skipped where the module was not built (the Python code then does it all)."""

from __future__ import annotations

import datetime as dt
import random
import struct
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from pymysqlreplication.constants import FIELD_TYPE as FT

from obsync.connectors.mysql.binlog import rows as rows_module
from obsync.connectors.mysql.binlog.rows import RowDecoder
from obsync.core.errors import SchemaMismatchError
from obsync.core.schema import Column, TableSchema
from tests.unit.test_binlog_values import datetime2_bytes, encode_decimal

pytestmark = pytest.mark.skipif(rows_module._RowProgram is None, reason="the C row decoder was not built")


def _tm(type_: int, **kw: object) -> SimpleNamespace:
    return SimpleNamespace(type=type_, **kw)


def _col(name: str, data_type: str, column_type: str, **kw: Any) -> Column:
    return Column(name, data_type, column_type, **kw)


# (column, table-map column, a random valid value's bytes) for every kind of op, nullable and NOT NULL
def _int(size: int, signed: bool) -> Any:
    lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << 8 * size) - 1)
    return lambda r: r.choice((lo, hi, 0, -1 if signed else 1, r.randint(lo, hi))).to_bytes(size, "little",
                                                                                            signed=signed)


def _decimal(p: int, s: int) -> Any:
    def gen(r: random.Random) -> bytes:
        n = r.choice((0, 1, 10 ** p - 1, r.randint(0, 10 ** p - 1)))
        sign = r.choice(("", "-"))
        return encode_decimal(Decimal(f"{sign}{n}E-{s}"), p, s)
    return gen


def _text(prefix: int, encode: str | None, pad: int = 0) -> Any:
    alphabet = "abc xyzé€😀 \x00" if encode in ("utf-8", None) else "abc xyzé "
    def gen(r: random.Random) -> bytes:
        text = "".join(r.choice(alphabet) for _ in range(r.randint(0, 12))) + " " * r.randint(0, pad)
        raw = text.encode(encode) if encode else text.encode("utf-8")
        return len(raw).to_bytes(prefix, "little") + raw
    return gen


def _datetime2(fsp: int) -> Any:
    def gen(r: random.Random) -> bytes:
        us = r.randint(0, 999999) // 10 ** (6 - fsp) * 10 ** (6 - fsp) if fsp else 0
        if r.random() < 0.1:  # zero and partial dates: the server's text
            return datetime2_bytes(r.choice((0, 2024)), r.choice((0, 2)), 0, 0, 0, 0, us, fsp)
        return datetime2_bytes(r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28), r.randint(0, 23),
                               r.randint(0, 59), r.randint(0, 59), us, fsp)
    return gen


def _timestamp2(fsp: int) -> Any:
    def gen(r: random.Random) -> bytes:
        n = (fsp + 1) // 2
        us = r.randint(0, 999999) // 10 ** (6 - fsp) * 10 ** (6 - fsp) if fsp else 0
        sec = r.choice((0, 1, 2**31 - 1, 2**32 - 1, r.randint(1, 2**32 - 1)))
        return sec.to_bytes(4, "big") + ((us // 10 ** (6 - 2 * n)).to_bytes(n, "big") if n else b"")
    return gen


def _date(r: random.Random) -> bytes:
    x = r.choice((0, (2024 << 9) | (2 << 5), (r.randint(1, 9999) << 9) | (r.randint(1, 12) << 5) | r.randint(1, 28)))
    return x.to_bytes(3, "little")


KINDS: list[tuple[Column, SimpleNamespace, Any]] = [
    (_col("i8", "tinyint", "tinyint"), _tm(FT.TINY), _int(1, True)),
    (_col("u8", "tinyint", "tinyint unsigned", unsigned=True), _tm(FT.TINY), _int(1, False)),
    (_col("i16", "smallint", "smallint"), _tm(FT.SHORT), _int(2, True)),
    (_col("u16", "smallint", "smallint unsigned", unsigned=True), _tm(FT.SHORT), _int(2, False)),
    (_col("i24", "mediumint", "mediumint"), _tm(FT.INT24), _int(3, True)),
    (_col("u24", "mediumint", "mediumint unsigned", unsigned=True), _tm(FT.INT24), _int(3, False)),
    (_col("i32", "int", "int"), _tm(FT.LONG), _int(4, True)),
    (_col("u32", "int", "int unsigned", unsigned=True), _tm(FT.LONG), _int(4, False)),
    (_col("i64", "bigint", "bigint"), _tm(FT.LONGLONG), _int(8, True)),
    (_col("u64", "bigint", "bigint unsigned", unsigned=True), _tm(FT.LONGLONG), _int(8, False)),
    (_col("f", "float", "float"), _tm(FT.FLOAT), lambda r: struct.pack("<f", r.uniform(-1e6, 1e6))),
    (_col("d", "double", "double"), _tm(FT.DOUBLE),
     lambda r: struct.pack("<d", r.choice((0.0, -0.0, float("inf"), r.uniform(-1e300, 1e300))))),
    (_col("n", "decimal", "decimal(10,2)", precision=10, scale=2), _tm(FT.NEWDECIMAL, precision=10, decimals=2),
     _decimal(10, 2)),
    (_col("n18", "decimal", "decimal(18,9)", precision=18, scale=9), _tm(FT.NEWDECIMAL, precision=18, decimals=9),
     _decimal(18, 9)),
    (_col("n0", "decimal", "decimal(18,0)", precision=18, scale=0), _tm(FT.NEWDECIMAL, precision=18, decimals=0),
     _decimal(18, 0)),
    (_col("n55", "decimal", "decimal(5,5)", precision=5, scale=5), _tm(FT.NEWDECIMAL, precision=5, decimals=5),
     _decimal(5, 5)),
    (_col("n19", "decimal", "decimal(19,4)", precision=19, scale=4), _tm(FT.NEWDECIMAL, precision=19, decimals=4),
     _decimal(19, 4)),  # beyond 18 digits: its Python reader
    (_col("dt0", "datetime", "datetime"), _tm(FT.DATETIME2, fsp=0), _datetime2(0)),
    (_col("dt3", "datetime", "datetime(3)", fsp=3), _tm(FT.DATETIME2, fsp=3), _datetime2(3)),
    (_col("dt5", "datetime", "datetime(5)", fsp=5), _tm(FT.DATETIME2, fsp=5), _datetime2(5)),
    (_col("ts0", "timestamp", "timestamp"), _tm(FT.TIMESTAMP2, fsp=0), _timestamp2(0)),
    (_col("ts2", "timestamp", "timestamp(2)", fsp=2), _tm(FT.TIMESTAMP2, fsp=2), _timestamp2(2)),
    (_col("ts6", "timestamp", "timestamp(6)", fsp=6), _tm(FT.TIMESTAMP2, fsp=6), _timestamp2(6)),
    (_col("day", "date", "date"), _tm(FT.DATE), _date),
    (_col("v", "varchar", "varchar(20)", charset="utf8mb4"), _tm(FT.VARCHAR, max_length=80), _text(1, "utf-8")),
    (_col("vl", "varchar", "varchar(300)", charset="utf8mb4"), _tm(FT.VARCHAR, max_length=1200), _text(2, "utf-8")),
    (_col("c", "char", "char(20)", charset="utf8mb4"), _tm(FT.STRING, max_length=80), _text(1, "utf-8", pad=3)),
    (_col("c1", "char", "char(20)", charset="latin1"), _tm(FT.STRING, max_length=20), _text(1, "cp1252", pad=3)),
    (_col("vb", "varbinary", "varbinary(20)", charset="binary"), _tm(FT.VARCHAR, max_length=20), _text(1, None)),
    (_col("bn", "binary", "binary(4)", charset="binary"), _tm(FT.STRING, max_length=4), _text(1, None)),
    (_col("b", "blob", "blob", charset="binary"), _tm(FT.BLOB, length_size=2), _text(2, None)),
    (_col("t", "text", "text", charset="utf8mb4"), _tm(FT.BLOB, length_size=2), _text(2, "utf-8")),
    (_col("e", "enum", "enum('x','y')", charset="utf8mb4", values=("x", "y")), _tm(FT.ENUM, size=1),
     lambda r: bytes([r.randint(0, 2)])),
]


def _table(nullable: list[bool]) -> tuple[TableSchema, list[SimpleNamespace], bytes]:
    cols = tuple(Column(c.name, c.data_type, c.column_type, nullable=n, unsigned=c.unsigned, charset=c.charset,
                        precision=c.precision, scale=c.scale, fsp=c.fsp, values=c.values)
                 for (c, _, _), n in zip(KINDS, nullable, strict=True))
    mask = sum(1 << i for i, n in enumerate(nullable) if n).to_bytes((len(KINDS) + 7) // 8, "little")
    return TableSchema("d", "t", cols, primary_key=("i64",)), [tm for _, tm, _ in KINDS], mask


def _image(r: random.Random, nullable: list[bool], null_rate: float = 0.2) -> bytes:
    nulls = [n and r.random() < null_rate for n in nullable]
    out = sum(1 << i for i, x in enumerate(nulls) if x).to_bytes((len(KINDS) + 7) // 8, "little")
    for (_, _, gen), null in zip(KINDS, nulls, strict=True):
        out += b"" if null else gen(r)
    return out


def _exact(rows: Any) -> list[Any]:
    """The rows with each value's type and repr: Decimal('1.0') and Decimal('1.00'), or a naive and an aware
    datetime, are told apart."""
    def one(row: dict[str, Any]) -> list[Any]:
        return [(k, type(v).__name__, repr(v)) for k, v in row.items()]
    return [tuple(one(x) for x in item) if isinstance(item, tuple) else one(item) for item in rows]


def _outcome(dec: RowDecoder, data: bytes, pairs: bool) -> Any:
    try:
        got = dec.row_pairs(data, 0, len(data)) if pairs else dec.rows(data, 0, len(data))
    except Exception as e:  # noqa: BLE001  # the outcome compared is the error itself
        return ("raised", type(e).__name__, str(e))
    return _exact(got)


@pytest.mark.parametrize("all_nullable", [True, False])
def test_random_valid_rows_decode_as_the_python_code_does_and_in_c(all_nullable: bool) -> None:
    r = random.Random(7 if all_nullable else 8)
    nullable = [all_nullable or i % 3 == 0 for i in range(len(KINDS))]
    schema, tm, mask = _table(nullable)
    compiled = RowDecoder(tm, schema, "d.t at test", nullable=mask)
    python = RowDecoder(tm, schema, "d.t at test", nullable=mask, compiled=False)
    for _ in range(40):
        data = b"".join(_image(r, nullable) for _ in range(r.randint(1, 30)))
        assert compiled._program.rows(data, 0, len(data)) is not None  # decoded in C, not handed back
        assert _outcome(compiled, data, False) == _outcome(python, data, False)
        pair_data = b"".join(_image(r, nullable) + _image(r, nullable) for _ in range(r.randint(1, 10)))
        assert compiled._program.pairs(pair_data, 0, len(pair_data)) is not None
        assert _outcome(compiled, pair_data, True) == _outcome(python, pair_data, True)


def test_edges_decode_to_exact_values() -> None:
    """A few values written out by hand, so that both decoders agreeing on a wrong value would show."""
    cols = (Column("n", "decimal", "decimal(10,2)", precision=10, scale=2, nullable=False),
            Column("z", "decimal", "decimal(10,2)", precision=10, scale=2, nullable=False),
            Column("dt", "datetime", "datetime(3)", fsp=3, nullable=False),
            Column("zero", "datetime", "datetime", nullable=False),
            Column("ts", "timestamp", "timestamp(6)", fsp=6, nullable=False),
            Column("tz", "timestamp", "timestamp", nullable=False),
            Column("day", "date", "date", nullable=False),
            Column("c", "char", "char(5)", charset="utf8mb4", nullable=False),
            Column("u", "bigint", "bigint unsigned", unsigned=True, nullable=False),
            Column("m", "mediumint", "mediumint", nullable=False))
    tm = [_tm(FT.NEWDECIMAL, precision=10, decimals=2), _tm(FT.NEWDECIMAL, precision=10, decimals=2),
          _tm(FT.DATETIME2, fsp=3), _tm(FT.DATETIME2, fsp=0), _tm(FT.TIMESTAMP2, fsp=6), _tm(FT.TIMESTAMP2, fsp=0),
          _tm(FT.DATE), _tm(FT.STRING, max_length=20), _tm(FT.LONGLONG), _tm(FT.INT24)]
    dec = RowDecoder(tm, TableSchema("d", "t", cols), "d.t at test", nullable=bytes(2))
    image = (bytes(2) + encode_decimal(Decimal("-12345678.90"), 10, 2) + encode_decimal(Decimal("-0.00"), 10, 2)
             + datetime2_bytes(2024, 2, 29, 23, 59, 58, 125000, 3) + datetime2_bytes(0, 0, 0, 0, 0, 0, 0, 0)
             + (1709251199).to_bytes(4, "big") + (999999).to_bytes(3, "big") + bytes(4)
             + ((2024 << 9) | (2 << 5)).to_bytes(3, "little") + bytes([6]) + "é  ab".encode()
             + (2**64 - 1).to_bytes(8, "little") + (-1).to_bytes(3, "little", signed=True))
    assert dec._program.rows(image, 0, len(image)) is not None
    [row] = dec.rows(image, 0, len(image))
    assert _exact([row]) == _exact([{
        "n": Decimal("-12345678.90"), "z": Decimal("-0.00"), "dt": dt.datetime(2024, 2, 29, 23, 59, 58, 125000),
        "zero": "0000-00-00 00:00:00", "ts": dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "tz": "0000-00-00 00:00:00", "day": "2024-02-00", "c": "é  ab", "u": 2**64 - 1, "m": -1}])


def test_bytes_the_c_code_does_not_decode_exactly_go_to_the_python_code() -> None:
    """Cut rows, a fraction of a second out of range: the C program hands them back (None), and the decoder's
    answer is the Python code's, error or value."""
    nullable = [True] * len(KINDS)
    schema, tm, mask = _table(nullable)
    compiled = RowDecoder(tm, schema, "d.t at test", nullable=mask)
    python = RowDecoder(tm, schema, "d.t at test", nullable=mask, compiled=False)
    r = random.Random(3)
    whole = b"".join(_image(r, nullable, null_rate=0.0) for _ in range(3))
    handed_back = 0
    for cut in range(1, len(whole), 7):
        data = whole[:cut]
        try:
            handed_back += compiled._program.rows(data, 0, len(data)) is None
        except Exception:  # noqa: BLE001, S110  # a Python reader's error (compared below)
            pass
        assert _outcome(compiled, data, False) == _outcome(python, data, False), cut
    assert handed_back > 10
    # a DATETIME(6) whose fraction is above 999999
    cols = (Column("dt", "datetime", "datetime(6)", fsp=6, nullable=False),)
    table = TableSchema("d", "t", cols)
    dec = RowDecoder([_tm(FT.DATETIME2, fsp=6)], table, "d.t at test", nullable=bytes(1))
    py = RowDecoder([_tm(FT.DATETIME2, fsp=6)], table, "d.t at test", nullable=bytes(1), compiled=False)
    bad = bytes(1) + datetime2_bytes(2024, 1, 2, 3, 4, 5, 0, 0) + (1000000).to_bytes(3, "big")
    assert dec._program.rows(bad, 0, len(bad)) is None
    assert _outcome(dec, bad, False) == _outcome(py, bad, False) == [[("dt", "str", "'2024-01-02 03:04:05.100000'")]]


def test_random_bytes_give_the_python_codes_values_or_errors() -> None:
    """Bytes that are no valid row image (garbage DECIMAL digit groups, bad UTF-8, impossible dates) decode,
    or fail, as the Python code decodes or fails on them."""
    nullable = [i % 2 == 0 for i in range(len(KINDS))]
    schema, tm, mask = _table(nullable)
    r = random.Random(11)
    for _ in range(300):
        compiled = RowDecoder(tm, schema, "d.t at test", nullable=mask)
        python = RowDecoder(tm, schema, "d.t at test", nullable=mask, compiled=False)
        data = bytearray(_image(r, nullable))
        for _ in range(r.randint(1, 6)):
            data[r.randrange(len(data))] = r.randrange(256)
        data = bytes(data)
        assert _outcome(compiled, data, False) == _outcome(python, data, False), data.hex()


def test_text_not_valid_in_its_character_set_is_refused_naming_the_table() -> None:
    cols = (Column("id", "int", "int", nullable=False), Column("v", "varchar", "varchar(10)", charset="utf8mb4"))
    dec = RowDecoder([_tm(FT.LONG), _tm(FT.VARCHAR, max_length=40)], TableSchema("d", "t", cols), "d.t at test")
    bad = bytes([0]) + struct.pack("<i", 1) + bytes([1]) + b"\xff"
    with pytest.raises(SchemaMismatchError, match="d.t at test.*not valid in its character set"):
        dec.rows(bad, 0, len(bad))

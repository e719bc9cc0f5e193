"""How canonical values are rendered for the OMS-style formats: one test per column type, with edge values."""

from __future__ import annotations

import datetime as dt
import math
import random
import struct
from decimal import Decimal

import pytest

from obsync.core.canonical_text import render_double, render_float, render_value
from obsync.core.errors import SchemaMismatchError
from obsync.core.schema import Column, TableSchema
from obsync.formats.values import key_render_function, table_renderer

UTC = dt.UTC


def col(data_type: str, column_type: str | None = None, **kw) -> Column:
    return Column("c", data_type, column_type or data_type, **kw)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def render_all(column: Column, cases: list[tuple[object, str]]) -> None:
    got = [render_value(column, v) for v, _ in cases]
    assert got == [want for _, want in cases]


def test_null_is_none_for_every_type() -> None:
    for t in ("int", "decimal", "float", "double", "bit", "varchar", "blob", "date", "datetime", "timestamp",
              "time", "year", "json", "enum", "set", "geometry"):
        assert render_value(col(t), None) is None


@pytest.mark.parametrize(
    ("column", "cases"),
    [
        (col("tinyint", "tinyint(4)"), [(-128, "-128"), (127, "127"), (0, "0")]),
        (col("tinyint", "tinyint(3) unsigned", unsigned=True), [(255, "255")]),
        (col("smallint"), [(-32768, "-32768"), (32767, "32767")]),
        (col("mediumint", "mediumint(8) unsigned", unsigned=True), [(16777215, "16777215")]),
        (col("int"), [(-2147483648, "-2147483648"), (2147483647, "2147483647")]),
        (col("int", "int(10) unsigned", unsigned=True), [(4294967295, "4294967295")]),
        (col("bigint"), [(-9223372036854775808, "-9223372036854775808"), (9223372036854775807, "9223372036854775807")]),
        (col("bigint", "bigint(20) unsigned", unsigned=True), [(18446744073709551615, "18446744073709551615")]),
    ],
)
def test_integers_in_full(column: Column, cases: list[tuple[object, str]]) -> None:
    render_all(column, cases)


def test_decimal_plain_exact_and_at_the_column_scale() -> None:
    d65 = col("decimal", "decimal(65,30)", precision=65, scale=30)
    big = "9" * 35 + "." + "9" * 30
    render_all(d65, [(Decimal(big), big), (Decimal("-" + big), "-" + big),
                     (Decimal("1E-30"), "0." + "0" * 29 + "1"), (Decimal("0E-30"), "0." + "0" * 30)])
    render_all(col("decimal", "decimal(12,2)", precision=12, scale=2), [
        (Decimal(5), "5.00"), (5, "5.00"), (Decimal("5.1"), "5.10"), (Decimal("-12.34"), "-12.34"),
        (Decimal("-0.00"), "0.00"), (Decimal("-0"), "0.00"), (Decimal("1E+3"), "1000.00"),
        (Decimal("1.005"), "1.005"),  # more digits than the scale (never happens): kept, not rounded
    ])
    render_all(col("decimal", "decimal(10,0)", precision=10, scale=0), [
        (Decimal("1E+5"), "100000"), (Decimal("-0"), "0"), (Decimal("9999999999"), "9999999999"),
    ])
    render_all(col("decimal", "decimal(20,10)", precision=20, scale=10), [
        (Decimal("1E-7"), "0.0000001000"), (Decimal("-1.5E-10"), "-0.00000000015"),
    ])


def test_float_is_the_shortest_text_that_reads_back_as_the_same_float32() -> None:
    cases = [
        (f32(1.1), "1.1"), (f32(0.1), "0.1"), (f32(-2.5), "-2.5"), (0.0, "0"), (-0.0, "-0"),
        (f32(3.4028234663852886e38), "340282350000000000000000000000000000000"),  # FLT_MAX
        (f32(1.17549435e-38), "0.000000000000000000000000000000000000011754944"),  # FLT_MIN
        (f32(1e-45), "0." + "0" * 44 + "1"),  # smallest subnormal
        (f32(16777217.0), "16777216"), (f32(123456789.0), "123456790"), (f32(1e-7), "0.0000001"),
        (f32(1e20), "100000000000000000000"),
    ]
    render_all(col("float"), cases)


def test_float_matches_a_reference_shortest_repr_on_random_bit_patterns() -> None:
    np = pytest.importorskip("numpy")
    rng = random.Random(7)
    for _ in range(20_000):
        x = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        if x != x or abs(x) == float("inf"):
            continue
        want = np.format_float_positional(np.float32(x), unique=True, trim="-")
        assert render_float(x) == want, x


def test_double_is_the_shortest_round_trip_text_without_exponent() -> None:
    render_all(col("double"), [
        (1e20, "100000000000000000000"), (1e-7, "0.0000001"), (0.1 + 0.2, "0.30000000000000004"),
        (5.0, "5"), (-0.0, "-0"), (0.0, "0"), (-1.5e-5, "-0.000015"), (1e16, "10000000000000000"),
        (123456789012345680.0, "123456789012345680"), (2.2250738585072014e-308, "0." + "0" * 307 + "22250738585072014"),
        (1.7976931348623157e308, "17976931348623157" + "0" * 292),
    ])
    rng = random.Random(11)
    for _ in range(20_000):
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if x != x or abs(x) == float("inf"):
            continue
        text = render_double(x)
        assert float(text) == x and math.copysign(1, float(text)) == math.copysign(1, x)
        assert significant_digits(text) == significant_digits(repr(x))  # as short as Python's repr


def significant_digits(text: str) -> str:
    return text.split("e")[0].replace("-", "").replace(".", "").strip("0")


def test_bit_is_base64_of_the_declared_width() -> None:
    render_all(col("bit", "bit(1)"), [(1, "AQ=="), (0, "AA==")])
    render_all(col("bit", "bit(8)"), [(0x80, "gA==")])
    render_all(col("bit", "bit(10)"), [(1023, "A/8="), (1, "AAE=")])
    render_all(col("bit", "bit(64)"), [(2**64 - 1, "//////////8=")])


def test_one_bit_width_read_from_the_declaration_by_every_format() -> None:
    """`Column.bit_width` is BIT(n)'s n as declared: the catalog and the DDL reader both write `bit(n)` (a bare BIT
    is `bit(1)`) and leave `precision` unset. The Default rendering used `precision` first and the Debezium
    schemas the declaration; a `precision` that is not the width is where they differed: the declaration wins."""
    from obsync.connectors.mysql.catalog import column_from_row
    from obsync.formats.dataworks import column_type
    from obsync.formats.debezium import connect_schema as cs
    from obsync.formats.debezium.config import DebeziumConfig
    from obsync.formats.debezium.values import converters
    from obsync.sql.ddl import create_table_def, parse_ddl

    st = parse_ddl("CREATE TABLE t (a BIT, b BIT(10), c BIT(64))", "db")
    parsed = create_table_def(st, None).schema.columns  # type: ignore[arg-type]  # the statement is a CREATE TABLE
    read = [column_from_row((c.name, "bit", c.column_type, "YES", None, w, None, None, None, ""))
            for c, w in zip(parsed, (1, 10, 64), strict=True)]
    for c, want in zip([*parsed, *read], (1, 10, 64) * 2, strict=True):
        assert (c.column_type, c.precision, c.bit_width) == (f"bit({want})", None, want)
    odd = Column("b", "bit", "bit(10)", precision=2)  # precision 2 (say, bytes) is not the width
    cfg = DebeziumConfig("p")
    assert odd.bit_width == 10 and render_value(odd, 1) == "AAE="  # two bytes: ten bits
    assert cs.connect_schema_of(odd, cfg)["parameters"] == {"length": "10"}
    assert converters(odd, cfg)[0](1) == b"\x01\x00"  # Debezium: little-endian, (10+7)//8 bytes
    assert column_type(odd) == "LONG" and column_type(Column("b", "bit", "bit(1)", precision=2)) == "BOOLEAN"


@pytest.mark.parametrize("data_type", ["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"])
def test_binary_kinds_are_base64_of_their_bytes(data_type: str) -> None:
    render_all(col(data_type), [
        (b"", ""), (b"\x00", "AA=="), (b"\xff\xfe\x80\x00", "//6AAA=="),  # not UTF-8
        ("héllo".encode("latin-1"), "aOlsbG8="), (b"abc", "YWJj"),
    ])


def test_text_of_the_binary_charset_is_base64() -> None:
    render_all(col("varchar", "varbinary(8)", charset="binary"), [(b"\xc3\x28", "wyg=")])


@pytest.mark.parametrize("data_type", ["char", "varchar", "tinytext", "text", "mediumtext", "longtext"])
def test_text_as_is(data_type: str) -> None:
    render_all(col(data_type, charset="utf8mb4"), [
        ("", ""), ("😀 emoji", "😀 emoji"), ("中文字符", "中文字符"), ("tab\tnl\n\x00", "tab\tnl\n\x00"),
    ])


def test_json_enum_set_as_their_text() -> None:
    render_all(col("json"), [('{"a": [1, 2.5, "中"], "b": null}', '{"a": [1, 2.5, "中"], "b": null}')])
    render_all(col("enum", "enum('a','b')", values=("a", "b")), [("b", "b"), ("", "")])
    render_all(col("set", "set('a','b','c')", values=("a", "b", "c")), [("a,c", "a,c"), ("", "")])


def test_timestamp_is_epoch_seconds_with_the_column_fraction() -> None:
    t = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)  # 1700000000.123456
    render_all(col("timestamp"), [
        (t.replace(microsecond=0), "1700000000"), (dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "1"),
        (dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC), "2147483647"),
        ("0000-00-00 00:00:00", "0"),  # the zero TIMESTAMP, kept as text by the readers
        (dt.datetime(2023, 11, 14, 22, 13, 20), "1700000000"),  # naive: taken as UTC
    ])
    render_all(col("timestamp", "timestamp(6)", fsp=6), [
        (t, "1700000000.123456"), (t.replace(microsecond=0), "1700000000.000000"),
        (dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC), "2147483647.999999"),
    ])
    render_all(col("timestamp", "timestamp(3)", fsp=3), [(t, "1700000000.123"), ("0000-00-00 00:00:00.000", "0.000")])
    tz8 = dt.timezone(dt.timedelta(hours=8))
    assert render_value(col("timestamp"), dt.datetime(2023, 11, 15, 6, 13, 20, tzinfo=tz8)) == "1700000000"


def test_datetime_as_mysql_prints_it() -> None:
    v = dt.datetime(2024, 1, 2, 3, 4, 5, 120000)
    render_all(col("datetime", "datetime(6)", fsp=6), [
        (v, "2024-01-02 03:04:05.120000"), (v.replace(microsecond=0), "2024-01-02 03:04:05.000000"),
        (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31 23:59:59.999999"),
        ("0000-00-00 00:00:00", "0000-00-00 00:00:00.000000"),
    ])
    render_all(col("datetime"), [
        (v.replace(microsecond=0), "2024-01-02 03:04:05"), (dt.datetime(1000, 1, 1), "1000-01-01 00:00:00"),
        (dt.datetime(1, 1, 1), "0001-01-01 00:00:00"), ("0000-00-00 00:00:00", "0000-00-00 00:00:00"),
    ])
    render_all(col("datetime", "datetime(2)", fsp=2), [(v, "2024-01-02 03:04:05.12"),
                                                      ("2024-00-10 00:00:00.00", "2024-00-10 00:00:00.00")])


def test_date_as_mysql_prints_it() -> None:
    render_all(col("date"), [
        (dt.date(2024, 2, 29), "2024-02-29"), (dt.date(1000, 1, 1), "1000-01-01"),
        (dt.date(9999, 12, 31), "9999-12-31"), ("0000-00-00", "0000-00-00"), ("2024-00-10", "2024-00-10"),
    ])


def test_time_as_mysql_prints_it() -> None:
    render_all(col("time"), [
        (-dt.timedelta(hours=838, minutes=59, seconds=59), "-838:59:59"),
        (dt.timedelta(hours=838, minutes=59, seconds=59), "838:59:59"),
        (dt.timedelta(hours=123), "123:00:00"), (dt.timedelta(0), "00:00:00"),
        (dt.timedelta(hours=1, minutes=2, seconds=3), "01:02:03"),
    ])
    render_all(col("time", "time(6)", fsp=6), [
        (-dt.timedelta(seconds=1, microseconds=500000), "-00:00:01.500000"),
        (dt.timedelta(microseconds=1), "00:00:00.000001"),
        (-dt.timedelta(hours=838, minutes=59, seconds=59), "-838:59:59.000000"),
    ])
    render_all(col("time", "time(1)", fsp=1), [(dt.timedelta(seconds=1, microseconds=550000), "00:00:01.5")])


def test_year() -> None:
    render_all(col("year"), [(2024, "2024"), (1901, "1901"), (2155, "2155"), (0, "0000")])


def test_types_outside_the_table_bytes_as_base64_else_text() -> None:
    render_all(col("geometry"), [(b"\x00\x01", "AAE="), ("x", "x")])


def test_key_values_keep_integers_as_numbers() -> None:
    assert key_render_function(col("bigint", unsigned=True))(18446744073709551615) == 18446744073709551615
    assert key_render_function(col("year"))(2024) == 2024
    assert key_render_function(col("varchar"))("a") == "a"
    assert key_render_function(col("decimal", "decimal(5,2)", scale=2))(Decimal("1.5")) == "1.50"
    assert key_render_function(col("varbinary"))(b"\xff") == "/w=="


SCHEMA = TableSchema(
    "shop", "t",
    (Column("id", "int", "int(11)", nullable=False), Column("name", "varchar", "varchar(8)"),
     Column("at", "datetime", "datetime(3)", fsp=3), Column("raw", "varbinary", "varbinary(4)")),
    primary_key=("id",),
)


def test_a_table_renderer_is_built_once_per_schema() -> None:
    r = table_renderer(SCHEMA)
    assert table_renderer(SCHEMA) is r
    copy = TableSchema.from_dict(SCHEMA.to_dict())
    assert copy is not SCHEMA and table_renderer(copy) is r  # equal schemas share one
    other = TableSchema.from_dict({**SCHEMA.to_dict(), "name": "u"})
    assert table_renderer(other) is not r


def test_render_row_in_row_order_with_nulls() -> None:
    r = table_renderer(SCHEMA)
    row = {"id": 1, "name": None, "at": dt.datetime(2024, 1, 2, 3, 4, 5, 678000), "raw": b"\x01"}
    assert list(r.render_row(row).items()) == [
        ("id", "1"), ("name", None), ("at", "2024-01-02 03:04:05.678"), ("raw", "AQ==")]
    assert r.key_json_values(row) == [1]


def test_a_value_that_does_not_fit_its_column_names_the_column() -> None:
    r = table_renderer(SCHEMA)
    with pytest.raises(SchemaMismatchError, match=r"shop\.t\.raw \(varbinary\(4\)\).*str value 'oops'"):
        r.render_row({"id": 1, "name": "a", "at": None, "raw": "oops"})
    with pytest.raises(SchemaMismatchError, match="has column 'extra'"):
        r.render_row({"id": 1, "extra": 2})


# ---------------------------------------------------------------- the compiled row renderer against the Python one

class _Str(str):
    pass


class _Int(int):
    pass


_TZ_PLUS8 = dt.timezone(dt.timedelta(hours=8))
_EDGE_VALUES: dict[str, list[object]] = {
    "int": [0, -1, 2**63 - 1, -(2**63), 10**30, True, _Int(5), "7"],
    "varchar": ["", "a", "é\u4e2d\U0001f600", "\x00\n\"\\", _Str("sub"), 12, 3.5],
    "decimal(12,2)": [Decimal("0"), Decimal("-0"), Decimal("-0.00"), Decimal("5"), Decimal("5.1"), Decimal("-5.123"),
                      Decimal("1E+3"), Decimal("1.5E-7"), Decimal("-1E-9"), Decimal("12345678901234567890.5"),
                      Decimal("NaN"), Decimal("Infinity"), 5, 1.25, "3.1"],
    "decimal(10,0)": [Decimal("0"), Decimal("-0"), Decimal("42"), Decimal("-42"), Decimal("4.2"), Decimal("1E+2")],
    "double": [0.0, -0.0, 1.0, -1.5, 0.1, 1e16, 1e22, 1.5e-7, 123456789.125, float("inf"), float("-inf"),
               float("nan"), 2.2250738585072014e-308, 5e-324, 1.7976931348623157e308, 3, Decimal("1.5")],
    "datetime": [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
                 dt.datetime(1, 1, 1), dt.datetime(999, 12, 31, 23, 59, 59, 999999), dt.datetime(9999, 12, 31),
                 dt.datetime(2024, 1, 2, tzinfo=UTC), "0000-00-00 00:00:00", "0000-00-00 00:00:00.000"],
    "timestamp": [dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
                  dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), dt.datetime(1, 1, 1, tzinfo=UTC),
                  dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), dt.datetime(2024, 2, 29, 12),
                  dt.datetime(2024, 2, 29, 12, tzinfo=_TZ_PLUS8), dt.datetime(2000, 3, 1, fold=1, tzinfo=UTC),
                  "0000-00-00 00:00:00"],
    "date": [dt.date(2024, 1, 2), dt.date(1, 1, 1), dt.date(999, 9, 9), dt.datetime(2024, 1, 2, 3, 4),
             "0000-00-00"],
}


def _edge_columns() -> list[Column]:
    cols = [Column("i", "int", "int(11)"), Column("s", "varchar", "varchar(8)"),
            Column("d2", "decimal", "decimal(12,2)", scale=2), Column("d0", "decimal", "decimal(10,0)", scale=0),
            Column("f", "double", "double")]
    for fsp in range(7):
        cols.append(Column(f"dt{fsp}", "datetime", f"datetime({fsp})", fsp=fsp))
        cols.append(Column(f"ts{fsp}", "timestamp", f"timestamp({fsp})", fsp=fsp))
    cols += [Column("day", "date", "date"), Column("fl", "float", "float"), Column("b", "varbinary", "varbinary(4)"),
             Column("bits", "bit", "bit(3)"), Column("y", "year", "year"),
             Column("tm", "time", "time(2)", fsp=2), Column("j", "json", "json")]
    return cols


def _edges(column: Column) -> list[object]:
    key = {"int": "int", "varchar": "varchar", "double": "double", "date": "date", "datetime": "datetime",
           "timestamp": "timestamp"}.get(column.data_type, column.column_type)
    return _EDGE_VALUES.get(key, [])


def test_the_compiled_row_renderer_writes_what_the_python_one_does_on_every_kind_and_edge() -> None:
    from obsync.formats import values

    if values._CompiledRow is None:
        pytest.skip("installed without a C compiler: the Python renderer is the only one")
    columns = tuple(_edge_columns())
    schema = TableSchema("shop", "edges", columns, primary_key=("i",))
    renders = table_renderer(schema).renders
    compiled = values.full_row_renderer(columns, renders)
    python = values.full_row_renderer(columns, renders, compiled=False)
    assert type(compiled) is values._CompiledRow and type(python) is not values._CompiledRow
    base = {c.name: None for c in columns}
    tried = 0
    for c in columns:
        for v in _edges(c):
            row = {**base, c.name: v}
            try:
                want: object = python(row)
            except Exception as exc:  # noqa: BLE001 - both must fail alike
                with pytest.raises(type(exc)):
                    compiled(row)
                continue
            got = compiled(row)
            assert list(got.items()) == list(want.items()), (c.name, v)  # type: ignore[attr-defined]
            assert all(type(x) is type(y) for x, y in zip(got.values(), want.values(), strict=True))  # type: ignore[attr-defined]
            tried += 1
    assert tried > 80
    rng = random.Random(15)
    for _ in range(2000):  # random values of each compiled kind, a whole row at a time
        row = {c.name: None for c in columns}
        text = "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 6)))
        row.update(i=rng.randint(-(2**40), 2**40), s=text,
                   d2=Decimal(rng.randint(-10**9, 10**9)).scaleb(-rng.randint(0, 4)),
                   d0=Decimal(rng.randint(-10**9, 10**9)), f=struct.unpack("<d", rng.randbytes(8))[0],
                   day=dt.date.fromordinal(rng.randint(1, 3652059)))
        moment = dt.datetime(1, 1, 1) + dt.timedelta(microseconds=rng.randint(0, 315537897599999999))
        for fsp in range(7):
            row[f"dt{fsp}"] = moment
            row[f"ts{fsp}"] = moment.replace(tzinfo=UTC)
        assert compiled(row) == python(row), row


def test_the_compiled_row_renderer_fails_as_the_python_one_does() -> None:
    from obsync.formats import values

    if values._CompiledRow is None:
        pytest.skip("installed without a C compiler: the Python renderer is the only one")
    r = table_renderer(SCHEMA)
    assert type(r._full_row) is values._CompiledRow
    with pytest.raises(KeyError, match="'at'"):  # a missing column: render_row falls back to the general path
        r._full_row({"id": 1, "name": "a", "raw": b"", "other": 1})
    with pytest.raises(SchemaMismatchError, match=r"shop\.t\.raw \(varbinary\(4\)\).*str value 'oops'"):
        r.render_row({"id": 1, "name": "a", "at": None, "raw": "oops"})
    with pytest.raises(SchemaMismatchError, match="has column 'extra'"):
        r.render_row({"id": 1, "name": "a", "at": None, "extra": 2})

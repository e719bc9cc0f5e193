"""Row filters without a server: SQL's NULL logic, MySQL's number, text and date semantics, what is refused and
the SQL handed to the database. tests/integration/test_filters_mariadb.py checks the same against MariaDB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from obsync.core.errors import ConfigError, SourceError
from obsync.core.schema import Column, TableSchema
from obsync.sql.filters import RowFilter, compile_filter

UTC = dt.UTC


def text(name: str, collation: str, charset: str = "utf8mb4") -> Column:
    return Column(name, "varchar", "varchar(20)", charset=charset, collation=collation)


SCHEMA = TableSchema("app", "users", (
    Column("id", "int", "int"), Column("a", "tinyint", "tinyint"), Column("b", "tinyint", "tinyint"),
    Column("u", "bigint", "bigint unsigned", unsigned=True), Column("y", "year", "year"),
    Column("d", "decimal", "decimal(10,2)", scale=2), Column("f", "double", "double"),
    Column("f2", "float", "float(7,2)"),
    text("ci", "utf8mb4_general_ci"), text("nopad", "utf8mb4_0900_ai_ci"), text("bin", "utf8mb4_bin"),
    text("nbin", "utf8mb4_nopad_bin"), text("cs", "utf8mb4_0900_as_cs"), text("l1", "latin1_bin", "latin1"),
    Column("nocoll", "varchar", "varchar(9)", charset="utf8mb4"),
    Column("vb", "varbinary", "varbinary(9)", charset="binary"),
    Column("e", "enum", "enum('a','b')", charset="utf8mb4", values=("a", "b"), collation="utf8mb4_general_ci"),
    Column("day", "date", "date"), Column("at", "datetime", "datetime(3)", fsp=3),
    Column("ts", "timestamp", "timestamp"), Column("tm", "time", "time"),
    Column("js", "json", "json"), Column("st", "set", "set('x','y')", values=("x", "y")),
    Column("bt", "bit", "bit(8)"), Column("weird name", "int", "int"),
))


class FakeDb:
    """Stands in for `sql_eval`: answers from a table, records what it was asked."""

    def __init__(self, answer: Any = 1) -> None:
        self.answer = answer
        self.calls: list[tuple[str, tuple]] = []

    def __call__(self, sql: str, params: tuple) -> Any:
        self.calls.append((sql, params))
        return self.answer(params) if callable(self.answer) else self.answer


def f(where: str, sql_eval: Any = None) -> RowFilter:
    return compile_filter(where, SCHEMA, origin="objects.2.where (app.users)", sql_eval=sql_eval)


def ok(where: str, sql_eval: Any = None, **row: Any) -> bool:
    return f(where, sql_eval).matches(row)


def tv(where: str, **row: Any) -> str:
    """The SQL truth value of a condition: T, F or N (NULL)."""
    if ok(f"({where}) IS TRUE", **row):
        return "T"
    return "F" if ok(f"({where}) IS FALSE", **row) else "N"


def refused(where: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as e:
        f(where)
    msg = str(e.value)
    assert msg.startswith("objects.2.where (app.users): "), msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# -- NULL logic ----------------------------------------------------------------------------------------------

V = {"T": 1, "F": 0, "N": None}
AND = {"TT": "T", "TF": "F", "TN": "N", "FT": "F", "FF": "F", "FN": "F", "NT": "N", "NF": "F", "NN": "N"}
OR = {"TT": "T", "TF": "T", "TN": "T", "FT": "T", "FF": "F", "FN": "N", "NT": "T", "NF": "N", "NN": "N"}
XOR = {"TT": "F", "TF": "T", "TN": "N", "FT": "T", "FF": "F", "FN": "N", "NT": "N", "NF": "N", "NN": "N"}


@pytest.mark.parametrize("pair", sorted(AND))
def test_and_or_xor_truth_tables(pair: str) -> None:
    row = {"a": V[pair[0]], "b": V[pair[1]]}
    assert tv("a AND b", **row) == tv("a && b", **row) == AND[pair]
    assert tv("a OR b", **row) == tv("a || b", **row) == OR[pair]
    assert tv("a XOR b", **row) == XOR[pair]
    assert tv("NOT (a AND b)", **row) == {"T": "F", "F": "T", "N": "N"}[AND[pair]]


def test_not_is_and_numbers_as_conditions() -> None:
    assert [tv("NOT a", a=v) for v in (1, 0, None)] == ["F", "T", "N"]
    assert [tv("!a", a=v) for v in (5, 0, None)] == ["F", "T", "N"]
    assert [ok("a", a=v) for v in (2, -1, 0, None)] == [True, True, False, False]
    assert [ok("d", d=v) for v in (Decimal("0.01"), Decimal("0.00"))] == [True, False]
    assert [ok("a IS NULL", a=v) for v in (None, 0)] == [True, False]
    assert [ok("a IS NOT NULL", a=v) for v in (None, 0)] == [False, True]
    assert [ok("a IS TRUE", a=v) for v in (3, 0, None)] == [True, False, False]
    assert [ok("a IS NOT TRUE", a=v) for v in (3, 0, None)] == [False, True, True]
    assert [ok("a IS FALSE", a=v) for v in (3, 0, None)] == [False, True, False]
    assert [ok("a IS NOT FALSE", a=v) for v in (3, 0, None)] == [True, False, True]
    assert ok("TRUE") and not ok("FALSE") and not ok("NULL") and ok("NOT FALSE")
    assert ok("(a = 1) + (b = 1) = 2", a=1, b=1) and not ok("(a = 1) + (b = 1) = 2", a=1, b=None)


def test_comparisons_with_null() -> None:
    assert tv("a = NULL", a=1) == tv("a <> NULL", a=None) == "N"
    assert tv("a = b", a=1, b=None) == tv("a < b", a=None, b=1) == "N"
    assert [tv("a <=> b", a=x, b=y) for x, y in ((1, 1), (1, None), (None, None), (1, 2))] == ["T", "F", "T", "F"]
    assert [tv("a <=> NULL", a=x) for x in (None, 0)] == ["T", "F"]


def test_in_and_between_with_nulls() -> None:
    assert [tv("a IN (1, 2)", a=v) for v in (1, 3, None)] == ["T", "F", "N"]
    assert [tv("a IN (1, NULL)", a=v) for v in (1, 3, None)] == ["T", "N", "N"]
    assert [tv("a NOT IN (1, NULL)", a=v) for v in (1, 3)] == ["F", "N"]
    assert [tv("a IN (b, 7)", a=7, b=None), tv("a IN (b, 7)", a=1, b=None)] == ["T", "N"]
    assert [tv("a BETWEEN 1 AND 3", a=v) for v in (1, 3, 4, None)] == ["T", "T", "F", "N"]
    assert [tv("a BETWEEN b AND 3", a=v, b=None) for v in (2, 4)] == ["N", "F"]
    assert [tv("a NOT BETWEEN 1 AND 3", a=v) for v in (0, 2)] == ["T", "F"]
    assert not ok("a IN (NULL)", a=1) and not ok("NOT a IN (NULL)", a=1)


# -- numbers -------------------------------------------------------------------------------------------------

def test_integer_and_decimal_arithmetic_is_exact() -> None:
    assert ok("d + 0.1 = 0.3", d=Decimal("0.20"))
    assert ok("d * d = 0.0121", d=Decimal("0.11"))
    assert ok("u = 18446744073709551615", u=2**64 - 1)
    assert ok("u > 9223372036854775807", u=2**63) and not ok("u > 9223372036854775807", u=2**63 - 1)
    assert ok("id = -9223372036854775808", id=-(2**63))
    assert ok("d = 1", d=Decimal("1.00")) and ok("id = 1.0", id=1) and not ok("id = 1.5", id=1)
    assert ok("id * 2 + 1 = 15", id=7) and ok("- -id = 7", id=7) and ok("-d < 0", d=Decimal("0.01"))


def test_decimal_results_beyond_65_digits_are_refused() -> None:
    assert ok("d * d * 1.5 > 1", d=Decimal("1.00"))  # DECIMAL(10,2): at most 8 + 8 + 1 digits, 5 decimals
    refused("d * d * d * d * d * d * d * d > 0", "may need 70 digits, 14 after the point", "up to 65 digits")
    refused("d * 0.0000000000000000000000000000001 > 0", "more digits than a DECIMAL holds")
    refused("d * 0.000000000000000000000000000001 > 0", "32 after the point")


def test_div_mod_and_division_by_zero() -> None:
    assert ok("id DIV 2 = 3", id=7) and ok("id DIV 2 = -3", id=-7) and ok("id DIV 2 = 3", id=6)
    assert ok("id DIV -2 = -3", id=7) and ok("id % 3 = -1", id=-7) and ok("id MOD -3 = 1", id=7)
    assert ok("d DIV 0.3 = 5", d=Decimal("1.50")) and ok("d % 0.7 = 0.1", d=Decimal("1.50"))
    assert ok("d % -0.7 = -0.1", d=Decimal("-1.50"))
    for where in ("id DIV 0 IS NULL", "id % 0 IS NULL", "d % 0 IS NULL", "f / 0 IS NULL", "f % 0 IS NULL"):
        assert ok(where, id=5, d=Decimal("1.00"), f=2.0), where


def test_exact_division_is_refused_with_the_reason() -> None:
    refused("d / 3 > 1", "exact division `/`", "round its result differently", "DIV")
    refused("id / 2 = 1", "exact division")
    assert ok("f / 3 = 1", f=3.0) and ok("id / 2e0 = 3.5", id=7)


def test_overflow_fails_like_the_database() -> None:
    rf = f("u - 1 >= 0")
    assert rf.matches({"u": 1})
    with pytest.raises(ConfigError, match=r"BIGINT UNSIGNED value is out of range .* in u - 1"):
        rf.matches({"u": 0})
    with pytest.raises(ConfigError, match="BIGINT value is out of range"):
        f("id * 9223372036854775807 > 0").matches({"id": 2})
    with pytest.raises(ConfigError, match="BIGINT value is out of range"):
        f("-u < 0").matches({"u": 2**63 + 1})
    with pytest.raises(ConfigError, match="DOUBLE value is out of range"):
        f("f * 1e300 > 0").matches({"f": 1e300})
    refused("1 - 18446744073709551615 < 0", "out of range")


def test_doubles_compare_as_doubles() -> None:
    assert ok("f = 0.1", f=0.1) and not ok("f = 0.3", f=0.1 + 0.2)
    assert ok("f = 9007199254740993", f=9007199254740992.0)  # the integer becomes a double, as in MySQL
    assert ok("id + 0e0 = 7", id=7) and ok("d = 1.5e0", d=Decimal("1.50"))
    assert ok("f IN (0.1, 3)", f=3.0) and not ok("f IN (0.1, 3)", f=0.2)
    refused("id IN (1, 2e0)", "mixes exact numbers with DOUBLE")
    refused("id BETWEEN 1 AND 2e0", "mixes exact numbers with DOUBLE")
    refused("f2 > 1", "float(7,2)", "only IS [NOT] NULL")


def test_year_literals() -> None:
    assert ok("y = 2024", y=2024) and ok("y = 0", y=0) and ok("y > 1999", y=2000)
    refused("y = 24", "four-digit year", "24 is 2024")
    refused("y IN (2024, 99)", "four-digit year")


# -- text ----------------------------------------------------------------------------------------------------

def test_case_insensitive_equality_and_like_on_ascii_are_local() -> None:
    db = FakeDb()
    assert ok("ci = 'ABC'", db, ci="abc  ")  # PAD SPACE: trailing spaces do not count
    assert not ok("ci = 'ABC'", db, ci="abd")
    assert ok("ci IN ('x', 'AbC')", db, ci="aBc")
    assert ok("nopad = 'ABC'", db, nopad="abc") and not ok("nopad = 'ABC'", db, nopad="abc ")  # NO PAD
    assert ok("ci LIKE 'a_c%'", db, ci="AbCdef") and not ok("ci LIKE 'a'", db, ci="a ")  # LIKE never pads
    assert ok("e = 'A'", db, e="a")
    assert db.calls == []


def test_what_the_collation_decides_is_asked_and_cached() -> None:
    db = FakeDb(answer=1)
    rf = f("ci < 'b'", db)
    assert rf.matches({"ci": "a"}) and rf.matches({"ci": "a"})
    assert db.calls == [("CONVERT(%s USING utf8mb4) COLLATE utf8mb4_general_ci < "
                         "CONVERT(%s USING utf8mb4) COLLATE utf8mb4_general_ci", ("a", "b"))]
    db.calls.clear()
    assert ok("ci = 'strasse'", db, ci="straße")  # non-ASCII: the database knows whether ß = ss here
    assert ok("ci LIKE 'ä%'", db, ci="Äb")
    assert ok("cs = 'a'", db, cs="a")  # a collation obsync does not emulate
    assert [c[0].split(" ")[5] for c in db.calls] == ["=", "LIKE", "="]
    assert db.calls[1][1] == ("Äb", "ä%", "\\")
    db = FakeDb(answer=None)
    assert not ok("ci BETWEEN 'a' AND 'c'", db, ci="b")


def test_a_row_that_needs_the_database_without_one_is_a_source_error() -> None:
    rf = f("ci = 'x'")
    assert rf.matches({"ci": "X"})
    with pytest.raises(SourceError, match="needs the source database"):
        rf.matches({"ci": "É"})


def test_bin_collations_compare_code_points_with_their_pad_rule() -> None:
    assert ok("bin = 'a'", bin="a  ") and not ok("bin = 'a'", bin="A")
    assert ok("bin > 'a\\t'", bin="a")  # PAD SPACE: 'a' is 'a ' and ' ' > TAB
    assert not ok("nbin > 'a\\t'", nbin="a") and not ok("nbin = 'a'", nbin="a ")  # NO PAD
    assert ok("bin < 'b'", bin="B") and ok("bin > 'z'", bin="ä") and ok("bin LIKE 'Ä%'", bin="Äx")
    db = FakeDb(answer=0)
    assert ok("l1 = 'é'", db, l1="é") and ok("l1 < 'b'", db, l1="a")
    assert not ok("l1 < 'b'", db, l1="é") and len(db.calls) == 1  # latin1 bytes are not code-point order


def test_binary_strings_compare_bytes() -> None:
    assert ok("vb = 'ab'", vb=b"ab") and not ok("vb = 'ab'", vb=b"ab ") and not ok("vb = 'AB'", vb=b"ab")
    assert ok("vb = x'ff00'", vb=b"\xff\x00") and ok("vb > 'a'", vb=b"\xc3\x84")
    assert ok("vb = 'Ä'", vb="Ä".encode()) and ok("vb LIKE '_'", vb=b"\xff")
    refused("vb = ci", "with a binary string")


def test_like_escapes() -> None:
    assert ok("ci LIKE 'x\\_y'", ci="x_y") and not ok("ci LIKE 'x\\_y'", ci="xay")
    assert ok("ci LIKE 'x\\%'", ci="x%") and not ok("ci LIKE 'x\\%'", ci="xy")
    assert ok("ci LIKE 'x!_y' ESCAPE '!'", ci="x_y") and not ok("ci LIKE 'x!_y' ESCAPE '!'", ci="xay")
    assert ok("ci LIKE 'x\\\\\\\\y'", ci="x\\y")  # SQL 'x\\\\y' is x\\y: an escaped backslash
    assert ok("ci LIKE 'x\\\\y'", ci="xy")  # SQL 'x\\y' is x\y: the backslash escapes y
    assert ok("ci LIKE 'ab!' ESCAPE '!'", ci="ab!")  # an escape at the end is itself
    assert ok("ci LIKE '%%a%%'", ci="xAx") and ok("ci LIKE '%'", ci="") and not ok("ci LIKE '_'", ci="")
    assert ok("ci NOT LIKE 'a%'", ci="b") and not ok("ci NOT LIKE 'a%'", ci=None)
    assert ok("vb LIKE 'a|%' ESCAPE '|'", vb=b"a%") and not ok("vb LIKE 'a|%' ESCAPE '|'", vb=b"ab")
    refused("ci LIKE 'a' ESCAPE ''", "one character")
    refused("ci LIKE 'a' ESCAPE 'ab'", "one character")
    refused("ci LIKE bin", "quoted literal")
    refused("id LIKE '1%'", "LIKE applies to a text or binary column")


def test_text_refusals() -> None:
    refused("ci = 1", "compares text column ci with the number 1", "quote the literal")
    refused("id = '1'", "write the number without quotes")
    refused("ci = bin", "two collations")
    refused("'a' = 'b'", "two literals")
    refused("nocoll = 'x'", "collation of column nocoll is not known")
    refused("l1 = '😀'", "latin1 cannot hold")
    refused("ci", "is a text used as a condition")
    refused("ci AND id = 1", "used as a condition")
    assert ok("nocoll IS NULL", nocoll=None)


# -- dates and times -------------------------------------------------------------------------------------------

def test_dates_compare_with_literals_in_the_columns_type() -> None:
    d = dt.date(2024, 1, 1)
    assert ok("day = '2024-01-01'", day=d) and ok("day < '2024-01-01 10:00:00'", day=d)  # as DATETIME
    assert not ok("day = '2024-01-01 00:00:00.000001'", day=d) and ok("day = '2024-01-01 00:00:00'", day=d)
    assert ok("at = '2024-01-01'", at=dt.datetime(2024, 1, 1))
    assert ok("at > '2024-01-01'", at=dt.datetime(2024, 1, 1, 0, 0, 0, 1000))
    assert ok("at BETWEEN '2024-01-01' AND '2024-01-01T10:00:00.5'", at=dt.datetime(2024, 1, 1, 10, 0, 0, 500000))
    assert ok("ts = '2024-01-01 05:00:00'", ts=dt.datetime(2024, 1, 1, 5, tzinfo=UTC))
    assert ok("tm < '-00:30:00'", tm=-dt.timedelta(hours=1))
    assert ok("tm = '838:59:59'", tm=dt.timedelta(hours=838, minutes=59, seconds=59))
    assert ok("day IN ('2024-01-01', '2024-02-29')", day=dt.date(2024, 2, 29))


def test_zero_dates_order_before_every_date() -> None:
    for stored in ("0000-00-00", "2024-00-10"):
        assert ok("day < '2024-01-01'", day=stored) and not ok("day = '2024-01-01'", day=stored)
    assert ok("day > '2023-12-31'", day="2024-00-10")
    assert ok("at < '1000-01-01'", at="0000-00-00 00:00:00.000")
    assert ok("ts < '1970-01-02'", ts="0000-00-00 00:00:00")
    assert ok("day < '1000-01-01'", day="0000-00-00") and not ok("day > day", day="0000-00-00")


def test_date_refusals() -> None:
    refused("day = '2024-13-01'", "not a valid date", "'YYYY-MM-DD'")
    refused("day = '2024/01/01'", "not a valid date")
    refused("day = 20240101", "write dates and times as quoted literals")
    refused("tm = '10:00'", "'[-]hhh:mm:ss[.ffffff]'")
    refused("day = at", "cannot compare")
    refused("day = DATE '2024-01-01'", "typed literal")
    refused("day > NOW()", "function")
    refused("day + 1 > 0", "needs numbers")


# -- refused constructs and injection ----------------------------------------------------------------------------

@pytest.mark.parametrize("where, fragment", [
    ("1=1; DROP TABLE x", "`;` is not allowed"),
    ("id = 1;", "`;` is not allowed"),
    ("id IN (SELECT id FROM mysql.user)", "a subquery"),
    ("EXISTS (SELECT 1)", "subquery"),
    ("id = (SELECT 1)", "subquery"),
    ("id = ANY (SELECT 1)", "subquery"),
    ("sleep(1)", "function SLEEP()"),
    ("id = 1 AND SLEEP(5) = 0", "function SLEEP()"),
    ("BENCHMARK(1000000, MD5('a'))", "function BENCHMARK()"),
    ("LOWER(ci) = 'a'", "function LOWER()"),
    ("ci = 'a' 'b'", "function CONCAT()"),
    ("id = 1 UNION SELECT password FROM mysql.user", "not a single WHERE condition"),
    ("id = 1) OR (1 = 1", "not a single WHERE condition"),
    ("id = 1 ORDER BY id", "not a single WHERE condition"),
    ("SELECT 1", "not a single WHERE condition"),
    ("id = 1 /*!50000 OR 1 = 1 */", "executable comment"),
    ("id = 1 /*M! OR 1 = 1 */", "executable comment"),
    ("@x = 1", "a variable"),
    ("@@version = 1", "a variable"),
    ("id = ?", "a parameter placeholder"),
    ("ci REGEXP 'a'", "REGEXP"),
    ("CASE WHEN id = 1 THEN 1 ELSE 0 END", "CASE"),
    ("ci COLLATE utf8mb4_bin = 'a'", "COLLATE"),
    ("CAST(ci AS BINARY) = 'a'", "CAST"),
    ("BINARY ci = 'a'", "CAST"),
    ("INTERVAL 1 DAY + day > '2024-01-01'", "INTERVAL"),
    ("id & 1 = 1", "bitwise operator"),
    ("(id, a) = (1, 2)", "row constructor"),
    ("vb = b'01'", "bit literal"),
    ("ci = _latin1'a'", "introducer"),
    ("ci = N'a'", "introducer"),
    ("x = 1", "has no column 'x'; its columns: id, a, b, u"),
    ("users.id = 1", "without a table or database prefix"),
    ("js = '{}'", "column js is json: only IS [NOT] NULL"),
    ("st = 'x'", "only IS [NOT] NULL"),
    ("bt = 1", "only IS [NOT] NULL"),
    ("id IN ()", "an empty IN list"),
    ("", "empty"),
    ("   ", "empty"),
    ("id = 1 AND", "not a single WHERE condition"),
    ("x'f' = vb", "even number of digits"),
])
def test_refusals_name_the_construct(where: str, fragment: str) -> None:
    refused(where, fragment)


def test_sql_is_regenerated_from_the_parse() -> None:
    rf = f("ID = 1 and CI like 'a%' -- trailing comment")
    assert rf.sql == "(`id` = 1) AND (`ci` LIKE 'a%')"  # names as in the catalog, no comment
    assert rf.columns == ("id", "ci")
    assert f("`weird name` > 0 /* note */ or not a").sql == "(`weird name` > 0) OR (NOT `a`)"
    assert f("ci = 'it''s \\\\ \\'q\\'' || id <=> NULL").sql == "(`ci` = 'it''s \\\\ ''q''') OR (`id` <=> NULL)"
    assert f("!a = 1").sql == "(NOT `a`) = 1"  # MySQL's `!` binds tighter than `=`; the parentheses say so
    assert f("a = b IS NULL").sql == "(`a` = `b`) IS NULL"
    assert f("NOT id BETWEEN -1 AND 2").sql == "NOT (`id` BETWEEN (-1) AND 2)"
    assert f("ci NOT LIKE 'x!%' ESCAPE '!'").sql == "`ci` NOT LIKE 'x!%' ESCAPE '!'"
    assert f("vb = 0xFF00").sql == "`vb` = x'FF00'"
    assert f("day = \"2024-01-01\"").sql == "`day` = '2024-01-01'"
    for where in ("a = 1", "id IN (1, 2, NULL)", "ci LIKE '%\\_%' ESCAPE '\\\\'", "a IS NOT TRUE", "u % 2 = 1"):
        sql = f(where).sql
        assert f(sql).sql == sql  # stable


def test_columns_read_and_speed_shape() -> None:
    rf = f("(a = 1 OR b = 2) AND a IS NOT NULL AND ci IN ('x')")
    assert rf.columns == ("a", "b", "ci")
    assert repr(rf) == f"RowFilter({rf.sql!r})"


def test_schema_collation_round_trips_and_old_dicts_load() -> None:
    d = SCHEMA.to_dict()
    assert TableSchema.from_dict(d) == SCHEMA
    ci = next(c for c in d["columns"] if c["name"] == "ci")
    assert ci["collation"] == "utf8mb4_general_ci"
    for c in d["columns"]:
        c.pop("collation")
    assert TableSchema.from_dict(d).column("ci").collation is None

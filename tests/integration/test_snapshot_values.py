"""Every MySQL column type read by the snapshot reader gives its canonical value (see obsync.core.schema), on MariaDB
and on seekdb, through both SQL drivers (mysqlclient and pymysql). The raw values behind these are recorded in
tests/unit/test_sql_values.py."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from obsync.connectors.mysql import fastsql
from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot import ChunkReader, plan_snapshot

UTC = dt.UTC

# name, declaration, SQL literal, canonical value
COLUMNS = [
    ("ti", "TINYINT", "-128", -128),
    ("tiu", "TINYINT UNSIGNED", "255", 255),
    ("si", "SMALLINT", "-32768", -32768),
    ("miu", "MEDIUMINT UNSIGNED", "16777215", 16777215),
    ("i", "INT", "-2147483648", -2147483648),
    ("iu", "INT UNSIGNED", "4294967295", 4294967295),
    ("bi", "BIGINT", "-9223372036854775808", -9223372036854775808),
    ("biu", "BIGINT UNSIGNED", "18446744073709551615", 18446744073709551615),
    ("de", "DECIMAL(65,30)", "-12345678901234567890123456789012345.123456789012345678901234567890",
     Decimal("-12345678901234567890123456789012345.123456789012345678901234567890")),
    ("de0", "DECIMAL(10,0)", "42", Decimal("42")),
    ("fl", "FLOAT", "1.2345678", 1.2345677614212036),
    ("fl2", "FLOAT(7,2)", "12.345", 12.350000381469727),
    ("db", "DOUBLE", "0.30000000000000004", 0.30000000000000004),
    ("db2", "DOUBLE", "-1e-300", -1e-300),
    ("b1", "BIT(1)", "b'1'", 1),
    ("b64", "BIT(64)", "b'" + "1" * 64 + "'", 2**64 - 1),
    ("ch", "CHAR(10)", "'a😀中'", "a😀中"),
    ("vc", "VARCHAR(20)", "'Ab 😀中文 '", "Ab 😀中文 "),
    # A binary collation is still text (mysqlclient once returned bytes for these: they carry BINARY_FLAG).
    ("vcb", "VARCHAR(20) COLLATE utf8mb4_bin", "'Ab😀'", "Ab😀"),
    ("txb", "TEXT COLLATE utf8mb4_bin", "'é'", "é"),
    ("tx", "TEXT", "'x\\ty😀\\n'", "x\ty😀\n"),
    ("lt", "LONGTEXT", "'é'", "é"),
    ("bn", "BINARY(4)", "x'ff00fe'", b"\xff\x00\xfe\x00"),
    ("vb", "VARBINARY(10)", "x'ff80'", b"\xff\x80"),
    ("bl", "BLOB", "x'00ffc3'", b"\x00\xff\xc3"),
    ("lb", "LONGBLOB", "x'c328'", b"\xc3\x28"),
    ("chb", "CHAR(4) CHARACTER SET binary", "x'ff01'", b"\xff\x01\x00\x00"),
    ("d", "DATE", "'2024-02-29'", dt.date(2024, 2, 29)),
    ("t", "TIME(6)", "'-838:59:58.999999'", -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999)),
    ("t2", "TIME(2)", "'-00:00:01.5'", dt.timedelta(seconds=-1.5)),
    ("t0", "TIME", "'838:59:59'", dt.timedelta(hours=838, minutes=59, seconds=59)),
    ("dt6", "DATETIME(6)", "'2024-01-02 03:04:05.000006'", dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
    ("dt0", "DATETIME", "'9999-12-31 23:59:59'", dt.datetime(9999, 12, 31, 23, 59, 59)),
    # Written in a +05:00 session: 03:04 there is 22:04 UTC the day before.
    ("ts", "TIMESTAMP(6) NULL", "'2024-01-02 03:04:05.123456'", dt.datetime(2024, 1, 1, 22, 4, 5, 123456, tzinfo=UTC)),
    ("y", "YEAR", "2024", 2024),
    ("y0", "YEAR", "0", 0),
    ("en", "ENUM('a','B','c d')", "'c d'", "c d"),
    ("st", "SET('x','y','z')", "'z,x'", "x,z"),
    ("st0", "SET('x','y')", "''", ""),
    ("nul", "INT", "NULL", None),
    ("nuld", "DATETIME(3)", "NULL", None),
]
JSON_LITERAL = """'{"b": 1, "a": [1.5, "é😀", null, true], "aa": {"x": 1e300}}'"""


DRIVERS = [pytest.param("mysqlclient", marks=pytest.mark.skipif(not fastsql.AVAILABLE,
                                                               reason="mysqlclient not installed")),
           "pymysql"]


@pytest.fixture(params=["mariadb", "seekdb"])
def server(request: pytest.FixtureRequest) -> Iterator[object]:
    yield request.getfixturevalue(request.param)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return request.param


def test_every_column_type_reads_as_its_canonical_value(server: object, driver: str) -> None:
    ep = Endpoint(server.host, server.port, server.user, server.password)  # type: ignore[attr-defined]  # the server fixtures share no declared type
    conn = connect(ep)
    dialect = detect_dialect(conn)
    db = f"snapv_{uuid.uuid4().hex[:10]}"
    cols = ", ".join(f"`{n}` {decl}" for n, decl, _, _ in COLUMNS)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, {cols}, js JSON)")
        cur.execute("SET time_zone = '+05:00'")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, {', '.join(v for _, _, v, _ in COLUMNS)}, {JSON_LITERAL})")
        cur.execute("SET time_zone = '+00:00'")
    try:
        schema = load_table_schema(conn, db, "t")
        plan = plan_snapshot(conn, dialect, [schema], chunk_size=10)
        reader = ChunkReader(ep, plan, plan.chunk_ids[0], batch_size=10, driver=driver)  # type: ignore[arg-type]  # driver: a str fixture param
        assert reader.driver == driver
        [change] = reader.next_batch() or []
        row = change.after
        assert row is not None
        expected = {"id": 1, **{n: v for n, _, _, v in COLUMNS}}
        if dialect == "mariadb":  # JSON is LONGTEXT in MariaDB: the text as stored
            expected["js"] = '{"b": 1, "a": [1.5, "é😀", null, true], "aa": {"x": 1e300}}'
        else:  # a JSON type: parsed and re-dumped, in the key order the server keeps
            expected["js"] = '{"a": [1.5, "é😀", null, true], "b": 1, "aa": {"x": 1e+300}}'
        assert list(row) == list(expected)
        for name, want in expected.items():
            got = row[name]
            assert (got, type(got)) == (want, type(want)), name
            if isinstance(want, dt.datetime):
                assert got.tzinfo == want.tzinfo, name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        conn.close()


def test_zero_dates_stay_the_servers_text(mariadb: object, driver: str) -> None:
    """MariaDB stores zero dates when sql_mode allows them (OceanBase refuses them)."""
    ep = Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password)  # type: ignore[attr-defined]  # the server fixtures share no declared type
    conn = connect(ep)
    db = f"snapz_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.z (id INT PRIMARY KEY, d DATE, dt DATETIME(3), ts TIMESTAMP NULL, "
                    "p DATE)")
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(f"INSERT INTO {db}.z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', "
                    "'2024-00-10')")
    try:
        plan = plan_snapshot(conn, "mariadb", [load_table_schema(conn, db, "z")], chunk_size=10)
        [change] = ChunkReader(ep, plan, plan.chunk_ids[0], batch_size=10,
                               driver=driver).next_batch() or []  # type: ignore[arg-type]  # driver: a str fixture param
        assert change.after == {"id": 1, "d": "0000-00-00", "dt": "0000-00-00 00:00:00.000",
                                "ts": "0000-00-00 00:00:00", "p": "2024-00-10"}
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        conn.close()

"""Row filters give the database's answer: for every clause, the rows MariaDB selects with
`WHERE (<RowFilter.sql>)` are exactly the rows whose canonical image (as the snapshot reader carries it)
`RowFilter.matches`, with the comparisons obsync leaves to the database asked through a real `sql_eval`."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest

from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.connectors.mysql.snapshot import ChunkReader, plan_snapshot
from obsync.core.errors import ConfigError
from obsync.core.schema import TableSchema
from obsync.sql.filters import RowFilter, compile_filter

TEXT = ["", " ", "a", "A", "a ", "a  ", "abc", "ABC", "abc  ", "Abd", "b", "B", "z", "Z", "Ä", "ä", "ß", "ss", "SS",
        "é", "e", "E", "x_y", "x%y", "xy", "x\\y", "a\tb", "a\t", "it's", "_", "-", "[", "a\x01", "ab"]
WIDE = ["😀", "a😀", "ẞ", "中文"]  # not in latin1
COLUMNS: dict[str, tuple[str, list[Any]]] = {
    "i": ("INT", [0, 1, -1, 2, 3, 7, 10, 100, -100, 2147483647, -2147483648]),
    "u": ("BIGINT UNSIGNED", [0, 1, 5, 100, 2**63, 2**64 - 1, 9007199254740993]),
    "ti": ("TINYINT", [-128, 0, 1, 127]),
    "y": ("YEAR", [0, 1901, 2000, 2024, 2155]),
    "d": ("DECIMAL(12,3)", ["0", "1.5", "-1.5", "0.001", "123456789.123", "2.000", "1.234", "0.5"]),
    "f": ("DOUBLE", [0.0, 0.1, -0.5, 1e300, 3.0, 2.5, 9007199254740993, 1 / 3, 1e-301]),
    "fl": ("FLOAT", [0.1, 1.5, -2.25, 3.4e38]),
    "s": ("VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", TEXT + WIDE),
    "sb": ("VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", TEXT + WIDE),
    "sn": ("VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin", TEXT + WIDE),
    "su": ("VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", TEXT + WIDE),
    "l1": ("VARCHAR(16) CHARACTER SET latin1", TEXT),
    "c": ("CHAR(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", TEXT + WIDE),
    "vb": ("VARBINARY(16)", [b"", b"a", b"A", b"a ", b"\x00", b"\xff\x00", b"abc", "Ä".encode(), b"x%y", b"x_y"]),
    "bn": ("BINARY(4)", [b"a", b"ab", b"\xff", b"", b"a\x00"]),
    "dt": ("DATE", ["2024-01-01", "2023-12-31", "2024-02-29", "1000-01-01", "9999-12-31", "0000-00-00",
                    "2024-00-10", "2024-01-00"]),
    "dtm": ("DATETIME(3)", ["2024-01-01 00:00:00", "2024-01-01 00:00:00.001", "2024-01-01 10:00:00.5",
                            "2023-12-31 23:59:59.999", "0000-00-00 00:00:00", "1000-01-01 00:00:00"]),
    "ts": ("TIMESTAMP(2) NULL", ["1970-01-01 00:00:01", "2024-01-01 00:00:00", "2024-01-01 10:00:00.5",
                                 "2038-01-19 03:14:07", "0000-00-00 00:00:00"]),
    "tm": ("TIME(1)", ["00:00:00", "10:00:00", "-01:00:00", "838:59:59", "-838:59:59", "00:00:00.5", "23:59:59.9"]),
    "e": ("ENUM('a','B','c d','é') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", ["a", "B", "c d", "é", ""]),
    "j": ("JSON", ['{"a": 1}', "[]"]),
    "st": ("SET('x','y')", ["x", "x,y", ""]),
}

CLAUSES = [
    # numbers, NULL logic
    "i = 1", "i <> 1", "i != 1 AND i > -5", "i > 2 AND i < 100", "i >= 7 OR u = 5", "NOT i = 1", "!(i = 1)",
    "i IN (1, 2, 3, NULL)", "i NOT IN (1, 2, NULL)", "i NOT IN (1, 2)", "i IN (ti, 7)", "i BETWEEN -1 AND 10",
    "i NOT BETWEEN 0 AND 3", "i BETWEEN ti AND 10", "i IS NULL", "i IS NOT NULL AND u IS NULL",
    "i + 1 > 2", "i * 2 = 14", "i - ti < 0", "i DIV 3 = 0", "i % 3 = 1", "i MOD -3 = -1", "-i > 0", "- -i = 7",
    "u = 18446744073709551615", "u > 9223372036854775807", "u = 9007199254740993", "u + 0e0 = 9007199254740992",
    "f = 9007199254740993", "u > i", "d = 1.5", "d > 1.2345", "d = 2", "d * 2 > 3", "d + i > 3.5", "d % 1 = 0.5",
    "d DIV 1 = 1", "d = 1.5e0", "d * d > 2", "d IN (0.5, 2, 1.5000)", "d BETWEEN 0.001 AND 1.5", "f = 0.1",
    "f > 0.3333", "f < 1e-300 AND f > -1", "f * 3 = 1", "f / 0 IS NULL", "f / 3 < 1", "f % 2 = 0.5",
    "f IN (0.1, 3, 2.5e0)", "f = 1/3e0", "fl = 1.5", "fl = 0.1", "fl > 0.1", "fl < f", "ti", "i AND ti", "i OR ti",
    "i XOR ti", "NOT ti", "(i = 1) + (ti = 1) >= 1", "(i = 1) IS TRUE", "ti IS FALSE", "(i > 5) IS NOT TRUE",
    "i IS NOT FALSE", "y = 2024", "y > 2000", "y = 0", "y BETWEEN 1901 AND 2000", "y + 1 > 2025", "TRUE",
    "NOT FALSE AND i > 0", "NULL", "i = NULL", "i <=> NULL", "i <=> ti", "NOT (i <=> NULL)", "i = 1 = 1",
    # text, general_ci
    "s = 'abc'", "s = 'ä'", "s = 'ss'", "s = 'SS '", "s <> 'a'", "s IN ('a', 'B', 'Ä')", "s < 'b'",
    "s BETWEEN 'a' AND 'b'", "s LIKE 'a%'", "s LIKE 'A_'", "s LIKE '%\\_%'", "s LIKE 'x!%y' ESCAPE '!'",
    "s LIKE 'x\\\\y'", "s LIKE 'x\\\\\\\\y'", "s LIKE 'x|y' ESCAPE '|'", "s NOT LIKE '%a%'", "s LIKE 'a '",
    "s LIKE 'ä%'", "s LIKE '%😀'", "s <=> 'A'",
    "s IS NULL OR s = ''", "s = c", "s LIKE '%'", "s LIKE '_'", "s LIKE 'a\\t%'",
    # utf8mb4_bin (PAD SPACE), nopad_bin, unicode_ci, latin1, CHAR
    "sb = 'abc'", "sb = 'abc  '", "sb < 'b'", "sb > 'a\\t'", "sb < 'a'", "sb BETWEEN 'A' AND 'a'", "sb LIKE 'Ä%'",
    "sb IN ('a', 'A ')", "sb >= 'ä'", "sb LIKE 'a_'", "sb <> sb", "sn = 'a'", "sn < 'a '", "sn = 'a '",
    "sn > 'a\\t'", "sn LIKE 'a%'", "su = 'abc'", "su < 'b'", "su = 'ss'", "su LIKE 'S%'", "su = 'ẞ'",
    "l1 = 'abc'", "l1 = 'ä'", "l1 < 'b'", "l1 LIKE '_'", "l1 LIKE 'ß%'", "c = 'abc'", "c LIKE 'ab%'",
    "c < 'b'", "c = 'a  '", "c LIKE 'a '",
    # binary strings
    "vb = 'abc'", "vb = 'a'", "vb < 'b'", "vb LIKE 'a%'", "vb = x'ff00'", "vb LIKE '_'", "vb IN ('a', x'00')",
    "vb > 'a '", "vb = 'Ä'", "vb LIKE 'x\\_y'", "bn = x'61000000'", "bn = 'a'", "bn > x'00'", "bn LIKE 'a%'",
    # ENUM
    "e = 'b'", "e = 'É'", "e < 'c'", "e LIKE 'c%'", "e IN ('a', 'c d')", "e = ''",
    # dates and times
    "dt = '2024-01-01'", "dt < '2024-01-01'", "dt > '2023-12-31'", "dt < '2024-01-01 10:00:00'",
    "dt = '2024-01-01 00:00:00'", "dt BETWEEN '2024-01-01' AND '2024-12-31'", "dt IN ('2024-02-29', '9999-12-31')",
    "dt >= '1000-01-01'", "dt <= '1000-01-01'", "dtm = '2024-01-01'", "dtm > '2024-01-01 00:00:00.0005'",
    "dtm BETWEEN '2024-01-01' AND '2024-01-01 10:00:00.5'", "dtm < '1000-01-01'", "dtm IN ('2024-01-01T10:00:00.5')",
    "ts = '2024-01-01 00:00:00'", "ts < '2024-01-01T10:00:00.49'", "ts > '1970-01-01'", "ts >= '2038-01-19'",
    "ts < '1970-01-02'", "tm > '00:00:00'", "tm < '-00:30:00'", "tm BETWEEN '-01:00:00' AND '23:59:59.9'",
    "tm IN ('838:59:59', '00:00:00.5')", "tm >= '100:00:00'", "dt = dt", "dtm > dtm", "tm < tm",
    "dt IS NULL OR tm IS NULL", "j IS NOT NULL", "st IS NULL",
    # division by zero, DIV and MOD signs, mixed types
    "i DIV 0 IS NULL", "i % 0 IS NULL", "d % 0 IS NULL", "d DIV 0 IS NULL", "f % 0 IS NULL", "i DIV -2 = -1",
    "d DIV 0.3 = 5", "u DIV 2 > 1", "u % 7 = 3", "d % -0.7 < 0", "i % -7 = -2", "ti * ti > 100", "i * 1.5 > 3",
    "i * 1e0 / 7 > 0.3", "fl * 2 = 3", "d + f > 2", "d = 1.50", "-d < 0", "d > -0", "y IN (2024, 0)",
    "i IN (1.0, 2)", "d IN (1.5, NULL)", "u IN (18446744073709551615, 0)", "i BETWEEN 10 AND 1",
    "NOT (i BETWEEN NULL AND 5)", "i IN (NULL)", "NOT i IN (NULL)", "(i > 1) = (ti > 0)", "s = 'abc' OR NULL",
    "s = 'abc' AND NULL", "NOT (s = 'abc' AND NULL)", "ts BETWEEN '2024-01-01' AND '2024-01-01 10:00:00.5'",
    "dt <> '2024-01-01'", "dt <=> '2024-01-01'", "tm <> '00:00:00'", "e > 'a'", "vb BETWEEN 'a' AND 'b'",
    "sn BETWEEN 'a' AND 'a '", "su IN ('ss', 'ß')", "l1 = 'É'", "l1 LIKE 'a%'", "l1 > 'a'", "sb = 'a\t'",
    # combinations
    "(s = 'abc' OR i > 5) AND NOT (dt < '2024-01-01')", "s = 'a' XOR sb = 'a'",
    "i > 0 AND (su < 'm' OR vb LIKE '%') AND dtm IS NOT NULL",
]

# Clauses the database fails with an error on some rows (a result out of range): obsync fails on the same rows.
FAILING = ["u - 1000 > 0", "i * 10000000000 > 0", "-u < 0", "y - 2100 > 0", "u - i > 0", "i + u > 0", "u * 2 > 0",
           "f * 1e10 > 0", "i - 9223372036854775807 - 10 < 0", "ti DIV u = 0", "-(i - 9223372036854775807) < 0",
           "(i - 9223372036854775807 - 1) DIV -1 > 0"]


@dataclass
class Table:
    schema: TableSchema
    rows: list[dict[str, Any]]
    conn: pymysql.Connection
    calls: list[tuple[str, tuple]]

    def sql_eval(self, sql: str, params: tuple) -> Any:
        self.calls.append((sql, params))
        with self.conn.cursor() as cur:
            cur.execute("SELECT " + sql, params)
            return cur.fetchone()[0]

    def compile(self, clause: str) -> RowFilter:
        return compile_filter(clause, self.schema, origin="objects.0.where (t)", sql_eval=self.sql_eval)

    def db_ids(self, rf: RowFilter) -> set[int]:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT id FROM `{self.schema.db}`.t WHERE ({rf.sql})")
            return {r[0] for r in cur.fetchall()}


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Iterator[Table]:
    server = request.getfixturevalue("mariadb")
    ep = Endpoint(server.host, server.port, server.user, server.password)
    conn = connect(ep)
    db = f"filt_{uuid.uuid4().hex[:10]}"
    rnd = random.Random(7)
    rows = []
    for n in range(320):
        row: list[Any] = [n]
        for _, pool in COLUMNS.values():
            pick = pool[n % len(pool)] if n < 80 else rnd.choice(pool)
            row.append(None if (n >= 80 and rnd.random() < 0.15) or n % 41 == 40 else pick)
        rows.append(row)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
        cols = ", ".join(f"`{n}` {decl}" for n, (decl, _) in COLUMNS.items())
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, {cols})")
        cur.execute("SET SESSION sql_mode = ''")  # zero dates, '' in an ENUM
        cur.executemany(f"INSERT INTO {db}.t VALUES ({', '.join(['%s'] * (len(COLUMNS) + 1))})", rows)
        cur.execute("SET SESSION sql_mode = DEFAULT")
    schema = load_table_schema(conn, db, "t")
    plan = plan_snapshot(conn, "mariadb", [schema], chunk_size=100_000)
    read: list[dict[str, Any]] = []
    for cid in plan.chunk_ids:
        reader = ChunkReader(ep, plan, cid, batch_size=500, driver="pymysql")
        while (batch := reader.next_batch()) is not None:
            read += [c.after for c in batch if c.after is not None]
    assert len(read) == len(rows)
    yield Table(schema, read, conn, [])
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


def test_the_table_holds_the_edge_values(table: Table) -> None:
    rows = table.rows
    assert {r["dt"] for r in rows} >= {"0000-00-00", "2024-00-10"}
    assert any(r["s"] == "abc  " for r in rows) and any(r["c"] == "a" for r in rows)
    assert table.schema.column("s").collation == "utf8mb4_general_ci"
    assert table.schema.column("l1").collation == "latin1_swedish_ci"


@pytest.mark.parametrize("clause", CLAUSES)
def test_filter_selects_what_the_database_selects(table: Table, clause: str) -> None:
    rf = table.compile(clause)
    want = table.db_ids(rf)
    got = {r["id"] for r in table.rows if rf.matches(r)}
    assert got == want, (rf.sql, sorted(got - want), sorted(want - got))


def test_delegation_happens_and_is_cached(table: Table) -> None:
    table.calls.clear()
    rf = table.compile("s < 'b'")
    for _ in range(2):
        for r in table.rows:
            rf.matches(r)
    distinct = {r["s"] for r in table.rows if r["s"] is not None}
    assert 0 < len(table.calls) <= len(distinct)
    table.calls.clear()
    rf = table.compile("s = 'abc' AND i IN (1, 2)")
    for r in table.rows:
        if r["s"] is not None and r["s"].isascii() and r["s"].isprintable():
            rf.matches(r)
    assert table.calls == []  # ASCII equality under general_ci is decided locally


@pytest.mark.parametrize("clause", FAILING)
def test_rows_the_database_fails_on_fail_in_obsync(table: Table, clause: str) -> None:
    rf = table.compile(clause)
    failed = 0
    for row in table.rows:
        try:
            with table.conn.cursor() as cur:
                cur.execute(f"SELECT id FROM `{table.schema.db}`.t WHERE id = {int(row['id'])} AND ({rf.sql})")
                want: bool | None = bool(cur.fetchall())
        except pymysql.err.MySQLError as e:
            assert "out of range" in str(e)
            want, failed = None, failed + 1
        try:
            got: bool | None = rf.matches(row)
        except ConfigError as e:
            assert "out of range" in str(e)
            got = None
        assert got == want, row
    assert failed > 0


def test_literals_reach_the_database_unchanged(table: Table) -> None:
    """The regenerated SQL carries every string literal exactly (quotes, backslashes, control characters)."""
    for text in ["it's", "x\\y", "a\\%b", "\x00\x1a\x08\r\n\t", '"', "😀Ä", "\\", "%_"]:
        quoted = "'" + text.replace("\\", "\\\\").replace("'", "''").replace("\x00", "\\0") + "'"
        rf = table.compile(f"vb = {quoted}")
        with table.conn.cursor() as cur:
            cur.execute(f"SELECT {rf.sql.split(' = ', 1)[1]}")
            assert cur.fetchone()[0] == text

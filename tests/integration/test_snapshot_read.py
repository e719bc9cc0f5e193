"""Snapshot planning and chunk reading against real servers: MariaDB (MySQL path) and seekdb (OceanBase path),
each through both SQL drivers of the reader (mysqlclient and pymysql).

Each test gets its own database on each server. The order invariant checked throughout: inside a chunk,
positions increase strictly in Python's order, because the Kafka sink compares them in Python.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymysql
import pytest

from obsync.connectors.mysql import fastsql
from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot import ChunkReader, SnapshotPlan, plan_snapshot
from obsync.connectors.mysql.snapshot.keys import KeySql
from obsync.connectors.mysql.snapshot.reader import _position, _read_change
from obsync.core.changes import Change, Op
from obsync.core.errors import SourceError, SourceUnavailable
from obsync.core.positions import SnapshotPosition
from obsync.core.schema import Column

UTC = dt.UTC


@dataclass
class Source:
    endpoint: Endpoint
    conn: pymysql.Connection
    db: str
    dialect: str
    driver: str

    def sql(self, stmt: str, params: Any = None) -> tuple:
        with self.conn.cursor() as cur:
            cur.execute(stmt, params)
            return cur.fetchall()

    def plan(self, tables: list[str], chunk_size: int) -> SnapshotPlan:
        schemas = [load_table_schema(self.conn, self.db, t) for t in tables]
        return plan_snapshot(self.conn, self.dialect, schemas, chunk_size)  # type: ignore[arg-type]  # dialect: a str fixture param

    def reader(self, plan: SnapshotPlan, chunk_id: str, batch_size: int, resume: dict | None = None
               ) -> ChunkReader:
        reader = ChunkReader(self.endpoint, plan, chunk_id, batch_size, resume,
                             driver=self.driver)  # type: ignore[arg-type]  # driver: a str fixture param
        assert reader.driver == self.driver
        return reader

    def read_chunk(self, plan: SnapshotPlan, chunk_id: str, batch_size: int) -> list[Change]:
        reader = self.reader(plan, chunk_id, batch_size)
        out: list[Change] = []
        while (batch := reader.next_batch()) is not None:
            assert 0 < len(batch) <= batch_size
            out += batch
        assert reader.done and reader.rows_read == len(out)
        return out

    def read_all(self, plan: SnapshotPlan, batch_size: int) -> dict[str, list[Change]]:
        return {cid: self.read_chunk(plan, cid, batch_size) for cid in plan.chunk_ids}


_NO_MYSQLCLIENT = pytest.mark.skipif(not fastsql.AVAILABLE, reason="mysqlclient not installed")


@pytest.fixture(params=[pytest.param(("mariadb", "mysqlclient"), marks=_NO_MYSQLCLIENT, id="mariadb-mysqlclient"),
                        pytest.param(("mariadb", "pymysql"), id="mariadb-pymysql"),
                        pytest.param(("seekdb", "mysqlclient"), marks=_NO_MYSQLCLIENT, id="seekdb-mysqlclient"),
                        pytest.param(("seekdb", "pymysql"), id="seekdb-pymysql")])
def src(request: pytest.FixtureRequest) -> Iterator[Source]:
    server_name, driver = request.param
    server = request.getfixturevalue(server_name)
    ep = Endpoint(server.host, server.port, server.user, server.password)
    conn = connect(ep)
    db = f"snap_{uuid.uuid4().hex[:10]}"
    source = Source(ep, conn, db, detect_dialect(conn), driver)
    source.sql(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    yield source
    source.sql(f"DROP DATABASE {db}")
    conn.close()


def assert_chunk_order(chunks: dict[str, list[Change]]) -> None:
    """Positions strictly increase inside each chunk, in Python's order, and belong to the chunk."""
    for cid, rows in chunks.items():
        keys = [r.position.key for r in rows]  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
        assert all(r.position.chunk == cid for r in rows)  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
        assert all(a < b for a, b in zip(keys, keys[1:], strict=False)), f"{cid}: {keys}"


# -- key SQL (no server) ------------------------------------------------------------------------------------

def test_composite_key_comparisons_are_index_friendly_expansions() -> None:
    cols = [Column("a", "int", "int"), Column("b", "varchar", "varchar(9)", charset="utf8mb4"),
            Column("c", "time", "time")]
    ks = KeySql.of(cols, ["native", "binary", "native"])
    sql, params = ks.compare(">", (1, "x", dt.timedelta(seconds=-1)))
    assert sql == ("`a` >= %s AND ((`a` > %s) OR (`a` = %s AND CAST(`b` AS BINARY) > %s) OR "
                   "(`a` = %s AND CAST(`b` AS BINARY) = %s AND `c` > %s))")
    assert params == [1, 1, 1, b"x", 1, b"x", "-00:00:01.000000"]
    sql, params = KeySql.of(cols[:1], ["native"]).compare("<=", (5,))
    assert (sql, params) == ("`a` <= %s", [5])
    sql, _ = KeySql.of(cols[:2], ["native", "native"]).compare("<=", (5, "y"))
    assert sql == "`a` <= %s AND ((`a` < %s) OR (`a` = %s AND `b` <= %s))"
    latin = Column("l%", "varchar", "varchar(9)", charset="latin1")
    assert KeySql.of([latin], ["binary"]).exprs == ("CAST(CONVERT(`l%%` USING utf8mb4) AS BINARY)",)
    ts = KeySql.of([Column("t", "timestamp", "timestamp")], ["native"])
    assert ts.compare(">", (dt.datetime(2024, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=5))),))[1] == [
        dt.datetime(2024, 1, 1, 0, 0)]


# -- planning and reading -----------------------------------------------------------------------------------

def test_int_pk_chunks_cover_every_row_exactly_once(src: Source) -> None:
    ids = sorted(random.Random(7).sample(range(-3000, 3000), 500))
    src.sql(f"CREATE TABLE {src.db}.t (id INT PRIMARY KEY, v VARCHAR(20), n BIGINT UNSIGNED)")
    src.sql(f"INSERT INTO {src.db}.t VALUES " + ",".join(f"({i}, 'v{i}', {2**64 - 1 - abs(i)})" for i in ids))
    plan = src.plan(["t"], chunk_size=97)

    assert plan.chunk_ids == [f"{src.db}.t/{i:04d}" for i in range(6)]  # 500 = 5 * 97 + 15
    assert [c.estimated_rows for c in plan.chunks] == [97] * 5 + [15]
    assert plan.tables[0].estimated_rows == 500 and plan.tables[0].mode == "key"
    assert plan.chunks[0].lo is None and plan.chunks[-1].hi is None
    assert [c.hi for c in plan.chunks[:-1]] == [(ids[97 * i + 96],) for i in range(5)]
    assert [c.lo for c in plan.chunks[1:]] == [c.hi for c in plan.chunks[:-1]]
    assert (plan.scn is not None) == (src.dialect == "oceanbase")

    chunks = src.read_all(plan, batch_size=10)
    assert_chunk_order(chunks)
    got = [c for rows in chunks.values() for c in rows]
    assert [c.after for c in got] == [{"id": i, "v": f"v{i}", "n": 2**64 - 1 - abs(i)} for i in ids]
    assert [c.position for c in chunks[plan.chunk_ids[1]]] == [
        SnapshotPosition(plan.chunk_ids[1], (i,)) for i in ids[97:194]]
    assert all(c.op is Op.READ and c.before is None and c.table is plan.tables[0].schema for c in got)
    assert [len(rows) for rows in chunks.values()] == [c.estimated_rows for c in plan.chunks]


def test_chunk_boundaries_when_rows_divide_evenly_and_for_small_and_empty_tables(src: Source) -> None:
    for name, n in (("even", 30), ("small", 3), ("empty", 0)):
        src.sql(f"CREATE TABLE {src.db}.{name} (id BIGINT PRIMARY KEY)")
        if n:
            src.sql(f"INSERT INTO {src.db}.{name} VALUES " + ",".join(f"({i})" for i in range(n)))
    plan = src.plan(["even", "small", "empty"], chunk_size=10)
    by_table = Counter(c.table.split(".")[1] for c in plan.chunks)
    assert by_table == {"even": 3, "small": 1, "empty": 1}
    assert [c.estimated_rows for c in plan.chunks] == [10, 10, 10, 3, 0]
    assert plan.chunks[2].hi is None and plan.chunks[3].lo is None and plan.chunks[3].hi is None
    chunks = src.read_all(plan, batch_size=10)  # a full last batch, then an empty query
    assert [len(v) for v in chunks.values()] == [10, 10, 10, 3, 0]


def test_composite_pk_reads_every_row_once_in_python_order(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.c (a INT, b VARCHAR(10), d DATE, v INT, PRIMARY KEY (a, b, d))")
    rows = [(a, b, f"2024-01-{d:02d}", i) for i, (a, b, d) in enumerate(
        (a, b, d) for a in (-1, 0, 2) for b in ("x", "Y", "é", "ab") for d in (1, 15))]
    src.sql(f"INSERT INTO {src.db}.c VALUES " + ",".join(f"({a}, '{b}', '{d}', {v})" for a, b, d, v in rows))
    plan = src.plan(["c"], chunk_size=5)
    assert plan.tables[0].key_orders == ("native", "binary", "native")
    chunks = src.read_all(plan, batch_size=2)
    assert_chunk_order(chunks)
    got = Counter((c.after["a"], c.after["b"], c.after["d"].isoformat(), c.after["v"])  # type: ignore[index]  # snapshot rows have their after image
                  for rows_ in chunks.values() for c in rows_)
    assert got == Counter(rows)


def test_varchar_pk_with_mixed_case_keeps_python_order_inside_chunks(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.s (k VARCHAR(20) PRIMARY KEY, v INT) COLLATE utf8mb4_general_ci")
    candidates = ["a", "B", "b\t", "A1", "é", "z", "Z0", "😀", "中", "a\x01", "ß", "ss0", "_", "ª", "Ab", "aC",
                  "AD", "Éa", "e", "E1", "~", " lead", "MiXeD", "mixed2", "ZZ", "zy", "文字", "0", "9", "Ω"]
    for i, k in enumerate(candidates):  # some are equal under the case-insensitive collation
        src.sql(f"INSERT IGNORE INTO {src.db}.s VALUES (%s, %s)", (k, i))
    stored = sorted(r[0] for r in src.sql(f"SELECT k FROM {src.db}.s"))
    assert len(stored) > 20
    plan = src.plan(["s"], chunk_size=4)
    assert plan.tables[0].key_orders == ("binary",)
    chunks = src.read_all(plan, batch_size=3)
    assert_chunk_order(chunks)
    assert sorted(c.after["k"] for rows in chunks.values() for c in rows) == stored  # type: ignore[index]  # snapshot rows have their after image
    # The chunks themselves are ranges in the collation's order (the index), not Python's.
    assert any(rows[-1].after["k"] > plan.chunk(cid).hi[0] for cid, rows in chunks.items()  # type: ignore[index]  # snapshot rows have their after image, a bounded chunk its hi
               if rows and plan.chunk(cid).hi is not None)


def test_latin1_char_key_is_ordered_by_its_utf8_text(src: Source) -> None:
    try:
        src.sql(f"CREATE TABLE {src.db}.l (k CHAR(5) CHARACTER SET latin1 PRIMARY KEY)")
    except pymysql.err.MySQLError as e:
        pytest.skip(f"latin1 not supported here: {e}")
    for k in ("a", "é", "€", "Z", "ÿ", "b c"):  # latin1 bytes: € 0x80 < é 0xE9; code points: é < ÿ < €
        src.sql(f"INSERT INTO {src.db}.l VALUES (%s)", (k,))
    plan = src.plan(["l"], chunk_size=100)
    [rows] = src.read_all(plan, batch_size=2).values()
    assert [c.after["k"] for c in rows] == sorted(["a", "é", "€", "Z", "ÿ", "b c"])  # type: ignore[index]  # snapshot rows have their after image


def test_table_without_key_is_one_chunk_of_ordinals(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.n (v INT, s VARCHAR(5))")
    data = [(i % 7, "dup") for i in range(23)]
    src.sql(f"INSERT INTO {src.db}.n VALUES " + ",".join(f"({v}, '{s}')" for v, s in data))
    plan = src.plan(["n"], chunk_size=5)
    assert plan.chunk_ids == [f"{src.db}.n/0000"]
    tp = plan.tables[0]
    assert tp.mode == "ordinal" and "no primary key" in (tp.reason or "")
    assert tp.estimated_rows > 0  # InnoDB's TABLE_ROWS is an estimate; seekdb has none, so COUNT(*)
    started = time.time()
    [rows] = src.read_all(plan, batch_size=4).values()
    attempt = rows[0].position.key[0]  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
    if src.dialect == "oceanbase":
        assert attempt == 0  # one read point: a rescan is the same scan
    else:  # the time the scan started, in microseconds: after any scan that started before it
        assert started * 1_000_000 <= attempt <= time.time() * 1_000_000
    assert [c.position.key for c in rows] == [(attempt, i) for i in range(1, 24)]  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
    assert Counter((c.after["v"], c.after["s"]) for c in rows) == Counter(data)  # type: ignore[index]  # snapshot rows have their after image


def test_enum_key_falls_back_to_ordinals(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.e (k ENUM('b', 'a') PRIMARY KEY)")
    src.sql(f"INSERT INTO {src.db}.e VALUES ('a'), ('b')")
    plan = src.plan(["e"], chunk_size=5)
    assert plan.tables[0].mode == "ordinal" and "enum" in (plan.tables[0].reason or "")
    [rows] = src.read_all(plan, batch_size=5).values()
    assert sorted(c.after["k"] for c in rows) == ["a", "b"]  # type: ignore[index]  # snapshot rows have their after image


KEY_TYPES = [
    ("BIGINT UNSIGNED", [0, 1, 2**63, 2**64 - 1, 12345]),
    ("DECIMAL(30,10)", [Decimal("-1.5"), Decimal("0E-10"), Decimal("12345678901234567890.0000000001"),
                        Decimal("-0.0000000001")]),
    ("DOUBLE", [-1.5, 0.1, 1e300, -1e-300, 3.0]),
    ("DATETIME(6)", [dt.datetime(2024, 1, 1, 0, 0, 0, 1), dt.datetime(1000, 1, 1),
                     dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(2024, 1, 1)]),
    ("TIMESTAMP(3)", [dt.datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), dt.datetime(1971, 1, 1, tzinfo=UTC),
                      dt.datetime(2038, 1, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, 12, tzinfo=UTC)]),
    ("TIME(6)", [dt.timedelta(hours=-838), dt.timedelta(microseconds=-1), dt.timedelta(0),
                 dt.timedelta(hours=838, microseconds=5), dt.timedelta(seconds=-1.5)]),
    ("DATE", [dt.date(2024, 2, 29), dt.date(1000, 1, 1), dt.date(9999, 12, 31)]),
    ("VARBINARY(8)", [b"", b"\x00", b"\xff", b"\x00\x00", b"A", b"a", b"\x80\x01"]),
    ("BINARY(3)", [b"\x00\x00\x00", b"\xff\x00\x00", b"ab\x00", b"AB\x00"]),
    ("BIT(16)", [0, 1, 255, 256, 65535]),
    ("YEAR", [1901, 2155, 2000, 0]),
]


def test_keys_of_every_orderable_type_page_in_python_order(src: Source) -> None:
    names = []
    for i, (sql_type, values) in enumerate(KEY_TYPES):
        name = f"k{i}"
        names.append(name)
        src.sql(f"CREATE TABLE {src.db}.{name} (k {sql_type} NOT NULL PRIMARY KEY, i INT)")
        with src.conn.cursor() as cur:
            for j, v in enumerate(values):
                cur.execute(f"INSERT INTO {src.db}.{name} VALUES (%s, %s)",
                            (v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, dt.datetime)
                             and v.tzinfo else v, j))
    plan = src.plan(names, chunk_size=2)
    for name, (sql_type, values) in zip(names, KEY_TYPES, strict=True):
        tp = plan.table(f"{src.db}.{name}")
        assert tp.mode == "key" and tp.key_orders == ("native",), sql_type
        chunks = {cid: src.read_chunk(plan, cid, batch_size=1) for cid in tp.chunk_ids}
        assert_chunk_order(chunks)
        got = [c.after["k"] for rows in chunks.values() for c in rows]  # type: ignore[index]  # snapshot rows have their after image
        assert got == sorted(values), sql_type


def test_plan_round_trips_through_json(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.p (a DATETIME(3), b VARBINARY(4), c DECIMAL(5,2), PRIMARY KEY (a, b, c))")
    src.sql(f"INSERT INTO {src.db}.p VALUES ('2024-01-01 00:00:00.5', x'ff00', 1.25), "
            "('2024-01-01 00:00:00.5', x'ff01', 1.25), ('2025-01-01', x'', -3)")
    src.sql(f"CREATE TABLE {src.db}.q (v INT)")
    plan = src.plan(["p", "q"], chunk_size=1)
    data = json.loads(json.dumps(plan.to_dict()))
    again = SnapshotPlan.from_dict(data)
    assert again == plan and json.loads(json.dumps(again.to_dict())) == data
    assert again.chunks[1].lo == (dt.datetime(2024, 1, 1, 0, 0, 0, 500000), b"\xff\x00", Decimal("1.25"))
    assert again.table_of(again.chunk_ids[-1]).mode == "ordinal"
    assert set(data) == {"version", "dialect", "scn", "chunk_size", "created_at", "tables", "chunks"}
    assert src.read_all(again, batch_size=5) == src.read_all(plan, batch_size=5)


# -- resume -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("table_sql", [
    "id INT PRIMARY KEY, v INT",  # keyset pages
    "k VARCHAR(8) PRIMARY KEY, v INT",  # one streaming query ordered by bytes
    "id INT, v INT",  # ordinals
])
def test_resume_in_the_middle_of_a_chunk_yields_exactly_the_remaining_rows(src: Source, table_sql: str) -> None:
    src.sql(f"CREATE TABLE {src.db}.r ({table_sql})")
    src.sql(f"INSERT INTO {src.db}.r VALUES " + ",".join(
        f"('{'Aa'[i % 2]}{i:03d}', {i})" if "VARCHAR" in table_sql else f"({i}, {i})" for i in range(57)))
    plan = src.plan(["r"], chunk_size=1000)
    [cid] = plan.chunk_ids
    everything = src.read_chunk(plan, cid, batch_size=5)
    assert len(everything) == 57

    first = src.reader(plan, cid, batch_size=5)
    handed = (first.next_batch() or []) + (first.next_batch() or []) + (first.next_batch() or [])
    state = json.loads(json.dumps(first.resume_state()))
    first.close()
    assert state["rows"] == 15 and state["done"] is False and state["chunk"] == cid

    second = src.reader(plan, cid, batch_size=5, resume=state)
    rest: list[Change] = []
    while (batch := second.next_batch()) is not None:
        rest += batch
    assert second.done and second.resume_state()["done"] is True
    if plan.tables[0].mode == "ordinal" and src.dialect != "oceanbase":
        # No read point: the scan restarts under a later attempt, every position after those already written.
        assert [c.after for c in rest] == [c.after for c in everything]
        attempt = rest[0].position.key[0]  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
        assert attempt > handed[0].position.key[0] > everything[0].position.key[0]  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
        assert [c.position.key for c in rest] == [(attempt, i) for i in range(1, 58)]  # type: ignore[union-attr]  # snapshot rows carry a SnapshotPosition
        assert min(c.position.sort_key for c in rest) > max(c.position.sort_key for c in handed)
    else:
        assert handed + rest == everything
        assert second.rows_read == 57

    done = src.reader(plan, cid, batch_size=5, resume=second.resume_state())
    assert done.next_batch() is None


def test_resume_state_of_another_chunk_is_refused(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.x (id INT PRIMARY KEY)")
    src.sql(f"INSERT INTO {src.db}.x VALUES (1), (2), (3)")
    plan = src.plan(["x"], chunk_size=1)
    state = src.reader(plan, plan.chunk_ids[0], 1).resume_state()
    with pytest.raises(ValueError, match="resume state of chunk"):
        src.reader(plan, plan.chunk_ids[1], 1, resume=state)


def test_reader_reconnects_after_losing_its_connection(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.k (id INT PRIMARY KEY)")
    src.sql(f"INSERT INTO {src.db}.k VALUES " + ",".join(f"({i})" for i in range(20)))
    plan = src.plan(["k"], chunk_size=100)
    reader = src.reader(plan, plan.chunk_ids[0], batch_size=6)
    first = reader.next_batch() or []
    src.sql(f"KILL {reader._connection().thread_id()}")  # the next query fails with error 2013
    rest: list[Change] = []
    while (batch := reader.next_batch()) is not None:
        rest += batch
    assert [c.after["id"] for c in first + rest] == list(range(20))  # type: ignore[index]  # snapshot rows have their after image


# -- OceanBase read point -----------------------------------------------------------------------------------

def test_oceanbase_chunks_read_as_of_the_planned_scn(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.o (id INT PRIMARY KEY, v VARCHAR(10))")
    src.sql(f"INSERT INTO {src.db}.o VALUES " + ",".join(f"({i}, 'old')" for i in range(1, 31)))
    plan = src.plan(["o"], chunk_size=10)
    src.sql(f"UPDATE {src.db}.o SET v = 'new' WHERE id IN (1, 15, 30)")
    src.sql(f"DELETE FROM {src.db}.o WHERE id IN (2, 16)")
    src.sql(f"INSERT INTO {src.db}.o VALUES (0, 'new'), (31, 'new'), (100, 'new')")
    chunks = src.read_all(plan, batch_size=4)
    got = {c.after["id"]: c.after["v"] for rows in chunks.values() for c in rows}  # type: ignore[index]  # snapshot rows have their after image
    if src.dialect == "oceanbase":
        assert plan.scn is not None and plan.scn > 0
        assert got == {i: "old" for i in range(1, 31)}
    else:  # no read point: each fetch sees the table as it is (the binlog replays the rest)
        assert plan.scn is None
        assert got == {**{i: "old" for i in range(1, 31) if i not in (2, 16)},
                       1: "new", 15: "new", 30: "new", 0: "new", 31: "new", 100: "new"}


def test_planning_restores_the_session_and_refuses_a_table_listed_twice(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.d (id INT PRIMARY KEY, at DATETIME)")
    src.sql(f"INSERT INTO {src.db}.d VALUES (1, '2024-01-01 00:00:00')")
    decoders = src.conn.decoders
    timeout = src.sql("SELECT @@ob_query_timeout") if src.dialect == "oceanbase" else None
    src.plan(["d"], chunk_size=10)
    assert src.conn.decoders is decoders
    assert src.sql(f"SELECT at FROM {src.db}.d") == ((dt.datetime(2024, 1, 1),),)
    if timeout is not None:
        assert src.sql("SELECT @@ob_query_timeout") == timeout
    with pytest.raises(ValueError, match="listed twice"):
        src.plan(["d", "d"], chunk_size=10)


# -- drivers ------------------------------------------------------------------------------------------------

def test_fast_constructors_build_the_frozen_dataclasses_themselves() -> None:
    import dataclasses
    import pickle

    pos = _position("db.t/0001", (1, "x"))
    change = _read_change(Op.READ, None, pos, {"id": 1})
    assert type(pos) is SnapshotPosition and type(change) is Change
    same = SnapshotPosition("db.t/0001", (1, "x"))
    assert pos == same and hash(pos) == hash(same)
    assert change == Change(Op.READ, None, SnapshotPosition("db.t/0001", (1, "x")), after={"id": 1})
    assert pickle.loads(pickle.dumps(change)) == change
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.after = None  # type: ignore[misc]  # on purpose: a change is frozen


def test_unknown_or_missing_driver_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown SQL driver 'odbc'"):
        fastsql.check_driver("odbc")
    assert fastsql.check_driver("pymysql") == "pymysql"
    monkeypatch.setattr(fastsql, "AVAILABLE", False)
    with pytest.raises(ValueError, match="not installed"):
        fastsql.check_driver("mysqlclient")


def test_errors_are_the_same_with_either_driver(src: Source) -> None:
    src.sql(f"CREATE TABLE {src.db}.g (id INT PRIMARY KEY)")
    src.sql(f"INSERT INTO {src.db}.g VALUES (1), (2)")
    plan = src.plan(["g"], chunk_size=10)
    [cid] = plan.chunk_ids
    ep = src.endpoint

    # Access denied: terminal, the message of obsync.connectors.mysql.connection.connect, never the password.
    bad = Endpoint(ep.host, ep.port, ep.user, "not-the-password-42")
    with pytest.raises(SourceError) as denied:
        ChunkReader(bad, plan, cid, 10, driver=src.driver).next_batch()  # type: ignore[arg-type]  # driver: a str fixture param
    with pytest.raises(SourceError) as denied_pymysql:
        connect(bad)
    assert not isinstance(denied.value, SourceUnavailable)
    assert str(denied.value).startswith(f"cannot connect to {ep.user}@{ep.host}:{ep.port}: ")
    assert str(denied.value).endswith("(check user and password)")
    assert str(denied.value) == str(denied_pymysql.value)  # the server's text either way
    assert "not-the-password-42" not in str(denied.value)

    # Nothing listening: transient.
    closed = Endpoint("127.0.0.1", 1, ep.user, ep.password, connect_timeout=2, patience=1)
    with pytest.raises(SourceUnavailable, match=rf"^snapshot chunk {cid}: the source 127.0.0.1:1 did not come "
                                                rf"back within source.patience \(1 s\): cannot connect to "
                                                rf"{ep.user}@127.0.0.1:1: "):
        ChunkReader(closed, plan, cid, 10, driver=src.driver).next_batch()  # type: ignore[arg-type]  # driver: a str fixture param

    # `localhost` is TCP with both drivers (the C client would use a Unix socket, which the servers here do
    # not have at its default path).
    via_localhost = ChunkReader(Endpoint("localhost", ep.port, ep.user, ep.password), plan, cid, 10,
                                driver=src.driver)  # type: ignore[arg-type]  # driver: a str fixture param
    assert [c.after for c in via_localhost.next_batch() or []] == [{"id": 1}, {"id": 2}]

    if src.dialect == "oceanbase":  # OceanBase errors get their hint
        slow = ChunkReader(ep, plan, cid, 10, query_timeout_us=1, driver=src.driver)  # type: ignore[arg-type]  # driver: a str fixture param
        hint = r"\(the query ran out of time \(ob_query_timeout\)\)$"
        with pytest.raises(SourceError, match=rf"^snapshot chunk {re.escape(cid)}: .*{hint}"):
            slow.next_batch()

    # A server error: terminal, with the server's message.
    src.sql(f"DROP TABLE {src.db}.g")
    with pytest.raises(SourceError) as gone:
        src.reader(plan, cid, 10).next_batch()
    assert not isinstance(gone.value, SourceUnavailable)
    assert str(gone.value) == f"snapshot chunk {cid}: Table '{src.db}.g' doesn't exist"


def test_pipelined_pages_lose_no_row_when_the_connection_fails(src: Source, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """mysqlclient sends the query for the next page before handing out the current one; a failure while
    sending it or reading it reconnects and asks again from the last row handed out."""
    if src.driver != "mysqlclient":
        pytest.skip("pages are pipelined with mysqlclient only")
    src.sql(f"CREATE TABLE {src.db}.p (id INT PRIMARY KEY)")
    src.sql(f"INSERT INTO {src.db}.p VALUES " + ",".join(f"({i})" for i in range(30)))
    plan = src.plan(["p"], chunk_size=100)
    reader = src.reader(plan, plan.chunk_ids[0], batch_size=4)
    lost = pytest.importorskip("MySQLdb").OperationalError
    calls = {"send": 0, "read": 0}
    send, read = fastsql.send_query, fastsql.read_rows

    def failing_send(conn: object, sql: str, params: list) -> None:
        calls["send"] += 1
        if calls["send"] in (2, 5):  # the page after the first one, and another later
            raise lost(2013, "Lost connection to server during query")
        send(conn, sql, params)

    def failing_read(conn: object) -> tuple:
        calls["read"] += 1
        if calls["read"] == 4:
            raise lost(2013, "Lost connection to server during query")
        return read(conn)

    monkeypatch.setattr(fastsql, "send_query", failing_send)
    monkeypatch.setattr(fastsql, "read_rows", failing_read)
    monkeypatch.setattr("obsync.connectors.mysql.failures.time.sleep", lambda s: None)
    got: list[Change] = []
    while (batch := reader.next_batch()) is not None:
        got += batch
    assert [c.after["id"] for c in got] == list(range(30))  # type: ignore[index]  # snapshot rows have their after image
    assert reader.rows_read == 30 and calls["send"] > 8

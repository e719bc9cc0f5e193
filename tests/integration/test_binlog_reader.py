"""The binlog reader against real MariaDB servers, with binlog_row_metadata MINIMAL (no column names, like
OceanBase Binlog Service) and FULL: the same scenario must give the same changes on both.

Each test gets its own database. Positions are checked against `SHOW BINLOG EVENTS`: every row change sits
at the end offset of its rows event with its index in the event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from obsync.connectors.mysql.binlog import BinlogReader, binlog_files, current_log_position
from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.core.changes import Change, Op
from obsync.core.errors import PositionLostError, SchemaMismatchError
from obsync.core.positions import LogPosition
from obsync.sql import ddl as D

UTC = dt.UTC
_server_ids = itertools.count(9100)


class Db:
    """A test database on one server."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.endpoint = Endpoint(server.host, server.port, server.user, server.password)
        self.name = f"bl_{uuid.uuid4().hex[:8]}"
        self.conn = connect(self.endpoint)
        self.sql(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
        self.sql(f"USE {self.name}")

    def sql(self, *stmts: str) -> list[tuple]:
        out: list[tuple] = []
        with self.conn.cursor() as cur:
            for s in stmts:
                cur.execute(s)
                out = list(cur.fetchall())
        return out

    def position(self) -> LogPosition:
        return current_log_position(self.endpoint)

    def reader(self, tables: list[str], start: Any, history: Path | None, **kw: Any) -> BinlogReader:
        return BinlogReader(self.endpoint, server_id=next(_server_ids), tables=[(self.name, t) for t in tables],
                            history_dir=str(history) if history else None, start=start, **kw)

    def rows_events(self, start: LogPosition, stop: LogPosition) -> list[tuple[str, int]]:
        """(event type, end offset) of the rows events between two positions (one binlog file)."""
        assert start.file == stop.file
        rows = self.sql(f"SHOW BINLOG EVENTS IN '{start.file}' FROM {start.pos}")
        return [(r[2], int(r[4])) for r in rows if r[2].endswith("_rows_v1") and int(r[4]) <= stop.pos]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(params=["mariadb", "mariadb_full"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    d = Db(request.getfixturevalue(request.param))
    yield d
    d.close()


def read_all(reader: BinlogReader, timeout: float = 60.0) -> list[Change]:
    """Every change until the reader's stop_at."""
    out: list[Change] = []
    deadline = time.monotonic() + timeout
    try:
        while not reader.finished:
            assert time.monotonic() < deadline, f"reader not finished after {timeout}s ({len(out)} changes)"
            batch = reader.poll(0.5)
            assert len(batch) <= reader.batch_size
            out += batch
    finally:
        reader.close()
    return out


def read_from(db: Db, tables: list[str], start: Any, stop: LogPosition, history: Path | None = None,
              **kw: Any) -> list[Change]:
    return read_all(db.reader(tables, start, history, stop_at=stop, **kw))


def started(db: Db, tables: list[str], history: Path | None) -> tuple[LogPosition, BinlogReader]:
    """A reader whose start position and schemas are fixed now (before the statements of the test)."""
    start = db.position()
    reader = db.reader(tables, start, history)
    reader.prepare()
    return start, reader


def finish(reader: BinlogReader, stop: LogPosition) -> list[Change]:
    reader.stop_at = stop
    return read_all(reader)


def dml(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.op != Op.DDL]


MANY_TYPES = """CREATE TABLE t (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
  mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT,
  f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d12 DECIMAL(12,2), d0 DECIMAL(5,0),
  c CHAR(5), vc VARCHAR(300), vl VARCHAR(20) CHARACTER SET latin1, bn BINARY(4), vb VARBINARY(10),
  tx TEXT, bl BLOB, e ENUM('a','b','c d'), s SET('x','y','z'), b1 BIT(1), b12 BIT(12), b64 BIT(64),
  dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(3) NULL DEFAULT NULL, tm TIME(6), tm0 TIME, tm2 TIME(2),
  dte DATE, yr YEAR, j JSON)"""

ROW_A = ("18446744073709551615, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
         "-9223372036854775808, 1.1, 2.2, '-12345678901234567890123456789012345.123456789012345678901234567891', "
         "-1.5, 99999, 'ab', 'héllo € 😀', 'café€', 'ab', 0x00ff00, 'text ü', 0xdeadbeef00, 'c d', 'z,x', "
         "b'1', b'101000000001', b'1000000000000000000000000000000000000000000000000000000000000001', "
         "'2020-01-02 03:04:05.123456', '0000-00-00 00:00:00', '2021-06-01 12:00:00.5', '-838:59:59.000001', "
         "'-00:00:01', '-00:00:00.5', '2020-00-15', 0, '{\"b\": [1, 2.5, \"ü\"], \"a\": null}'")

EXPECTED_A = {
    "id": 18446744073709551615, "ti": -128, "tu": 255, "si": -32768, "su": 65535, "mi": -8388608,
    "mu": 16777215, "i": -2147483648, "iu": 4294967295, "bi": -9223372036854775808,
    "f": 1.100000023841858, "d": 2.2,
    "d65": Decimal("-12345678901234567890123456789012345.123456789012345678901234567891"),
    "d12": Decimal("-1.50"), "d0": Decimal("99999"), "c": "ab", "vc": "héllo € 😀", "vl": "café€",
    "bn": b"ab\x00\x00", "vb": b"\x00\xff\x00", "tx": "text ü", "bl": b"\xde\xad\xbe\xef\x00", "e": "c d",
    "s": "x,z", "b1": 1, "b12": 0b101000000001, "b64": 2**63 + 1,
    "dt": dt.datetime(2020, 1, 2, 3, 4, 5, 123456), "dt0": "0000-00-00 00:00:00",
    "ts": dt.datetime(2021, 6, 1, 7, 0, 0, 500000, tzinfo=UTC),  # written in a +05:00 session
    "tm": -dt.timedelta(hours=838, minutes=59, seconds=59, microseconds=1), "tm0": -dt.timedelta(seconds=1),
    "tm2": -dt.timedelta(microseconds=500000), "dte": "2020-00-15", "yr": 0,
    "j": '{"b": [1, 2.5, "ü"], "a": null}',  # MariaDB's JSON is LONGTEXT: the text as written
}


def test_rows_of_many_types_are_exact_with_their_positions(db: Db) -> None:
    db.sql(MANY_TYPES)
    start = db.position()
    db.sql("SET SESSION time_zone = '+05:00'", "SET SESSION sql_mode = ''")
    db.sql(f"INSERT INTO t VALUES ({ROW_A})")
    db.sql("INSERT INTO t (id) VALUES (1), (2)")
    db.sql("UPDATE t SET ti = 5, e = 'b', s = '', vb = '', ts = '1970-01-01 05:00:01' WHERE id = 1")
    db.sql("DELETE FROM t WHERE id IN (1, 2)")
    db.sql("SET SESSION time_zone = '+00:00'")
    stop = db.position()
    changes = read_from(db, ["t"], start, stop)

    assert [c.op for c in changes] == [Op.INSERT, Op.INSERT, Op.INSERT, Op.UPDATE, Op.DELETE, Op.DELETE]
    assert changes[0].after == EXPECTED_A
    empty = {k: None for k in EXPECTED_A}
    assert changes[1].after == {**empty, "id": 1} and changes[2].after == {**empty, "id": 2}
    assert changes[3].before == {**empty, "id": 1}
    assert changes[3].after == {**empty, "id": 1, "ti": 5, "e": "b", "s": "", "vb": b"",
                                "ts": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}
    assert changes[4].before == {**empty, "id": 1, "ti": 5, "e": "b", "s": "", "vb": b"",
                                 "ts": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}
    assert changes[5].before == {**empty, "id": 2}
    assert all(c.table is not None and c.table.name == "t" for c in changes)

    # positions: (file, end of the rows event, index of the row in the event), as SHOW BINLOG EVENTS says
    events = db.rows_events(start, stop)
    assert [e[0] for e in events] == ["Write_rows_v1", "Write_rows_v1", "Update_rows_v1", "Delete_rows_v1"]
    expected = [(events[0][1], 0), (events[1][1], 0), (events[1][1], 1), (events[2][1], 0), (events[3][1], 0),
                (events[3][1], 1)]
    assert [(c.position.pos, c.position.row) for c in changes] == expected
    assert all(c.position.file == start.file for c in changes)
    # transactions: MariaDB GTIDs domain-server-seq, one per statement here; the two deletes share one
    assert len({c.txn for c in changes}) == 4 and changes[4].txn == changes[5].txn
    assert all(c.txn and c.txn.count("-") == 2 for c in changes)
    assert all(c.server_id == 1 and c.commit_time and abs(c.commit_time - time.time()) < 120 for c in changes)


def test_alter_table_while_streaming_decodes_rows_with_the_columns_of_their_time(db: Db, tmp_path: Path) -> None:
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b INT)")
    start, reader = started(db, ["t"], tmp_path)
    db.sql("INSERT INTO t VALUES (1, 'one', 10)")
    db.sql("ALTER TABLE t ADD COLUMN c DECIMAL(8,3) DEFAULT 1.5 AFTER id")
    db.sql("INSERT INTO t VALUES (2, 2.25, 'two', 20)")
    db.sql("ALTER TABLE t DROP COLUMN a")
    db.sql("INSERT INTO t VALUES (3, 3.5, 30)")
    db.sql("ALTER TABLE t MODIFY COLUMN b VARBINARY(8)")
    db.sql("INSERT INTO t VALUES (4, 4.5, '42')")
    db.sql("ALTER TABLE t CHANGE COLUMN b bee BIGINT UNSIGNED NULL, RENAME COLUMN c TO cee")
    db.sql("INSERT INTO t VALUES (5, 5.5, 18446744073709551615)")
    db.sql("UPDATE t SET cee = 0 WHERE id = 1")
    stop = db.position()
    changes = finish(reader, stop)

    ddl = [c for c in changes if c.op == Op.DDL]
    assert [c.ddl for c in ddl] == [
        "ALTER TABLE t ADD COLUMN c DECIMAL(8,3) DEFAULT 1.5 AFTER id", "ALTER TABLE t DROP COLUMN a",
        "ALTER TABLE t MODIFY COLUMN b VARBINARY(8)",
        "ALTER TABLE t CHANGE COLUMN b bee BIGINT UNSIGNED NULL, RENAME COLUMN c TO cee"]
    assert all(c.ddl_db == db.name and c.ddl_tables == ((db.name, "t"),) for c in ddl)
    assert [c.table.column_names for c in ddl] == [  # type: ignore[union-attr]  # DDL changes carry their table
        ("id", "c", "a", "b"), ("id", "c", "b"), ("id", "c", "b"), ("id", "cee", "bee")]
    rows = [c.after for c in dml(changes)]
    assert rows == [
        {"id": 1, "a": "one", "b": 10},
        {"id": 2, "c": Decimal("2.250"), "a": "two", "b": 20},
        {"id": 3, "c": Decimal("3.500"), "b": 30},
        {"id": 4, "c": Decimal("4.500"), "b": b"42"},
        {"id": 5, "cee": Decimal("5.500"), "bee": 18446744073709551615},
        {"id": 1, "cee": Decimal("0.000"), "bee": 10},
    ]
    assert dml(changes)[-1].before == {"id": 1, "cee": Decimal("1.500"), "bee": 10}
    # every change comes after the previous one
    keys = [c.position.sort_key for c in changes]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # the schema computed from the DDL agrees with the catalog on everything that decides values
    final = ddl[-1].table
    current = load_table_schema(db.conn, db.name, "t")
    fields = ("name", "data_type", "unsigned", "charset", "precision", "scale", "fsp", "values", "nullable")
    assert [[getattr(c, f) for f in fields] for c in final.columns] == \
        [[getattr(c, f) for f in fields] for c in current.columns]
    assert final.primary_key == current.primary_key == ("id",)  # type: ignore[union-attr]  # the tracker knows the table


def test_single_row_transactions_of_look_alike_tables_keep_their_table_and_columns(db: Db, tmp_path: Path) -> None:
    """Table map events are parsed once per distinct body (`binlog.table_maps`): rows of tables with the same
    columns, of a table whose id changed (FLUSH TABLES) and of a table altered back and forth still decode with
    their own table, columns and values."""
    db.sql("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10))", "CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(10))")
    start, reader = started(db, ["a", "b"], tmp_path)
    expected = []
    for i in range(1, 7):
        t = "ab"[i % 2]
        db.sql(f"INSERT INTO {t} VALUES ({i}, '{t}{i}')")
        expected.append((t, {"id": i, "v": f"{t}{i}"}))
        if i == 3:
            db.sql("FLUSH TABLES")  # new table ids for the same table map bodies
    db.sql("ALTER TABLE a MODIFY COLUMN v VARCHAR(20)")
    db.sql("INSERT INTO a VALUES (7, 'a7-wide')")
    db.sql("ALTER TABLE a MODIFY COLUMN v VARCHAR(10)")  # the first body again, for a changed schema version
    db.sql("INSERT INTO a VALUES (8, 'a8')", "INSERT INTO b VALUES (9, 'b9')")
    expected += [("a", {"id": 7, "v": "a7-wide"}), ("a", {"id": 8, "v": "a8"}), ("b", {"id": 9, "v": "b9"})]
    changes = dml(finish(reader, db.position()))
    assert [(c.table.name, c.after) for c in changes] == expected  # type: ignore[union-attr]  # rows carry their table
    assert [c.table.column("v").precision for c in changes if c.table.name == "a"] == [  # type: ignore[union-attr]
        10, 10, 10, 20, 10]


def test_batches_queued_while_the_consumer_lags_come_out_merged_up_to_batch_size(db: Db, tmp_path: Path) -> None:
    """Caught up, the reader queues a batch per transaction; a consumer that polls late gets the queued batches
    together, at most batch_size changes per poll, every row once and in order."""
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    start = db.position()
    reader = db.reader(["t"], start, tmp_path, batch_size=4)
    reader.prepare()
    reader.start()
    for i in range(1, 7):
        db.sql(f"INSERT INTO t VALUES ({i})")
        time.sleep(0.05)  # each transaction reaches an idle stream: queued as a batch of its own
    deadline = time.monotonic() + 30
    while reader.status()["queued_batches"] < 3:
        assert time.monotonic() < deadline, "the reader did not queue the transactions"
        time.sleep(0.05)
    first = reader.poll(0)
    assert 2 <= len(first) <= 4
    polls = [first]
    try:
        while sum(map(len, polls)) < 6:
            assert time.monotonic() < deadline, f"only {sum(map(len, polls))} rows came"
            polls.append(reader.poll(0.5))
    finally:
        reader.close()
    assert all(len(p) <= 4 for p in polls)
    assert [c.after["id"] for p in polls for c in p] == [1, 2, 3, 4, 5, 6]  # type: ignore[index]  # inserts have an after image


def test_ddl_results_match_the_catalog(db: Db) -> None:
    """CREATE TABLE / ALTER statements of many kinds: the computed definition equals what the server says."""
    statements = [
        "CREATE TABLE k (a INT NOT NULL, b VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_bin, "
        "c ENUM('x','y''z') NOT NULL DEFAULT 'x', d SET('p','q'), e DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3), "
        "f TIMESTAMP(6) NULL, g DECIMAL(20,5) UNSIGNED, h BIT(7), i TINYTEXT, j MEDIUMBLOB, k CHAR(3) BINARY, "
        "l BINARY(16), m FLOAT, n DOUBLE PRECISION, o YEAR, p TIME(4), q BOOL, r SMALLINT(4) ZEROFILL, "
        "s INT AS (a + 1) VIRTUAL, u VARCHAR(5) CHARACTER SET binary, UNIQUE KEY uk (a, c)) "
        "DEFAULT CHARSET=utf8mb4",
        "ALTER TABLE k ADD PRIMARY KEY (a), ADD COLUMN v JSON FIRST, ADD (w TEXT, x MEDIUMINT UNSIGNED)",
        "ALTER TABLE k MODIFY b VARCHAR(30) NOT NULL AFTER w, DROP COLUMN d, CHANGE COLUMN e ee DATE",
        "ALTER TABLE k CONVERT TO CHARACTER SET latin1",
        "ALTER TABLE k DEFAULT CHARSET utf8mb4, ADD COLUMN y VARCHAR(3), DROP PRIMARY KEY, DROP INDEX uk",
        "CREATE UNIQUE INDEX u2 ON k (b)",
    ]
    db.sql(*statements[:1])
    tdef = D.create_table_def(D.parse_ddl(statements[0], db.name, "mariadb"), "utf8mb4")  # type: ignore[arg-type]  # the first statement is a CREATE TABLE
    fields = ("name", "data_type", "unsigned", "charset", "precision", "scale", "fsp", "values", "nullable",
              "generated")

    def same() -> None:
        current = load_table_schema(db.conn, db.name, "k")
        assert [[getattr(c, f) for f in fields] for c in tdef.schema.columns] == \
            [[getattr(c, f) for f in fields] for c in current.columns]
        assert (tdef.schema.primary_key, tdef.schema.unique_keys) == (current.primary_key, current.unique_keys)

    same()
    for stmt in statements[1:]:
        db.sql(stmt)
        st = D.parse_ddl(stmt, db.name, "mariadb")
        if isinstance(st, D.CreateIndex):
            st = D.AlterTable(st.table, (("add_index", st.index),))
        assert isinstance(st, D.AlterTable), st
        tdef = D.apply_alter(tdef, st)
        same()


def test_resume_before_an_alter_uses_the_schema_of_that_position(db: Db, tmp_path: Path) -> None:
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, a INT)")
    start, reader = started(db, ["t"], tmp_path)
    db.sql("INSERT INTO t VALUES (1, 1)")
    middle = db.position()
    db.sql("INSERT INTO t VALUES (2, 2)")
    db.sql("ALTER TABLE t ADD COLUMN b VARCHAR(5) FIRST")
    db.sql("INSERT INTO t VALUES ('x', 3, 3)")
    stop = db.position()
    first = finish(reader, stop)  # records the history up to the ALTER
    assert [c.after for c in dml(first)] == [{"id": 1, "a": 1}, {"id": 2, "a": 2}, {"b": "x", "id": 3, "a": 3}]

    # a new reader from a position before the ALTER, with the same history, decodes with the old columns
    again = read_from(db, ["t"], middle, stop, tmp_path)
    assert [c.after for c in dml(again)] == [{"id": 2, "a": 2}, {"b": "x", "id": 3, "a": 3}]
    assert [c.position for c in again] == [c.position for c in first[1:]]
    # without history it would have to read the schema now (after the ALTER) and refuse the old rows
    with pytest.raises(SchemaMismatchError, match="does not match"):
        read_from(db, ["t"], middle, stop, tmp_path / "empty")


def test_resume_inside_a_multi_event_transaction_yields_exactly_the_remaining_rows(db: Db) -> None:
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(200))", "CREATE TABLE u (id INT PRIMARY KEY, v INT)")
    start = db.position()
    db.sql("BEGIN")
    db.sql("INSERT INTO t SELECT seq, REPEAT('p', 150) FROM seq_1_to_1500")  # several rows events
    db.sql("INSERT INTO u VALUES (1, 1), (2, 2)")
    db.sql("UPDATE t SET pad = 'q' WHERE id % 3 = 0")
    db.sql("DELETE FROM u WHERE id = 1")
    db.sql("COMMIT")
    db.sql("INSERT INTO u VALUES (3, 3)")
    db.sql("BEGIN", "INSERT INTO t VALUES (5000, 'a')", "INSERT INTO u VALUES (4, 4)", "COMMIT")
    stop = db.position()
    whole = read_from(db, ["t", "u"], start, stop, batch_size=10_000, max_batches=100)
    assert len(whole) == 1500 + 2 + 500 + 1 + 1 + 2
    events = db.rows_events(start, stop)
    assert len(events) > 6, "the transaction must span several rows events"

    # restart after every batch, at batch sizes that end at every kind of place
    got: list[Change] = []
    state: Any = start
    for size in itertools.cycle([97, 1, 250, 2, 333]):
        reader = db.reader(["t", "u"], state, None, stop_at=stop, batch_size=size)
        batch: list[Change] = []
        deadline = time.monotonic() + 30
        while not batch and not reader.finished:
            assert time.monotonic() < deadline
            batch = reader.poll(0.5)
        state = reader.resume_state()
        done = reader.finished
        reader.close()
        got += batch
        if done:
            break
    assert [c.position for c in got] == [c.position for c in whole]
    assert [(c.op, c.before, c.after, c.txn) for c in got] == [(c.op, c.before, c.after, c.txn) for c in whole]


def test_resume_state_round_trips_through_json(db: Db) -> None:
    import json

    db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    start = db.position()
    db.sql("INSERT INTO t VALUES (1), (2), (3)")
    stop = db.position()
    reader = db.reader(["t"], start, None, stop_at=stop, batch_size=2)
    first: list[Change] = []
    while not first:
        first = reader.poll(0.5)
    state = json.loads(json.dumps(reader.resume_state()))
    reader.close()
    assert state["version"] == 2 and state["last"] == first[-1].position.to_json()
    rest = read_from(db, ["t"], state, stop)
    assert [c.after["id"] for c in first + rest] == [1, 2, 3]  # type: ignore[index]  # inserts have their after image


def test_a_tracked_table_created_renamed_and_dropped_while_streaming(db: Db, tmp_path: Path) -> None:
    db.sql("CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(3))")
    start, reader = started(db, ["t", "t2"], tmp_path)  # neither exists yet
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10) CHARACTER SET latin1)")
    db.sql("INSERT INTO t VALUES (1, 'é')")
    db.sql("RENAME TABLE t TO t2, other TO t")  # t2 gets t's rows; t is now the former `other`
    db.sql("INSERT INTO t2 VALUES (2, 'ü')", "INSERT INTO t VALUES (3, 'abc')")
    db.sql("TRUNCATE TABLE t2", "DROP TABLE t2")
    stop = db.position()
    changes = finish(reader, stop)
    assert [(c.op, c.table.name if c.table else None, c.after) for c in changes] == [
        (Op.DDL, "t", None), (Op.INSERT, "t", {"id": 1, "name": "é"}),
        (Op.DDL, "t2", None), (Op.INSERT, "t2", {"id": 2, "name": "ü"}), (Op.INSERT, "t", {"id": 3, "v": "abc"}),
        (Op.DDL, "t2", None), (Op.DDL, None, None)]
    assert changes[2].ddl_tables == ((db.name, "t"), (db.name, "t2"), (db.name, "other"))
    assert [c.ddl for c in changes if c.op == Op.DDL][-2:] == [
        "TRUNCATE TABLE t2", "DROP TABLE `t2` /* generated by server */"]


def test_rows_of_untracked_tables_are_skipped_and_stop_at_ends_the_stream(db: Db) -> None:
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
    start = db.position()
    db.sql("INSERT INTO other VALUES (1)", "INSERT INTO t VALUES (1)", "INSERT INTO other VALUES (2)")
    db.sql("ALTER TABLE other ADD COLUMN x INT")
    stop = db.position()
    db.sql("INSERT INTO t VALUES (2)")  # after stop_at
    changes = read_from(db, ["t"], start, stop)
    assert [(c.op, c.after) for c in changes] == [(Op.INSERT, {"id": 1})]


def test_a_statement_the_parser_cannot_read_makes_the_tracker_reread_the_table(
        db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = D.parse_ddl

    def parse(sql: str, default_db: str | None, dialect: str = "mysql") -> Any:
        if "/* ob-only */" in sql:  # stands for OceanBase-only syntax
            return D.Unparsed(D.guess_tables(sql, default_db), "test: unknown syntax")
        return real(sql, default_db, dialect)

    monkeypatch.setattr(D, "parse_ddl", parse)
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    start, reader = started(db, ["t"], tmp_path)
    db.sql("ALTER TABLE t /* ob-only */ ADD COLUMN z VARCHAR(4)")
    db.sql("INSERT INTO t VALUES (1, 'zz')")
    stop = db.position()
    changes = finish(reader, stop)
    assert changes[0].op == Op.DDL and changes[0].table.column_names == ("id", "z")  # type: ignore[union-attr]  # DDL changes carry their table
    assert [c.after for c in dml(changes)] == [{"id": 1, "z": "zz"}]
    assert "re-reading" in caplog.text and "ob-only" in caplog.text


def test_a_table_map_that_disagrees_is_settled_by_the_source_or_refused(
        db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = D.parse_ddl
    monkeypatch.setattr(D, "parse_ddl", lambda sql, *a, **k: None if "/* silent */" in sql else real(sql, *a, **k))
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    start, reader = started(db, ["t"], tmp_path)
    db.sql("ALTER TABLE t /* silent */ ADD COLUMN z INT")  # the tracker does not see this one
    db.sql("INSERT INTO t VALUES (1, 7)")
    stop = db.position()
    changes = finish(reader, stop)
    assert [c.after for c in dml(changes)] == [{"id": 1, "z": 7}]  # the source's definition matched

    start, reader = started(db, ["t"], tmp_path / "second")
    db.sql("ALTER TABLE t /* silent */ ADD COLUMN y INT")
    db.sql("INSERT INTO t VALUES (2, 7, 8)")
    db.sql("ALTER TABLE t /* silent */ ADD COLUMN x INT")  # now the source matches neither
    stop = db.position()
    with pytest.raises(SchemaMismatchError, match=rf"{db.name}\.t at {start.file}:\d+"):
        finish(reader, stop)


def test_a_million_row_transaction_streams_in_bounded_memory(mariadb: Any) -> None:
    db = Db(mariadb)
    try:
        db.sql("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(20))")
        start = db.position()
        db.sql("INSERT INTO t SELECT seq, seq * 2, CONCAT('row-', seq) FROM seq_1_to_1000000")
        stop = db.position()
        reader = db.reader(["t"], start, None, stop_at=stop, batch_size=500, max_batches=8)
        peak = base = _rss()
        n = 0
        last = None
        while not reader.finished:
            batch = reader.poll(0.5)
            n += len(batch)
            if batch:
                last = batch[-1]
            peak = max(peak, _rss())
        reader.close()
        assert n == 1_000_000 and last is not None and last.after == {"id": 1_000_000, "a": 2_000_000,
                                                                       "b": "row-1000000"}
        growth = (peak - base) / 2**20
        print(f"1M-row transaction: peak RSS {peak / 2**20:.0f} MiB, +{growth:.0f} MiB while streaming")
        assert growth < 150, f"RSS grew by {growth:.0f} MiB while streaming one transaction"
    finally:
        db.close()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_an_idle_stream_with_a_short_read_timeout_is_kept_alive_by_heartbeats(mariadb: Any) -> None:
    """source.read_timeout bounds the stream's silence; the server's heartbeats (at most a quarter of it apart)
    keep an idle stream from counting as lost."""
    db = Db(mariadb)
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    start = db.position()
    reader = BinlogReader(dataclasses.replace(db.endpoint, read_timeout=1.0), server_id=next(_server_ids),
                          tables=[(db.name, "t")], history_dir=None, start=start)
    got: list[Change] = []
    try:
        db.sql("INSERT INTO t VALUES (1)")
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "the insert did not arrive"
            got.extend(reader.poll(0.5))
        assert reader.heartbeat == 0.25
        idle_until = time.monotonic() + 4  # idle for 4 read timeouts
        while time.monotonic() < idle_until:
            got.extend(reader.poll(0.5))
        assert reader.reconnects == 0 and reader.status()["idle_seconds"] < 1.0
        db.sql("INSERT INTO t VALUES (2)")
        deadline = time.monotonic() + 30
        while len(got) < 2:
            assert time.monotonic() < deadline, "the second insert did not arrive"
            got.extend(reader.poll(0.5))
    finally:
        reader.close()
        db.close()
    assert [c.after for c in got] == [{"id": 1}, {"id": 2}] and reader.reconnects == 0


# ---- reconnects and lost positions: a private server, restarted and purged ------------------------------

@pytest.fixture(scope="module")
def private_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from obsync.app.embedded.mariadb import MariaDBServer

    with MariaDBServer(tmp_path_factory.mktemp("mariadb_private"), row_metadata="MINIMAL") as server:
        yield server


def test_the_reader_reconnects_after_a_restart_and_a_killed_connection(private_mariadb: Any) -> None:
    db = Db(private_mariadb)
    db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
    reader = db.reader(["t"], db.position(), None, heartbeat=0.5, max_backoff=1.0)
    got: list[Change] = []

    def drain(n: int) -> None:
        deadline = time.monotonic() + 60
        while len(got) < n:
            assert time.monotonic() < deadline, f"got {len(got)} of {n} changes"
            got.extend(reader.poll(0.5))

    try:
        db.sql("INSERT INTO t VALUES (1)")
        drain(1)
        db.conn.close()
        private_mariadb.stop()
        time.sleep(1.5)
        private_mariadb.start()
        db.conn = connect(db.endpoint)
        db.sql(f"USE {db.name}", "INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)")
        drain(3)
        dumps = [r[0] for r in db.sql("SHOW PROCESSLIST") if str(r[4]).startswith("Binlog Dump")]
        assert dumps, "the reader's replication connection is not on the server"
        for pid in dumps:
            db.sql(f"KILL {pid}")
        db.sql("INSERT INTO t VALUES (4)")
        drain(4)
        time.sleep(1.0)
        assert len(got) == 4 and reader.reconnects >= 2
    finally:
        reader.close()
        db.close()
    assert [c.after for c in got] == [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]
    assert [c.position.file for c in got][0] != got[1].position.file  # the restart began a new binlog


def test_a_purged_binlog_position_raises_position_lost(private_mariadb: Any) -> None:
    db = Db(private_mariadb)
    try:
        db.sql("CREATE TABLE t (id INT PRIMARY KEY)")
        old = db.position()
        db.sql("INSERT INTO t VALUES (1)", "FLUSH BINARY LOGS")
        deadline = time.monotonic() + 20
        while old.file in dict(binlog_files(db.endpoint)):  # MariaDB keeps a file until its checkpoint passed
            assert time.monotonic() < deadline, "PURGE BINARY LOGS did not remove the old file"
            db.sql("FLUSH BINARY LOGS", f"PURGE BINARY LOGS TO '{db.position().file}'")
            time.sleep(0.3)
        reader = db.reader(["t"], {"version": 1, "file": old.file, "pos": old.pos, "last": None}, None)
        with pytest.raises(PositionLostError, match=rf"{old.file}:{old.pos} is no longer on the server.*full sync"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                reader.poll(0.5)
        reader.close()
    finally:
        db.close()


def test_errors_and_logs_never_show_the_password(private_mariadb: Any, caplog: pytest.LogCaptureFixture) -> None:
    ep = Endpoint(private_mariadb.host, private_mariadb.port, "root", "s3cret-pw")
    reader = BinlogReader(ep, server_id=next(_server_ids), tables=[("x", "y")], history_dir=None)
    with pytest.raises(Exception) as info:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reader.poll(0.5)
    reader.close()
    assert "s3cret-pw" not in str(info.value) and "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in repr(reader.log_endpoint)


def test_current_position_and_binlog_files(mariadb: Any) -> None:
    ep = Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password)
    p = current_log_position(ep)
    files = binlog_files(ep)
    assert p.file == files[-1][0] and 4 <= p.pos <= files[-1][1] and p.row == 0

"""`start_time`: the binlog position of the first transaction committed at or after a time, on a real MariaDB.

The scenario writes groups of transactions, each group pinned to one whole second of the real clock with
`SET TIMESTAMP` (MariaDB writes the session's timestamp into every event of the statement, XID and rotate
included), so commit times are exact however slow the machine is, and stay in step with the rest of the
shared server's binlog. Binary logs are flushed between groups, once in the same second as the next group.
Every answer is checked twice: against the transaction's GTID event in SHOW BINLOG EVENTS, and by reading
from it with the BinlogReader, which must give exactly the changes of the transactions from that one on.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from obsync.connectors.mysql.binlog import BinlogReader, binlog_files, current_log_position
from obsync.connectors.mysql.binlog.start_time import _Scanner, position_at_time
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.core.changes import Change, Op
from obsync.core.errors import PositionLostError
from obsync.core.positions import LogPosition

UTC = dt.UTC
_server_ids = itertools.count(9700)


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


@dataclass
class Txn:
    name: str
    start: LogPosition  # its GTID event
    changes: list[tuple[Any, ...]]  # what the reader must give for it


@dataclass
class Scenario:
    endpoint: Endpoint
    db: str
    conn: Any
    seconds: dict[str, int] = field(default_factory=dict)
    txns: list[Txn] = field(default_factory=list)
    end: LogPosition | None = None

    def sql(self, *stmts: str) -> list[tuple]:
        out: list[tuple] = []
        with self.conn.cursor() as cur:
            for s in stmts:
                cur.execute(s)
                out = list(cur.fetchall())
        return out

    def next_second(self, after: int) -> int:
        """Wait for a whole second later than `after` and pin the session's clock to it."""
        while int(time.time()) <= after:
            time.sleep(0.02)
        sec = int(time.time())
        self.sql(f"SET TIMESTAMP = {sec}")
        return sec

    def txn(self, name: str, stmts: list[str], changes: list[tuple[Any, ...]]) -> None:
        before = current_log_position(self.endpoint)
        self.sql(*stmts)
        events = self.sql(f"SHOW BINLOG EVENTS IN '{before.file}' FROM {before.pos}")
        gtid = next(int(r[1]) for r in events if r[2] == "Gtid")
        self.txns.append(Txn(name, LogPosition(before.file, gtid, 0), changes))

    def txn_named(self, name: str) -> Txn:
        return next(t for t in self.txns if t.name == name)

    def expected_from(self, name: str) -> list[tuple[Any, ...]]:
        i = self.txns.index(self.txn_named(name))
        return [c for t in self.txns[i:] for c in t.changes]

    def read(self, start: LogPosition, stop: LogPosition) -> list[tuple[Any, ...]]:
        reader = BinlogReader(self.endpoint, server_id=next(_server_ids), tables=[(self.db, "t"), (self.db, "m")],
                              history_dir=None, start=start, stop_at=stop, emit_untracked_ddl=True)
        out: list[Change] = []
        deadline = time.monotonic() + 60
        try:
            while not reader.finished:
                assert time.monotonic() < deadline, "reader not finished after 60s"
                out += reader.poll(0.5)
        finally:
            reader.close()
        return [simple(c) for c in out]


def simple(c: Change) -> tuple[Any, ...]:
    if c.op == Op.DDL:
        return ("ddl", c.ddl)
    assert c.table is not None
    return (c.op.value, c.table.name, c.before, c.after)


DDL_T2 = "CREATE TABLE t2 (id INT PRIMARY KEY)"


@pytest.fixture(scope="module")
def sc(mariadb: Any) -> Iterator[Scenario]:
    ep = Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password)
    name = f"st_{uuid.uuid4().hex[:8]}"
    conn = connect(ep)
    s = Scenario(ep, name, conn)
    s.sql(f"CREATE DATABASE {name}", f"USE {name}",
          "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB",
          "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM")
    setup_done = int(time.time())

    # s0: two transactions in the middle of the current file
    s0 = s.seconds["s0"] = s.next_second(setup_done)
    s.txn("A", ["BEGIN", "INSERT INTO t VALUES (1, 'a'), (2, 'b')", "COMMIT"],
          [("insert", "t", None, {"id": 1, "v": "a"}), ("insert", "t", None, {"id": 2, "v": "b"})])
    s.txn("B", ["UPDATE t SET v = 'b2' WHERE id = 2"],
          [("update", "t", {"id": 2, "v": "b"}, {"id": 2, "v": "b2"})])
    s.sql("SET TIMESTAMP = DEFAULT", "FLUSH BINARY LOGS")  # a new file, created at s0 or a bit later

    # s1: the first transactions of that file; one non-transactional (ends with a COMMIT query event)
    s1 = s.seconds["s1"] = s.next_second(s0)
    s.txn("C", ["BEGIN", "INSERT INTO t VALUES (3, 'c')", "COMMIT"], [("insert", "t", None, {"id": 3, "v": "c"})])
    s.txn("D", ["INSERT INTO m VALUES (1)"], [("insert", "m", None, {"id": 1})])
    s.txn("E", ["DELETE FROM t WHERE id = 1"], [("delete", "t", {"id": 1, "v": "a"}, None)])

    # s2, after a second without commits: a DDL (its own transaction), then a multi-statement transaction
    s2 = s.seconds["s2"] = s.next_second(s1 + 1)
    s.txn("F", [DDL_T2], [("ddl", DDL_T2)])
    s.txn("G", ["BEGIN", "INSERT INTO t VALUES (4, 'd')", "UPDATE t SET v = 'c2' WHERE id = 3", "COMMIT"],
          [("insert", "t", None, {"id": 4, "v": "d"}), ("update", "t", {"id": 3, "v": "c"}, {"id": 3, "v": "c2"})])

    # s3: the last transaction of that file, then a new file created in the same second
    s3 = s.seconds["s3"] = s.next_second(s2)
    s.txn("G3", ["UPDATE t SET v = 'd2' WHERE id = 4"], [("update", "t", {"id": 4, "v": "d"}, {"id": 4, "v": "d2"})])
    s.sql("FLUSH BINARY LOGS")
    s.txn("H", ["INSERT INTO t VALUES (5, 'e')"], [("insert", "t", None, {"id": 5, "v": "e"})])
    s.sql("SET TIMESTAMP = DEFAULT")
    s.end = current_log_position(ep)

    files = [t.start.file for t in s.txns]
    assert files[0] == files[1] != files[2] == files[7] != files[8], files  # A B | C D E F G G3 | H
    assert s3 > s2 > s1 + 1 > s0
    # the premise of the G3 case: the session's pinned clock dated the new file too
    assert _Scanner(ep, None, next(_server_ids)).first_time(files[8]) == s3
    try:
        yield s
    finally:
        conn.close()


def check(sc: Scenario, when: dt.datetime, first: str) -> None:
    p = position_at_time(sc.endpoint, when, server_id=next(_server_ids))
    assert p == sc.txn_named(first).start, f"{when}: expected transaction {first}"
    assert sc.end is not None
    assert sc.read(p, sc.end) == sc.expected_from(first)


def test_middle_of_a_file(sc: Scenario) -> None:
    """s0 is after everything else in that file (set-up, other tests): its first transaction is A."""
    check(sc, at(sc.seconds["s0"]), "A")


def test_first_transactions_of_a_file(sc: Scenario) -> None:
    check(sc, at(sc.seconds["s1"]), "C")


def test_sub_second_when_includes_its_whole_second(sc: Scenario) -> None:
    check(sc, at(sc.seconds["s1"] + 0.75), "C")
    check(sc, at(sc.seconds["s2"] + 0.001), "F")


def test_second_without_commits_gives_the_next_transaction_a_ddl(sc: Scenario) -> None:
    check(sc, at(sc.seconds["s1"] + 1), "F")
    # the same instant written in another time zone
    check(sc, at(sc.seconds["s1"] + 1).astimezone(dt.timezone(dt.timedelta(hours=-7))), "F")


def test_commit_in_the_second_the_next_file_was_created(sc: Scenario) -> None:
    """The file holding H was created at s3, but G3, in the file before, committed at s3 too."""
    check(sc, at(sc.seconds["s3"]), "G3")


def test_after_the_last_commit_and_in_the_future_start_at_the_next_commit(sc: Scenario) -> None:
    assert sc.end is not None
    after_last = position_at_time(sc.endpoint, at(sc.seconds["s3"] + 1), server_id=next(_server_ids))
    future = position_at_time(sc.endpoint, dt.datetime.now(UTC) + dt.timedelta(hours=1),
                              server_id=next(_server_ids))
    for p in (after_last, future):  # the current position (a binlog checkpoint event may follow `end`)
        assert p.file == sc.end.file and p.pos >= sc.end.pos and p.row == 0
    sc.sql("INSERT INTO t VALUES (6, 'f')")
    stop = current_log_position(sc.endpoint)
    for p in (after_last, future):
        assert sc.read(p, stop) == [("insert", "t", None, {"id": 6, "v": "f"})]


def test_before_the_oldest_binlog(sc: Scenario) -> None:
    oldest = binlog_files(sc.endpoint)[0][0]
    when = dt.datetime(2000, 1, 1, tzinfo=UTC)
    with pytest.raises(PositionLostError) as info:
        position_at_time(sc.endpoint, when, server_id=next(_server_ids))
    msg = str(info.value)
    assert "start_time 2000-01-01T00:00:00+00:00 is before the oldest binlog" in msg
    assert re.search(rf"{re.escape(oldest)} begins at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", msg), msg
    assert "Use full sync, or a start_time at or after" in msg


def test_naive_datetime_is_refused(sc: Scenario) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        position_at_time(sc.endpoint, dt.datetime(2030, 1, 1), server_id=next(_server_ids))

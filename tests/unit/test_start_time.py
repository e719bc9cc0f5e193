"""`parse_start_time`, and the transaction-boundary tracking of the start_time search on MySQL-style logs
(the MariaDB ones are covered against a real server in tests/integration/test_start_time.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from obsync.connectors.mysql.binlog.start_time import _Txns
from obsync.core.positions import LogPosition
from obsync.task.start_time import parse_start_time

UTC = dt.UTC
T = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)  # 1714557600


@pytest.mark.parametrize("value, expected", [
    ("2024-05-01T10:00:00Z", T),
    ("2024-05-01T10:00:00+00:00", T),
    ("2024-05-01T12:00:00+02:00", T),
    ("2024-05-01T03:00:00-07:00", T),
    ("2024-05-01 10:00:00", T),  # no offset: UTC
    ("2024-05-01T10:00:00.250", T.replace(microsecond=250000)),
    ("2024-05-01", T.replace(hour=0)),
    ("  2024-05-01T10:00:00Z\n", T),
    (1714557600, T),
    (1714557600.5, T.replace(microsecond=500000)),
    (Decimal("1714557600.000001"), T.replace(microsecond=1)),
    ("1714557600", T),
    ("1714557600.25", T.replace(microsecond=250000)),
    (" 1714557600 ", T),
    ("0", dt.datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_parse_start_time(value: object, expected: dt.datetime) -> None:
    got = parse_start_time(value)  # type: ignore[arg-type]  # parametrized with values of any type
    assert got == expected and got.tzinfo is UTC


def test_parse_start_time_normalizes_to_utc() -> None:
    assert parse_start_time("2024-05-01T12:00:00+02:00").utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("value, message", [
    ("", "empty"),
    ("   ", "empty"),
    ("yesterday", "neither an ISO-8601 date-time"),
    ("2024-13-01T00:00:00", "neither an ISO-8601 date-time"),
    ("2024-05-01T25:00:00", "neither an ISO-8601 date-time"),
    ("1e9", "neither an ISO-8601 date-time"),
    ("12:00", "neither an ISO-8601 date-time"),
    (float("nan"), "not a finite number"),
    (float("inf"), "not a finite number"),
    (1e20, "out of range"),
    ("9" * 30, "out of range"),
    (True, "ISO-8601 date-time or epoch seconds"),
    (None, "ISO-8601 date-time or epoch seconds"),
    ([1714557600], "ISO-8601 date-time or epoch seconds"),
    (T, "ISO-8601 date-time or epoch seconds"),
])
def test_parse_start_time_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_start_time(value)  # type: ignore[arg-type]  # parametrized with values of any type


# ---- transaction boundaries -------------------------------------------------------------------------

F = "binlog.000007"


def at(pos: int) -> LogPosition:
    return LogPosition(F, pos, 0)


def test_mysql_gtid_begin_xid() -> None:
    t = _Txns(F)
    t.begin(100, False)  # Gtid_log_event at 100
    assert t.query(170, "BEGIN") is None
    assert t.query(250, "INSERT INTO x VALUES (1)") is None  # statement-based inside BEGIN
    assert t.commit(400) == at(100)  # Xid
    assert not t.in_txn


def test_mysql_ddl_after_gtid_commits_at_the_query() -> None:
    t = _Txns(F)
    t.begin(100, False)
    assert t.query(170, "CREATE TABLE x (id INT)") == at(100)


def test_no_gtid_begin_and_commit_query() -> None:
    t = _Txns(F)
    assert t.query(100, "BEGIN") is None
    assert t.query(300, "SAVEPOINT s1") is None
    assert t.query(350, "ROLLBACK TO s1") is None
    assert t.query(400, "COMMIT") == at(100)
    assert t.query(500, "DROP TABLE x") == at(500)  # a statement without GTID nor BEGIN: its own transaction


def test_xa_prepare_ends_the_prepared_part() -> None:
    t = _Txns(F)
    t.begin(100, False)
    assert t.query(170, "XA START X'1'") is None
    assert t.query(400, "XA END X'1'") is None
    assert t.commit(450) == at(100)  # XA_prepare_log_event
    t.begin(500, False)
    assert t.query(570, "XA COMMIT X'1'") == at(500)


def test_mariadb_transaction_without_begin_ends_at_its_commit_event() -> None:
    t = _Txns(F)
    t.begin(100, True)  # a MariaDB GTID without FL_STANDALONE: XID or COMMIT follows
    assert t.query(200, "CREATE TABLE y SELECT 1 AS a") is None
    assert t.query(400, "COMMIT") == at(100)


def test_compressed_query_is_an_ordinary_statement() -> None:
    t = _Txns(F)
    t.begin(100, False)
    assert t.query(170, None) == at(100)


def test_rotate_forgets_an_unterminated_transaction() -> None:
    t = _Txns(F)
    t.begin(100, True)
    t.rotate("binlog.000008")
    assert t.query(256, "DROP TABLE x") == LogPosition("binlog.000008", 256, 0)

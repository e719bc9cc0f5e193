"""The MySQL/MariaDB/OceanBase failure classifier and the reconnect policy (obsync.connectors.mysql.failures),
and how the replication stream is opened (obsync.connectors.mysql.binlog.stream)."""

from __future__ import annotations

import itertools
import logging
import socket
from typing import Any

import pymysql
import pytest
from pymysql.constants import CR, ER

from obsync.connectors.mysql.binlog import stream as stream_module
from obsync.connectors.mysql.connection import Endpoint, connect_error
from obsync.connectors.mysql.failures import (
    CODES,
    DRIVER_ERRORS,
    LOG_POLICY,
    SESSION_POLICY,
    SNAPSHOT_POLICY,
    Failure,
    ReconnectPolicy,
    StreamLost,
    classify,
    code_name,
    describe,
    error_code,
    hint,
    retryable,
    stoppable_sleep,
)
from obsync.core.errors import (
    PositionLostError,
    SchemaMismatchError,
    SourceError,
    SourceUnavailable,
    StopWhileWaiting,
)

try:
    import MySQLdb
except ImportError:  # mysqlclient is optional
    MySQLdb = None

T, L, P, F = Failure.TRANSIENT, Failure.CONNECTION_LOST, Failure.POSITION_PURGED, Failure.FATAL

# Every error number the table knows, with its name and class: written out here, not read from the table, so
# a change to the table shows up as a failing test.
EXPECTED = [
    (1205, "ER_LOCK_WAIT_TIMEOUT", T),
    (1213, "ER_LOCK_DEADLOCK", T),
    (1317, "ER_QUERY_INTERRUPTED", T),
    (4012, "OB_TIMEOUT", T),
    (4013, "OB_ALLOCATE_MEMORY_FAILED", T),
    (4023, "OB_EAGAIN", T),
    (4030, "OB_TENANT_OUT_OF_MEM", T),
    (4038, "OB_NOT_MASTER", T),
    (6002, "OB_TRANS_ROLLBACKED", T),
    (1040, "ER_CON_COUNT_ERROR", L),
    (1053, "ER_SERVER_SHUTDOWN", L),
    (1152, "ER_ABORTING_CONNECTION", L),
    (1158, "ER_NET_READ_ERROR", L),
    (1159, "ER_NET_READ_INTERRUPTED", L),
    (1160, "ER_NET_ERROR_ON_WRITE", L),
    (1161, "ER_NET_WRITE_INTERRUPTED", L),
    (1927, "ER_CONNECTION_KILLED", L),
    (3169, "ER_SESSION_WAS_KILLED", L),
    (2002, "CR_CONNECTION_ERROR", L),
    (2003, "CR_CONN_HOST_ERROR", L),
    (2005, "CR_UNKNOWN_HOST", L),
    (2006, "CR_SERVER_GONE_ERROR", L),
    (2013, "CR_SERVER_LOST", L),
    (2055, "CR_SERVER_LOST_EXTENDED", L),
    (5013, "CR_ERR_NET_READ", L),  # from mysqlclient only
    (5014, "CR_ERR_NET_WRITE", L),  # from mysqlclient only
    (5066, "OB_ERR_SESSION_INTERRUPTED", L),
    (4052, "ER_SLAVE_SAME_ID", L),
    (1236, "ER_MASTER_FATAL_ERROR_READING_BINLOG", P),
    (1044, "ER_DBACCESS_DENIED_ERROR", F),
    (1045, "ER_ACCESS_DENIED_ERROR", F),
    (1054, "ER_BAD_FIELD_ERROR", F),
    (1064, "ER_PARSE_ERROR", F),
    (1142, "ER_TABLEACCESS_DENIED_ERROR", F),
    (1146, "ER_NO_SUCH_TABLE", F),
    (1227, "ER_SPECIFIC_ACCESS_DENIED_ERROR", F),
    (1381, "ER_NO_BINARY_LOGGING", F),
    (1412, "ER_TABLE_DEF_CHANGED", F),
    (4138, "OB_SNAPSHOT_DISCARDED", F),
]
MYSQLCLIENT_ONLY = {5013, 5014}
_needs_mysqlclient = pytest.mark.skipif(MySQLdb is None, reason="mysqlclient not installed")


def test_the_table_knows_exactly_the_pinned_codes() -> None:
    assert sorted(CODES) == sorted(code for code, _, _ in EXPECTED)
    assert {c for c, k in CODES.items() if k.mysqlclient_only} == MYSQLCLIENT_ONLY


@pytest.mark.parametrize("code, name, failure", EXPECTED, ids=[f"{c}-{n}" for c, n, _ in EXPECTED])
def test_every_known_code_is_pinned_to_its_class(code: int, name: str, failure: Failure) -> None:
    assert CODES[code].name == name and CODES[code].failure is failure
    if code not in MYSQLCLIENT_ONLY:  # a server error reaches us through pymysql as OperationalError
        err = pymysql.err.OperationalError(code, "server says no")
        assert classify(err) is failure
        assert classify(err, unknown=Failure.CONNECTION_LOST) is failure  # known codes ignore `unknown`
        assert code_name(err) == name
        assert retryable(err) is (failure in (T, L))
    if MySQLdb is not None:
        assert classify(MySQLdb.OperationalError(code, "server says no")) is failure


def test_names_agree_with_pymysql_where_it_knows_them() -> None:
    unnamed = set()
    for code, name, _ in EXPECTED:
        if name.startswith("CR_"):
            known = getattr(CR, name, None)
        elif name.startswith("ER_"):
            known = getattr(ER, name[3:], None)
        else:
            continue  # OceanBase's
        if known is None:
            unnamed.add(name)
        else:
            assert known == code, name
    # MariaDB's and MySQL 8's kills, MariaDB's duplicate replica, libmariadb's network errors
    assert unnamed == {"ER_CONNECTION_KILLED", "ER_SESSION_WAS_KILLED", "ER_SLAVE_SAME_ID", "CR_ERR_NET_READ",
                       "CR_ERR_NET_WRITE"}


def test_the_retryable_classes() -> None:
    assert [f for f in Failure if f.retryable] == [T, L]


# ---- pymysql --------------------------------------------------------------------------------------------

def test_pymysql_errors() -> None:
    err = pymysql.err
    assert classify(err.InterfaceError(0, "")) is L  # used after it was closed
    assert classify(err.InterfaceError("(0, '')")) is L
    assert classify(err.OperationalError(2013, "Lost connection to MySQL server during query")) is L
    assert classify(err.OperationalError()) is L  # no number: the driver's own socket trouble
    assert classify(err.InternalError("Packet sequence number wrong - got 3 expected 1")) is F
    assert classify(err.ProgrammingError(1064, "You have an error in your SQL syntax")) is F
    # an OperationalError the table does not know: FATAL, unless the caller says otherwise
    assert classify(err.OperationalError(1130, "Host is not allowed to connect")) is F
    assert classify(err.OperationalError(1130, "Host is not allowed to connect"), unknown=L) is L
    # the drivers file statement errors elsewhere: those stay FATAL whatever `unknown` says
    assert classify(err.ProgrammingError(1049, "Unknown database 'x'"), unknown=L) is F
    assert classify(err.DataError(1406, "Data too long"), unknown=L) is F
    assert classify(err.IntegrityError(1062, "Duplicate entry"), unknown=L) is F
    # libmariadb's client codes 5013/5014 are OceanBase server errors when pymysql reports them
    assert classify(err.OperationalError(5014, "Illegal value")) is F
    assert code_name(err.OperationalError(5014, "Illegal value")) is None


@_needs_mysqlclient
def test_mysqlclient_errors() -> None:
    assert classify(MySQLdb.OperationalError(2013, "Lost connection to server during query")) is L
    assert classify(MySQLdb.OperationalError(2002, "Can't connect to server on '127.0.0.1' (115)")) is L
    assert classify(MySQLdb.OperationalError(5013, "Read error")) is L
    assert classify(MySQLdb.OperationalError(5014, "Write error")) is L
    assert code_name(MySQLdb.OperationalError(5014, "Write error")) == "CR_ERR_NET_WRITE"
    assert classify(MySQLdb.InterfaceError(0, "")) is L
    assert classify(MySQLdb.ProgrammingError(1146, "Table 'db.t' doesn't exist")) is F
    assert classify(MySQLdb.OperationalError(1045, "Access denied")) is F
    assert classify(MySQLdb.OperationalError(9999, "?")) is F
    assert classify(MySQLdb.OperationalError(9999, "?"), unknown=L) is L
    assert MySQLdb.MySQLError in DRIVER_ERRORS and pymysql.err.MySQLError in DRIVER_ERRORS


# ---- sockets, the stream, obsync's own errors -----------------------------------------------------------

@pytest.mark.parametrize("exc, failure", [
    (ConnectionResetError(104, "Connection reset by peer"), L),
    (ConnectionRefusedError(111, "Connection refused"), L),
    (BrokenPipeError(32, "Broken pipe"), L),
    (socket.timeout("timed out"), L),  # noqa: UP041 - what older code raises, an alias of TimeoutError
    (TimeoutError(), L),
    (socket.gaierror(-2, "Name or service not known"), L),
    (OSError(113, "No route to host"), L),
    (EOFError(), L),
    (StreamLost("the server ended the binlog stream"), L),
    (FileNotFoundError(2, "No such file or directory"), F),  # local files, not the source
    (PermissionError(13, "Permission denied"), F),
    (SourceUnavailable("cannot connect"), L),
    (SourceError("the source refused"), F),
    (SchemaMismatchError("row event does not match"), F),
    (PositionLostError("binlog position purged"), P),
    (ValueError("a bug"), F),
    (KeyError("a bug"), F),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v))
def test_other_errors(exc: BaseException, failure: Failure) -> None:
    assert classify(exc) is failure
    assert error_code(exc) is None


def test_hints_names_and_messages() -> None:
    op = pymysql.err.OperationalError
    assert hint(op(4012, "Timeout, query has reached the maximum query timeout")) == \
        "the query ran out of time (ob_query_timeout)"
    assert "undo_retention" in (hint(op(4138, "Request to read too old versioned data")) or "")
    assert "restart the full sync" in (hint(op(1412, "Table definition has changed")) or "")
    assert hint(op(1045, "Access denied")) == hint(op(1044, "Access denied")) == "check user and password"
    assert hint(op(2013, "Lost connection")) is None and hint(ValueError()) is None
    assert code_name(op(1381, "You are not using binary logging")) == "ER_NO_BINARY_LOGGING"
    assert code_name(op(9999, "?")) is None
    assert describe(op(2013, "Lost connection to MySQL server during query")) == \
        "Lost connection to MySQL server during query"
    assert describe(op()) == str(op())
    assert describe(SourceError("x")) == "x"
    assert error_code(op(2013, "x")) == 2013 and error_code(pymysql.err.InternalError("text")) is None


def test_connect_errors_are_terminal_only_for_refused_credentials() -> None:
    ep = Endpoint("db.example", 3306, "cdc", "pw-never-shown-17")
    op = pymysql.err.OperationalError
    denied = connect_error(ep, op(1045, "Access denied for user 'cdc'@'10.0.0.1' (using password: YES)"))
    assert type(denied) is SourceError
    assert str(denied) == ("cannot connect to cdc@db.example:3306: Access denied for user 'cdc'@'10.0.0.1' "
                           "(using password: YES) (check user and password)")
    for e in (op(2003, "Can't connect to MySQL server on 'db.example'"), op(1040, "Too many connections"),
              op(1130, "Host '10.0.0.1' is not allowed to connect"), op(5160, "invalid tenant name")):
        got = connect_error(ep, e)
        assert type(got) is SourceUnavailable and str(got) == f"cannot connect to cdc@db.example:3306: {e.args[1]}"
    assert "pw-never-shown-17" not in str(denied)
    # No greeting (a port of another service, or a silent network): retried, and said so
    silent = connect_error(ep, op(2013, "Lost connection to MySQL server during query (timed out)"))
    assert type(silent) is SourceUnavailable and str(silent) == (
        "cannot connect to cdc@db.example:3306: the port accepted the connection but sent no MySQL greeting within "
        "10 s (source.connect_timeout): the server is stalled or out of reach, or db.example:3306 is not a "
        "MySQL/MariaDB/OceanBase port (Lost connection to MySQL server during query (timed out))")


# ---- the policy -----------------------------------------------------------------------------------------

def _take(it: Any, n: int) -> list[float]:
    return list(itertools.islice(it, n))


def test_delays_grow_to_the_cap() -> None:
    p = ReconnectPolicy(initial=0.5, multiplier=2, cap=5, jitter=0)
    assert _take(p.delays(), 8) == [0.5, 1, 2, 4, 5, 5, 5, 5]
    assert _take(ReconnectPolicy(initial=3, cap=1, jitter=0).delays(), 2) == [1, 1]


def test_jitter_only_shortens() -> None:
    p = ReconnectPolicy(initial=1, multiplier=2, cap=4, jitter=0.25)
    assert _take(p.delays(rand=lambda: 0.0), 4) == [1, 2, 4, 4]
    assert _take(p.delays(rand=lambda: 1.0), 4) == [0.75, 1.5, 3, 3]
    for d, top in zip(_take(p.delays(), 50), itertools.chain([1, 2], itertools.repeat(4)), strict=False):
        assert 0.75 * top <= d <= top


def test_the_attempt_budget_counts_the_first_try() -> None:
    assert list(ReconnectPolicy(initial=0.5, jitter=0, attempts=3).delays()) == [0.5, 1]
    assert list(ReconnectPolicy(jitter=0, attempts=1).delays()) == []


def test_patience_is_a_time_budget_from_the_first_failure() -> None:
    now = [100.0]
    p = ReconnectPolicy(initial=1, multiplier=2, cap=10, jitter=0, patience=10)
    got = []
    for d in p.delays(clock=lambda: now[0]):
        got.append(d)
        now[0] += d + 0.5  # the wait, and a failing try
    assert got == [1, 2, 4]  # 1 + 0.5 + 2 + 0.5 + 4 + 0.5 = 8.5 s: a wait of 8 would end past 10 s


@pytest.mark.parametrize("kwargs", [{"initial": -1}, {"multiplier": 0.5}, {"cap": -1}, {"jitter": 1},
                                    {"jitter": -0.1}, {"attempts": 0}, {"patience": -1}])
def test_unusable_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a usable reconnect policy"):
        ReconnectPolicy(**kwargs)


def test_each_callers_limits() -> None:
    """Each caller's limits: the log and a snapshot chunk 0.5 s doubling to 30 s (the log: to its max_backoff)
    for 10 minutes (the default `source.patience`; the readers use their endpoint's), a SQL session one
    immediate retry."""
    def no_jitter() -> float:  # the waits before jitter
        return 0.0

    assert _take(LOG_POLICY.delays(rand=no_jitter), 9) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert LOG_POLICY.attempts is None and LOG_POLICY.patience == 600
    now = [0.0]

    def clock() -> float:  # each wait is slept in full
        return now[0]

    waits = []
    for wait in SNAPSHOT_POLICY.delays(rand=no_jitter, clock=clock):
        waits.append(wait)
        now[0] += wait
    assert waits[:8] == [0.5, 1, 2, 4, 8, 16, 30, 30] and set(waits[6:]) == {30}
    assert sum(waits) <= 600 < sum(waits) + 30  # no retry starts after 10 minutes
    assert SNAPSHOT_POLICY.attempts is None and SNAPSHOT_POLICY.patience == 600
    assert SNAPSHOT_POLICY.transient_attempts == 3  # a statement the server keeps failing: 3 tries
    assert list(SESSION_POLICY.delays()) == [0]
    for p in (LOG_POLICY, SNAPSHOT_POLICY, SESSION_POLICY):
        assert 0 < p.jitter < 1
    assert SESSION_POLICY.patience is None


class _Flaky:
    def __init__(self, *errors: BaseException, result: Any = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def test_run_retries_what_may_pass_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    busy = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    fn, slept, resets = _Flaky(lost, busy), list[float](), list[int]()
    policy = ReconnectPolicy(initial=0.5, jitter=0, attempts=3)
    with caplog.at_level(logging.WARNING, logger="obsync.connectors.mysql.failures"):
        assert policy.run(fn, "snapshot chunk db.t/0001", reset=lambda: resets.append(1), sleep=slept.append) == "ok"
    assert fn.calls == 3 and slept == [0.5, 1] and len(resets) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "snapshot chunk db.t/0001: Lost connection to MySQL server during query; reconnecting in 0.5s",
        "snapshot chunk db.t/0001: Lock wait timeout exceeded; retrying in 1.0s",
    ]


def test_run_raises_a_fatal_error_at_once_and_the_last_one_when_the_budget_is_spent() -> None:
    denied = pymysql.err.OperationalError(1045, "Access denied")
    fn, slept = _Flaky(denied), list[float]()
    with pytest.raises(pymysql.err.OperationalError) as info:
        SNAPSHOT_POLICY.run(fn, "x", sleep=slept.append)
    assert info.value is denied and fn.calls == 1 and slept == []

    errors = [pymysql.err.OperationalError(2013, f"lost {i}") for i in range(5)]
    fn, slept, resets = _Flaky(*errors), list[float](), list[int]()
    told: list[tuple[BaseException, float]] = []
    with pytest.raises(pymysql.err.OperationalError) as info:
        ReconnectPolicy(initial=0.5, attempts=3).run(fn, "x", reset=lambda: resets.append(1), sleep=slept.append,
                                                     on_retry=lambda e, wait: told.append((e, wait)))
    assert info.value is errors[2] and fn.calls == 3 and len(slept) == 2 and len(resets) == 3
    assert told == [(errors[0], slept[0]), (errors[1], slept[1])]

    fn = _Flaky(ValueError("a bug"))
    with pytest.raises(ValueError):
        LOG_POLICY.run(fn, "x", sleep=slept.append)
    assert fn.calls == 1

    # A statement the server keeps failing is not an outage: `transient_attempts` tries, whatever the patience
    busy = [pymysql.err.OperationalError(1205, f"Lock wait timeout exceeded {i}") for i in range(5)]
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    fn, slept = _Flaky(busy[0], lost, lost, busy[1], busy[2], busy[3]), list[float]()
    with pytest.raises(pymysql.err.OperationalError) as info:
        ReconnectPolicy(patience=None, transient_attempts=3).run(fn, "x", sleep=slept.append)
    assert info.value is busy[2] and fn.calls == 5 and len(slept) == 4  # lost connections do not count


def test_a_stop_ends_a_retrys_wait_at_once_naming_what_was_waited_for() -> None:
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    asked: list[int] = []

    def stopping() -> bool:  # the stop comes while the first wait (30 s) lasts
        asked.append(1)
        return len(asked) > 2

    fn = _Flaky(lost, lost, result="never")
    what = "snapshot chunk db.t/0001: waiting for the source 10.0.0.1:3306"
    with pytest.raises(StopWhileWaiting) as info:
        ReconnectPolicy(initial=30, jitter=0, patience=None).run(fn, what, sleep=stoppable_sleep(stopping, what))
    assert fn.calls == 1 and len(asked) == 3  # two slices of STOP_SLICE s, not 30 s
    assert str(info.value) == (f"stopped while {what}; the next start resumes from the last saved point")

    slept = stoppable_sleep(lambda: False, what)
    assert slept(0.0) is None  # no stop: the wait runs out and the call is tried again


def test_run_passes_the_callers_default_for_unknown_codes() -> None:
    odd = pymysql.err.OperationalError(1267, "Illegal mix of collations")
    with pytest.raises(pymysql.err.OperationalError):
        SESSION_POLICY.run(_Flaky(odd), "x", sleep=lambda s: None)
    fn = _Flaky(odd, result=1)
    assert SESSION_POLICY.run(fn, "x", unknown=Failure.CONNECTION_LOST, sleep=lambda s: None) == 1
    assert fn.calls == 2


# ---- the replication stream -----------------------------------------------------------------------------

def test_the_stream_connection_raises_stream_lost_where_mysql_replication_would_reconnect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    conn = stream_module._StreamConnection(defer_connect=True)
    raised: list[BaseException] = []

    def read(self: Any, packet_type: Any = None) -> Any:
        raise raised[-1]

    monkeypatch.setattr(pymysql.connections.Connection, "_read_packet", read)
    for code in (2006, 2013):
        raised.append(pymysql.err.OperationalError(code, "Lost connection to MySQL server during query"))
        with pytest.raises(StreamLost, match="^Lost connection to MySQL server during query$"):
            conn._read_packet()
    raised.append(pymysql.err.OperationalError(1236, "Could not find first log file name in binary log index"))
    with pytest.raises(pymysql.err.OperationalError):
        conn._read_packet()


def test_the_one_place_that_opens_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    def reader(**kw: Any) -> dict[str, Any]:
        made.append(kw)
        return kw

    monkeypatch.setattr(stream_module, "BinLogStreamReader", reader)
    log_ep = Endpoint("binlog.example", 2883, "cdc", "pw", connect_timeout=7, read_timeout=6)
    sql_ep = Endpoint("sql.example", 2881, "cdc", "pw", connect_timeout=5)
    stream_module.open_stream(log_ep, sql_ep, server_id=9, file="mysql-bin.000002", pos=154, events=[int],
                              blocking=True, heartbeat=2.0, only_schemas=["shop"], only_tables=["items"])
    stream_module.open_stream(log_ep, sql_ep, server_id=9, file="mysql-bin.000001", pos=4, events=[int],
                              blocking=False, only_tables=[])
    blocking, scan = made
    assert blocking["connection_settings"] == {"host": "binlog.example", "port": 2883, "user": "cdc",
                                               "password": "pw", "connect_timeout": 7, "read_timeout": 6,
                                               "write_timeout": 60}
    assert blocking["ctl_connection_settings"] == {"host": "sql.example", "port": 2881, "user": "cdc",
                                                   "password": "pw", "connect_timeout": 5, "read_timeout": 60,
                                                   "write_timeout": 60}
    assert (blocking["log_file"], blocking["log_pos"], blocking["server_id"]) == ("mysql-bin.000002", 154, 9)
    assert blocking["blocking"] is True and blocking["slave_heartbeat"] == 1.5  # a quarter of the read timeout
    assert (blocking["only_schemas"], blocking["only_tables"]) == (["shop"], ["items"])
    assert scan["connection_settings"]["read_timeout"] == 6 and scan["blocking"] is False
    assert (scan["only_schemas"], scan["only_tables"], scan["slave_heartbeat"]) == (None, [], None)
    for kw in made:  # never logs its settings; hands out every event type; resumes where asked
        assert kw["enable_logging"] is False and kw["filter_non_implemented_events"] is False
        assert kw["resume_stream"] is True and kw["pymysql_wrapper"] is stream_module._StreamConnection
        assert kw["only_events"] == [int]


def test_an_idle_stream_gets_heartbeats_well_within_its_read_timeout() -> None:
    assert stream_module.stream_heartbeat(1.0, 60.0) == 1.0  # as asked
    assert stream_module.stream_heartbeat(1.0, 2.0) == 0.5  # a quarter of the read timeout at most
    assert stream_module.stream_heartbeat(30.0, 60.0) == 15.0

"""An outage of the log's source (`obsync.connectors.mysql.binlog.outage`): each failure is logged with what the
reader waits for, a lost source is told to the listener until it answers, and patience ends it with an error
that says where a new start resumes. (Against real servers: tests/integration/test_source_outages.py.)"""

from __future__ import annotations

import logging

import pymysql
import pytest

from obsync.connectors.mysql.binlog.outage import Outage
from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import ReconnectPolicy, StreamLost
from obsync.core.errors import SourceUnavailable
from obsync.core.positions import LogPosition

EP = Endpoint("db.example", 3306, "cdc", "pw-never-shown-81")
AT = LogPosition("mysql-bin.000007", 1234)


class Told:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def source_waiting(self, reader: str, source: str, error: str | None) -> None:
        self.calls.append((reader, source, error))


def test_a_lost_source_is_logged_and_shown_until_it_answers(caplog: pytest.LogCaptureFixture) -> None:
    told = Told()
    outage = Outage(ReconnectPolicy(initial=0.5, jitter=0, patience=None), EP, told)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="obsync.connectors.mysql.binlog.outage"):
        assert outage.failed(StreamLost("Lost connection to MySQL server during query (timed out)"), AT) == 0.5
        assert outage.failed(pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), AT) == 1.0
    assert outage.lasting
    assert told.calls == [("log", "db.example:3306", "Lost connection to MySQL server during query (timed out)"),
                          ("log", "db.example:3306", "Can't connect to MySQL server")]
    first = caplog.records[0].getMessage()
    assert first.startswith("log: waiting for the source db.example:3306 (Lost connection to MySQL server during "
                            "query (timed out)); reconnecting in 0.5 s, resuming at mysql-bin.000007:1234"), first
    assert first.endswith("forever)"), first
    outage.over()
    assert not outage.lasting and told.calls[-1] == ("log", "db.example:3306", None)
    outage.over()  # told once
    assert len(told.calls) == 3
    # a new outage backs off afresh
    assert outage.failed(StreamLost("the server ended the binlog stream"), AT) == 0.5


def test_a_statement_that_failed_is_retried_without_calling_the_source_away() -> None:
    told = Told()
    outage = Outage(ReconnectPolicy(initial=0.5, jitter=0), EP, told)  # type: ignore[arg-type]
    outage.failed(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), AT)
    outage.over()
    assert told.calls == []


def test_patience_spent_ends_with_an_error_naming_source_wait_error_and_resume_point() -> None:
    told = Told()
    outage = Outage(ReconnectPolicy(initial=0.5, jitter=0, patience=0.7), EP, told)  # type: ignore[arg-type]
    outage.failed(StreamLost("Lost connection to MySQL server during query (timed out)"), AT)  # waits 0.5 s
    with pytest.raises(SourceUnavailable) as info:  # a 1 s wait would end past 0.7 s
        outage.failed(pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db.example'"), AT)
    msg = str(info.value)
    assert msg.startswith("the log could not be read from the source db.example:3306 for 0 s, longer than "
                          "source.patience (0.7 s) allows; last error: Can't connect to MySQL server on "
                          "'db.example'. Reading the log stopped at mysql-bin.000007:1234; start the task again "
                          "once the source is back: it resumes there, and nothing is lost"), msg
    assert "pw-never-shown-81" not in msg
    assert told.calls[-1] == ("log", "db.example:3306", None) and not outage.lasting  # over: it gave up


def test_before_the_start_is_known_the_error_says_so() -> None:
    outage = Outage(ReconnectPolicy(patience=0), EP, Told())  # type: ignore[arg-type]
    with pytest.raises(SourceUnavailable, match="stopped at the start position \\(fixed when the source first "
                                                "answers\\)"):
        outage.failed(pymysql.err.OperationalError(2003, "Can't connect"), None)

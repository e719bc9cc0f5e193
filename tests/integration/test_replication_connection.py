"""The replication connection (`stream._StreamConnection`) reads through a `ReadAhead` once connected and answers
as pymysql answers over its own socket file: a real MariaDB, queries whose results span many packets, an error
packet, a peer that goes away."""

from __future__ import annotations

import pymysql
import pytest
from pymysqlreplication.binlogstream import MYSQL_EXPECTED_ERROR_CODES

from obsync.connectors.mysql.binlog.read_ahead import ReadAhead
from obsync.connectors.mysql.binlog.stream import _StreamConnection
from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import StreamLost


def connect(server) -> _StreamConnection:
    return _StreamConnection(**Endpoint(server.host, server.port, server.user, server.password).pymysql_kwargs())


def test_queries_read_through_the_read_ahead_give_what_pymysql_gives(mariadb) -> None:
    conn = connect(mariadb)
    plain = pymysql.connect(**Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password).pymysql_kwargs())
    try:
        assert type(conn._rfile) is ReadAhead
        query = "SELECT seq, REPEAT('x', seq), seq * 1.5 FROM mysql.seq_1_to_3000"
        with conn.cursor() as ours, plain.cursor() as theirs:
            ours.execute(query)
            theirs.execute(query)
            rows = ours.fetchall()
            assert rows == theirs.fetchall()
            assert len(rows) == 3000 and rows[-1][:2] == (3000, "x" * 3000)
            with pytest.raises(pymysql.err.ProgrammingError, match="no_such_table"):
                ours.execute("SELECT * FROM no_such_db.no_such_table")
            ours.execute("SELECT 1")
            assert ours.fetchall() == ((1,),)
    finally:
        conn.close()
        plain.close()


def killed(server, conn: pymysql.connections.Connection) -> BaseException:
    """What a query on `conn` raises once the server killed it."""
    with conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        (conn_id,), = cur.fetchall()
    with server.connect() as admin, admin.cursor() as cur:
        cur.execute(f"KILL {conn_id}")
    with pytest.raises(Exception) as e:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    return e.value


def test_a_connection_killed_by_the_server_fails_as_over_pymysqls_own_file(mariadb) -> None:
    """The server's goodbye (an error packet, then the end of the stream) read through the read-ahead: the error
    pymysql raises over its own file, or `StreamLost` where that error is a lost connection."""
    kwargs = Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password).pymysql_kwargs()
    theirs = killed(mariadb, pymysql.connect(**kwargs))
    ours = killed(mariadb, connect(mariadb))
    assert isinstance(theirs, pymysql.err.OperationalError), theirs
    if theirs.args[0] in MYSQL_EXPECTED_ERROR_CODES:
        assert isinstance(ours, StreamLost), ours
        assert str(ours) == str(theirs.args[-1])
    else:
        assert type(ours) is type(theirs) and ours.args == theirs.args


def test_replication_connections_share_the_processs_default_tls_context(mariadb) -> None:
    """Without TLS settings, each new pymysql session loads the system's CA certificates into a TLS context of its
    own (about 20 ms of CPU); the binlog stream's connections take the one the process's sessions share."""
    from obsync.connectors.mysql import connection

    a, b = connect(mariadb), connect(mariadb)
    plain = connection.connect(Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password))
    try:
        assert a.ctx is not None and a.ctx is b.ctx is plain.ctx is connection._default_tls
    finally:
        for conn in (a, b, plain):
            conn.close()

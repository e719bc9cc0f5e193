"""Source sessions (`obsync.connectors.mysql.connection.connect`) against a real MariaDB."""

from __future__ import annotations

import pymysql

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.connectors.mysql.connection import Endpoint, connect


def test_sessions_share_one_tls_context_with_pymysqls_own_settings(mariadb: MariaDBServer) -> None:
    ep = Endpoint(mariadb.host, mariadb.port, "root", "")
    own = pymysql.connect(**ep.pymysql_kwargs())  # pymysql's default: a context of its own for each session
    first = connect(ep)
    sessions = [connect(ep) for _ in range(5)]
    try:  # made once per process: pymysql's own costs about 20 ms of CPU per session (the system's CA certificates)
        assert all(s.ctx is first.ctx for s in sessions)
        assert own.ctx is not first.ctx
        settings = [(c.ctx.verify_mode, c.ctx.check_hostname, c.ctx.verify_flags, c.ctx.options, c.ctx.protocol,
                     c.ssl, c._ssl_required) for c in (own, first)]
        assert settings[0] == settings[1]
        for s in sessions:
            with s.cursor() as cur:
                cur.execute("SELECT @@session.time_zone")
                assert cur.fetchall() == (("+00:00",),)
    finally:
        for s in (own, first, *sessions):
            s.close()

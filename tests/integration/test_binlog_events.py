"""The lean event parse (`binlog.events`) against mysql-replication's own, on a real MariaDB.

The same binlog range is read twice, by the library alone (`fetchone()`) and through `LeanStream`, with
binlog checksums on and off, with and without the table filters the reader sets: both give the same events
(positions, sizes, timestamps, server ids, GTIDs, table ids and names, row images and bitmaps, queries,
XIDs, rotations). Every event the lean parse handled is also parsed again by the library from the same packet
and compared, heartbeats included. The workload: single-row transactions, a multi-statement transaction on
three tables (one untracked, one MyISAM: its statements end with a COMMIT query), updates and deletes of
several rows, DDL, FLUSH LOGS.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.connectors.mysql.binlog import current_log_position
from obsync.connectors.mysql.binlog.events import (
    DELETE,
    LEAN_TYPES,
    UPDATE,
    WRITE,
    Gtid,
    Heartbeat,
    LeanStream,
    Query,
    Rotate,
    Rows,
    TableMap,
    Xid,
)
from obsync.connectors.mysql.binlog.session import EVENTS
from obsync.connectors.mysql.binlog.stream import open_stream
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.core.positions import LogPosition

_server_ids = itertools.count(9700)
_LIB_OPS = {WriteRowsEvent: WRITE, UpdateRowsEvent: UPDATE, DeleteRowsEvent: DELETE}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A MariaDB of its own: the test changes its binlog_checksum."""
    with MariaDBServer(tmp_path_factory.mktemp("mariadb_events"), row_metadata="FULL") as s:
        yield s


def _workload(ep: Endpoint, db: str) -> None:
    conn = connect(ep, autocommit=True)
    with conn.cursor() as cur:
        for s in (
            f"CREATE DATABASE {db} CHARACTER SET utf8mb4",
            f"CREATE TABLE {db}.t (id INT PRIMARY KEY, a VARCHAR(40), b DECIMAL(8,2), c DATETIME(3))",
            f"CREATE TABLE {db}.m (id INT PRIMARY KEY, a VARCHAR(40)) ENGINE=MyISAM",
            f"CREATE TABLE {db}.other (id INT PRIMARY KEY, a TEXT)",
            *(f"INSERT INTO {db}.t VALUES ({i}, 'x{i}', {i}.25, '2024-01-02 03:04:05.{i:03d}')" for i in range(5)),
            "BEGIN",
            f"INSERT INTO {db}.t VALUES (10, 'multi', 1.5, NULL), (11, 'ünï', -2.75, NULL)",
            f"UPDATE {db}.t SET a = CONCAT(a, '!') WHERE id < 3",
            f"INSERT INTO {db}.other VALUES (1, REPEAT('z', 300))",
            f"DELETE FROM {db}.t WHERE id = 4",
            "COMMIT",
            f"INSERT INTO {db}.m VALUES (1, 'myisam'), (2, 'myisam too')",
            f"UPDATE {db}.m SET a = 'changed' WHERE id = 1",
            f"INSERT INTO {db}.other VALUES (2, 'untracked')",
            f"ALTER TABLE {db}.t ADD COLUMN d INT NOT NULL DEFAULT 7",
            f"INSERT INTO {db}.t VALUES (20, 'after ddl', 0, NULL, 8)",
            "FLUSH LOGS",
            f"INSERT INTO {db}.t VALUES (21, 'after rotate', 0, NULL, 9)",
            f"UPDATE {db}.t SET b = b + 1",
            f"DELETE FROM {db}.t WHERE id >= 10",
        ):
            cur.execute(s)
    conn.close()


def _library_form(ev: Any) -> tuple:
    """An event as the library parsed it, in a form comparable with `_lean_form`."""
    pkt = ev.packet
    head = (pkt.log_pos, pkt.event_size, ev.timestamp, pkt.server_id)
    cls = type(ev)
    if cls in _LIB_OPS:
        raw = pkt.packet
        start = raw._position
        stop = start + ev.event_size - pkt.read_bytes
        return ("rows", *head, _LIB_OPS[cls], ev.table_id, raw._data[start:stop], bytes(ev.columns_present_bitmap),
                bytes(getattr(ev, "columns_present_bitmap2", b"")))
    if cls is TableMapEvent:
        return ("table_map", *head, ev.table_id, ev.schema, ev.table)
    if cls is XidEvent:
        return ("xid", *head, ev.xid)
    if cls is GtidEvent or cls is MariadbGtidEvent:
        return ("gtid", *head, ev.gtid)
    if cls is NotImplementedEvent and pkt.event_type == BINLOG.ANONYMOUS_GTID_LOG_EVENT:
        return ("gtid", *head, None)
    if cls is QueryEvent:
        return ("query", *head, bytes(ev.schema), ev.query)
    if cls is RotateEvent:
        return ("rotate", *head, ev.next_binlog, ev.position)
    if cls is HeartbeatLogEvent:
        return ("heartbeat", *head, ev.ident)
    return (cls.__name__, *head)


def _lean_form(ev: Any) -> tuple:
    """A lean event in the form of `_library_form`."""
    head = (ev.log_pos, ev.event_size, ev.timestamp, ev.server_id)
    cls = type(ev)
    if cls is Rows:
        start, stop, bitmap, bitmap2 = ev.span()
        return ("rows", *head, ev.op, ev.table_id, ev.packet._data[start:stop], bytes(bitmap), bytes(bitmap2 or b""))
    if cls is TableMap:
        return ("table_map", *head, ev.table_id, ev.schema, ev.table)
    if cls is Xid:
        return ("xid", *head, ev.xid)
    if cls is Gtid:
        return ("gtid", *head, ev.gtid)
    if cls is Query:
        return ("query", *head, ev.schema, ev.query)
    if cls is Rotate:
        return ("rotate", *head, ev.next_binlog, ev.position)
    assert cls is Heartbeat
    return ("heartbeat", *head, ev.ident)


def _read(ep: Endpoint, start: LogPosition, stop: LogPosition, lean: bool, filtered: tuple | None,
          checksum: bool = True) -> tuple[list[tuple], Counter[str]]:
    """The events from `start` to `stop` (heartbeats left out), and what the lean parse handled; on the lean
    stream, every lean event is compared with the library's parse of its packet, and reading goes on until a
    heartbeat was compared too."""
    stream = open_stream(ep, ep, server_id=next(_server_ids), file=start.file, pos=start.pos, events=EVENTS,
                         blocking=True, heartbeat=0.2, only_schemas=filtered[0] if filtered else None,
                         only_tables=filtered[1] if filtered else None)
    reader = LeanStream(stream)
    assert reader.enabled
    out: list[tuple] = []
    handled: Counter[str] = Counter()
    file = start.file
    done = False
    try:
        while True:
            ev = reader.next() if lean else stream.fetchone()
            assert ev is not None
            assert stream.__dict__["_BinLogStreamReader__use_checksum"] is checksum
            if type(ev) in LEAN_TYPES:
                form = _lean_form(ev)
                again = reader.library(ev.packet)  # the library's parse of the same packet
                assert again is not None, form
                assert _library_form(again) == form
                if not done or form[0] == "heartbeat":
                    handled[form[0] if form[0] != "query" else ev.query] += 1
            else:
                form = _library_form(ev)
            if form[0] == "heartbeat":
                if done:
                    return out, handled
                continue
            if not done:
                out.append(form)
                if file == stop.file and form[1] >= stop.pos:
                    done = True
                    if not lean:
                        return out, handled
            if form[0] == "rotate":
                file = form[-2]
    finally:
        stream.close()


@pytest.mark.parametrize("checksum", ["CRC32", "NONE"])
def test_lean_parse_matches_library(server: MariaDBServer, checksum: str) -> None:
    ep = Endpoint(server.host, server.port, server.user, server.password)
    db = f"ev_{checksum.lower()}"
    conn = connect(ep, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL binlog_checksum = {checksum}")  # rotates the log
            cur.execute("SELECT @@global.binlog_checksum")
            assert cur.fetchone()[0] == checksum
        start = current_log_position(ep)
        _workload(ep, db)
        stop = current_log_position(ep)
        for filtered in (None, ([db], ["t", "m"])):
            library, _ = _read(ep, start, stop, lean=False, filtered=filtered, checksum=checksum == "CRC32")
            lean, handled = _read(ep, start, stop, lean=True, filtered=filtered, checksum=checksum == "CRC32")
            assert lean == library
            kinds = {f[0] for f in library}
            assert {"rows", "table_map", "xid", "gtid", "query", "rotate"} <= kinds
            # the lean parse took the frequent events (the query events it leaves to the library are DDL)
            assert handled["rows"] == sum(1 for f in library if f[0] == "rows")
            assert handled["table_map"] == sum(1 for f in library if f[0] == "table_map")
            assert handled["xid"] == sum(1 for f in library if f[0] == "xid") > 0
            assert handled["gtid"] == sum(1 for f in library if f[0] == "gtid") > 0
            assert handled["COMMIT"] == sum(1 for f in library if f[0] == "query" and f[-1] == "COMMIT") > 0
            assert handled["rotate"] >= 1 and handled["heartbeat"] == 1
            if filtered:
                assert {f[-1] for f in library if f[0] == "table_map"} <= {"t", "m"}
            else:
                assert "other" in {f[-1] for f in library if f[0] == "table_map"}
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL binlog_checksum = CRC32")
        conn.close()


def test_large_rows_event_spans_packets(server: MariaDBServer) -> None:
    """A rows event larger than a protocol packet (16 MiB) is parsed lean from the joined packets."""
    ep = Endpoint(server.host, server.port, server.user, server.password)
    conn = connect(ep, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    conn.close()
    conn = connect(ep, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE ev_big")
        cur.execute("CREATE TABLE ev_big.t (id INT PRIMARY KEY, a LONGBLOB)")
        start = current_log_position(ep)
        cur.execute("INSERT INTO ev_big.t VALUES (1, REPEAT('q', 20 * 1024 * 1024))")
        stop = current_log_position(ep)
    conn.close()
    library, _ = _read(ep, start, stop, lean=False, filtered=None)
    lean, handled = _read(ep, start, stop, lean=True, filtered=None)
    assert lean == library
    assert handled["rows"] == 1
    rows = [f for f in library if f[0] == "rows"]
    assert len(rows[0][7]) > 20 * 1024 * 1024

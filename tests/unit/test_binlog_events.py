"""The lean event parse (`binlog.events`) against mysql-replication's, on MySQL-format events built byte by byte.

The suite has no MySQL server (MariaDB, tested for real in tests/integration/test_binlog_events.py, writes
v1 rows events, its own GTID events and no BEGIN query): here MySQL's GTID and anonymous GTID events, BEGIN
with status variables, v2 rows events (with and without partition extra data), XID, ROTATE and HEARTBEAT are
written as a server sends them, with and without checksums, and each is parsed by `LeanStream` and again by
the library from the same packet; a DDL query goes to the library.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from obsync.connectors.mysql.binlog.events import (
    DELETE,
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
from obsync.connectors.mysql.binlog.reader import BinlogReader
from obsync.connectors.mysql.binlog.schema_history import SchemaHistory
from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker
from obsync.connectors.mysql.binlog.session import EVENTS, Session
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.changes import Op
from obsync.core.errors import SourceError
from obsync.core.offsets import LogOffset
from obsync.core.positions import LogPosition
from obsync.sql import ddl as D

SID = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")
_P = "_BinLogStreamReader__"


class Wire:
    """The replication connection: hands out the packets given, then the end of the stream."""

    def __init__(self, packets: list[MysqlPacket]) -> None:
        self.packets = packets

    def _read_packet(self) -> MysqlPacket:
        return self.packets.pop(0) if self.packets else MysqlPacket(b"\xfe\x00\x00\x02\x00", "utf8")

    def close(self) -> None:
        pass


class Control:
    """The control connection, as far as parsing these events asks for it."""

    charset = "utf8mb4"

    def _get_dbms(self) -> str:
        return "mysql"

    def close(self) -> None:
        pass


def packet(etype: int, body: bytes, pos: int, checksum: bool, ts: int = 1_700_000_000) -> MysqlPacket:
    size = 19 + len(body) + (4 if checksum else 0)
    head = struct.pack("<IBIIIH", ts, etype, 7, size, pos, 0)
    return MysqlPacket(b"\x00" + head + body + (b"\x11\x22\x33\x44" if checksum else b""), "utf8")


def query(text: bytes, schema: bytes = b"shop") -> bytes:
    status = b"\x00" + struct.pack("<I", 0) + b"\x01" + struct.pack("<Q", 0) + b"\x04" + struct.pack("<HHH", 33, 33, 8)
    return struct.pack("<IIBHH", 5, 0, len(schema), 0, len(status)) + status + schema + b"\x00" + text


def rows(table_id: int, extra: bytes, bitmaps: int, images: bytes) -> bytes:
    return (table_id.to_bytes(6, "little") + struct.pack("<HH", 1, 2 + len(extra)) + extra + b"\x02"
            + b"\x03" * bitmaps + images)


def image(a: int, b: int | None) -> bytes:
    return (b"\x02" if b is None else b"\x00") + struct.pack("<i", a) + (b"" if b is None else struct.pack("<i", b))


# the table map of shop.t (id INT NOT NULL, n INT), table id 42
TABLE_MAP = (42).to_bytes(6, "little") + b"\x01\x00\x04shop\x00\x01t\x00\x02" + bytes([3, 3]) + b"\x00\x02"


def events(checksum: bool) -> list[MysqlPacket]:
    tm = TABLE_MAP
    bodies = [
        (BINLOG.GTID_LOG_EVENT, b"\x01" + SID.bytes + struct.pack("<Q", 12345) + b"\x02" + struct.pack("<QQ", 3, 4)),
        (BINLOG.QUERY_EVENT, query(b"BEGIN")),
        (BINLOG.TABLE_MAP_EVENT, tm),
        (BINLOG.WRITE_ROWS_EVENT_V2, rows(42, b"", 1, image(1, 10) + image(2, None))),
        (BINLOG.WRITE_ROWS_EVENT_V2, rows(42, b"\x01\x05\x00", 1, image(3, 30))),  # partition extra data
        (BINLOG.UPDATE_ROWS_EVENT_V2, rows(42, b"", 2, image(1, 10) + image(1, 11))),
        (BINLOG.UPDATE_ROWS_EVENT_V2, rows(42, b"\x01\x05\x00\x06\x00", 2, image(3, 30) + image(3, 31))),
        (BINLOG.DELETE_ROWS_EVENT_V2, rows(42, b"", 1, image(2, None))),
        (BINLOG.WRITE_ROWS_EVENT_V2, rows(43, b"", 1, image(9, 9))),  # no table map: dropped
        (BINLOG.XID_EVENT, struct.pack("<Q", 987654321)),
        (BINLOG.ANONYMOUS_GTID_LOG_EVENT, b"\x01" + bytes(16) + struct.pack("<Q", 0) + b"\x02" + bytes(16)),
        (BINLOG.QUERY_EVENT, query(b"ALTER TABLE t ADD COLUMN c INT")),
        (BINLOG.QUERY_EVENT, query(b"COMMIT", b"")),
        (BINLOG.HEARTBEAT_LOG_EVENT, b"binlog.000007"),
        (BINLOG.ROTATE_EVENT, struct.pack("<Q", 4) + b"binlog.000008"),
    ]
    out, pos = [], 4
    for etype, body in bodies:
        pos += 19 + len(body) + (4 if checksum else 0)
        out.append(packet(etype, body, pos, checksum))
    return out


def stream(packets: list[MysqlPacket], checksum: bool, **kw: Any) -> BinLogStreamReader:
    s = BinLogStreamReader(connection_settings={}, server_id=99, only_events=EVENTS,
                           filter_non_implemented_events=False, **kw)
    s.__dict__.update({_P + "connected_stream": True, _P + "connected_ctl": True, _P + "use_checksum": checksum})
    s._stream_connection = Wire(packets)
    s._ctl_connection = Control()
    return s


def _same(lean: Any, lib: Any) -> None:
    """The lean event says what the library's parse of its packet says."""
    pkt = lib.packet
    assert (lean.log_pos, lean.event_size, lean.timestamp, lean.server_id) == (
        pkt.log_pos, pkt.event_size, lib.timestamp, pkt.server_id)
    cls = type(lean)
    if cls is Rows:
        ops = {WriteRowsEvent: WRITE, UpdateRowsEvent: UPDATE, DeleteRowsEvent: DELETE}
        assert (lean.op, lean.table_id) == (ops[type(lib)], lib.table_id)
        raw = pkt.packet
        start, stop, bitmap, bitmap2 = lean.span()
        assert (start, stop) == (raw._position, raw._position + lib.event_size - pkt.read_bytes)
        assert bitmap == lib.columns_present_bitmap
        assert bitmap2 == getattr(lib, "columns_present_bitmap2", None)
    elif cls is TableMap:
        assert type(lib) is TableMapEvent
        assert (lean.table_id, lean.schema, lean.table) == (lib.table_id, lib.schema, lib.table)
    elif cls is Xid:
        assert type(lib) is XidEvent and lean.xid == lib.xid == 987654321
    elif cls is Gtid and lean.gtid is None:
        assert type(lib) is NotImplementedEvent and pkt.event_type == BINLOG.ANONYMOUS_GTID_LOG_EVENT
    elif cls is Gtid:
        assert type(lib) is GtidEvent and lean.gtid == lib.gtid == f"{SID}:12345"
    elif cls is Query:
        assert type(lib) is QueryEvent and (lean.schema, lean.query) == (lib.schema, lib.query)
    elif cls is Rotate:
        assert type(lib) is RotateEvent and (lean.next_binlog, lean.position) == (lib.next_binlog, lib.position)
    else:
        assert cls is Heartbeat and type(lib) is HeartbeatLogEvent and lean.ident == lib.ident == "binlog.000007"


@pytest.mark.parametrize("checksum", [True, False])
def test_mysql_events_parse_as_the_library_parses_them(checksum: bool) -> None:
    s = stream(events(checksum), checksum)
    reader = LeanStream(s)
    assert reader.enabled
    seen: list[str] = []
    while (ev := reader.next()) is not None:
        if isinstance(ev, (Rows, TableMap, Xid, Gtid, Query, Rotate, Heartbeat)):
            _same(ev, reader.library(ev.packet))
            seen.append(type(ev).__name__ + (f" {ev.query}" if type(ev) is Query else ""))
        else:
            assert type(ev) is QueryEvent and ev.query.startswith("ALTER")  # left to the library
            seen.append("library " + ev.query)
    assert seen == ["Gtid", "Query BEGIN", "TableMap", "Rows", "Rows", "Rows", "Rows", "Rows", "Xid", "Gtid",
                    "library ALTER TABLE t ADD COLUMN c INT", "Query COMMIT", "Heartbeat", "Rotate"]
    assert s.log_pos == 4 and s.log_file == "binlog.000008" and s.table_map == {}  # the library's bookkeeping


def test_filtered_table_map_and_its_rows_are_dropped() -> None:
    s = stream(events(True), True, only_tables=["other"])
    reader = LeanStream(s)
    kinds = []
    while (ev := reader.next()) is not None:
        kinds.append(type(ev).__name__)
    assert "TableMap" not in kinds and "Rows" not in kinds
    assert kinds[:3] == ["Gtid", "Query", "Xid"]


def test_options_it_does_not_mirror_leave_every_event_to_the_library() -> None:
    s = stream(events(True), True, freeze_schema=True)
    reader = LeanStream(s)
    assert not reader.enabled
    assert type(reader.next()) is GtidEvent


class _Catalog:
    """The source catalog of a session over these events: shop.t (id INT PRIMARY KEY, n INT)."""

    dialect = "mysql"

    def __init__(self) -> None:
        st = D.parse_ddl("CREATE TABLE t (id INT PRIMARY KEY, n INT)", "shop")
        assert isinstance(st, D.CreateTable)
        self.tdef = D.create_table_def(st, "utf8mb4")

    def load(self, name: tuple[str, str]) -> D.TableDef | None:
        return self.tdef if name == ("shop", "t") else None

    def db_charset(self, db: str) -> str:
        return "utf8mb4"

    def forget_db(self, db: str) -> None:
        pass


def _session_output(lean: bool, checksum: bool) -> tuple[list[tuple], dict]:
    reader = BinlogReader(Endpoint("127.0.0.1", 1, "u", "p"), server_id=5, tables=[("shop", "t")],
                          history_dir=None, batch_size=3, max_batches=1000)
    tracker = SchemaTracker(reader.tables, SchemaHistory(None), _Catalog())  # type: ignore[arg-type]  # the methods used
    start = LogPosition("binlog.000007", 4)
    tracker.start(start)
    session = Session(reader, tracker, LogOffset(start.file, start.pos))
    s = stream(events(checksum), checksum, freeze_schema=not lean)  # freeze_schema: the library parses all
    assert LeanStream(s).enabled is lean
    session.stream_from(s)
    session.flush(force=True)
    changes = []
    state = None
    while not reader._queue.empty():
        batch = reader._queue.get_nowait()
        changes += [(c.op, c.position, c.before, c.after, c.commit_time, c.txn, c.server_id, c.ddl)
                    for c in batch.changes]
        state = batch.state.to_dict()
    assert state is not None
    return changes, state


@pytest.mark.parametrize("checksum", [True, False])
def test_session_gives_the_same_changes_and_state_through_the_lean_parse(checksum: bool) -> None:
    changes, state = _session_output(True, checksum)
    assert (changes, state) == _session_output(False, checksum)
    assert [(c[0], c[2], c[3]) for c in changes] == [
        (Op.INSERT, None, {"id": 1, "n": 10}), (Op.INSERT, None, {"id": 2, "n": None}),
        (Op.INSERT, None, {"id": 3, "n": 30}), (Op.UPDATE, {"id": 1, "n": 10}, {"id": 1, "n": 11}),
        (Op.UPDATE, {"id": 3, "n": 30}, {"id": 3, "n": 31}), (Op.DELETE, {"id": 2, "n": None}, None),
        (Op.DDL, None, None)]
    assert {c[5] for c in changes[:6]} == {f"{SID}:12345"}
    assert state["file"] == "binlog.000008" and state["pos"] == 4


@pytest.mark.parametrize("lean", [True, False])
def test_partial_json_update_stops_the_session_as_through_the_library(lean: bool) -> None:
    # a table map, a rotation (the library forgets its table maps), the same table map again (the lean parse
    # reuses its decoder, the library does not see it), a partial update of a table never mapped, then of 42
    update = rows(42, b"", 2, image(1, 10) + b"\x00" + image(1, 11))
    packets = [packet(BINLOG.TABLE_MAP_EVENT, TABLE_MAP, 100, True),
               packet(BINLOG.ROTATE_EVENT, struct.pack("<Q", 4) + b"binlog.000008", 200, True),
               packet(BINLOG.TABLE_MAP_EVENT, TABLE_MAP, 300, True),
               packet(BINLOG.PARTIAL_UPDATE_ROWS_EVENT, update.replace(b"\x2a\x00", b"\x2b\x00", 1), 400, True),
               packet(BINLOG.PARTIAL_UPDATE_ROWS_EVENT, update, 9000, True)]
    reader = BinlogReader(Endpoint("127.0.0.1", 1, "u", "p"), server_id=5, tables=[("shop", "t")],
                          history_dir=None)
    tracker = SchemaTracker(reader.tables, SchemaHistory(None), _Catalog())  # type: ignore[arg-type]  # the methods used
    tracker.start(LogPosition("binlog.000007", 4))
    session = Session(reader, tracker, LogOffset("binlog.000007", 4))
    with pytest.raises(SourceError, match="binlog event at binlog.000008:9000 is a partial JSON update"):
        session.stream_from(stream(packets, True, freeze_schema=not lean))

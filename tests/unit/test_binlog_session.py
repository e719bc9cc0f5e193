"""The reader's event handling for a MySQL / OceanBase Binlog Service stream (GTID `uuid:n`, BEGIN, XID), with
fake events: the suite has no MySQL server, and MariaDB (tested for real) writes transactions differently."""

from __future__ import annotations

import struct
import uuid
from types import SimpleNamespace
from typing import Any

from pymysqlreplication.constants import BINLOG
from pymysqlreplication.constants import FIELD_TYPE as FT
from pymysqlreplication.event import GtidEvent, NotImplementedEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import TableMapEvent, WriteRowsEvent

from obsync.connectors.mysql.binlog.reader import BinlogReader
from obsync.connectors.mysql.binlog.schema_history import SchemaHistory
from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker
from obsync.connectors.mysql.binlog.session import QueuedBatch, Session
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.changes import Op
from obsync.core.offsets import LogOffset
from obsync.core.positions import LogPosition
from obsync.sql import ddl as D

SID = uuid.UUID("3e11fa47-71ca-11e1-9e33-c80aa9429562")


class FakeCatalog:
    def __init__(self, tdef: D.TableDef) -> None:
        self.tdef = tdef
        self.dialect = "mysql"

    def load(self, name: tuple[str, str]) -> D.TableDef | None:
        return self.tdef if name == ("shop", "t") else None

    def db_charset(self, db: str) -> str:
        return "utf8mb4"

    def forget_db(self, db: str) -> None:
        pass


class Stream:
    """What `BinLogStreamReader.fetchone` hands out, from a list (no socket)."""

    def __init__(self, events: list[Any]) -> None:
        self.events = list(events)

    def fetchone(self) -> Any:
        return self.events.pop(0) if self.events else None


class Events:
    """Builds fake library events laid out one after another in `binlog.000007`."""

    def __init__(self) -> None:
        self.pos = 4
        self.out: list[Any] = []

    def _ev(self, cls: type, size: int, event_type: int = 0, **attrs: Any) -> Any:
        ev = object.__new__(cls)
        self.pos += size
        ev.packet = SimpleNamespace(log_pos=self.pos, event_size=size, event_type=event_type, server_id=11,
                                    read_bytes=0, packet=None)
        ev.timestamp = 1_700_000_000
        ev.__dict__.update(attrs)
        self.out.append(ev)
        return ev

    def gtid(self, gno: int) -> None:
        self._ev(GtidEvent, 65, sid=SID.bytes, gno=gno)

    def anonymous_gtid(self) -> None:
        self._ev(NotImplementedEvent, 65, event_type=BINLOG.ANONYMOUS_GTID_LOG_EVENT)

    def query(self, sql: str) -> None:
        self._ev(QueryEvent, 40 + len(sql), query=sql, schema=b"shop")

    def table_map(self) -> None:
        self._ev(TableMapEvent, 50, schema="shop", table="t", table_id=101,
                 columns=[SimpleNamespace(type=FT.LONG), SimpleNamespace(type=FT.VARCHAR, max_length=40)],
                 optional_metadata=SimpleNamespace(column_name_list=[]), null_bitmask=b"\x02")

    def insert(self, *rows: tuple[int, str]) -> None:
        data = b"".join(b"\x00" + struct.pack("<i", i) + bytes([len(v)]) + v.encode() for i, v in rows)
        ev = self._ev(WriteRowsEvent, 30 + len(data), table_id=101, columns_present_bitmap=b"\x03",
                      event_size=len(data))
        ev.packet.packet = SimpleNamespace(_data=data, _position=0)

    def xid(self) -> None:
        self._ev(XidEvent, 31, xid=1)


def session(batch_size: int = 100, skip: LogPosition | None = None) -> tuple[BinlogReader, Session]:
    st = D.parse_ddl("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))", "shop")
    assert isinstance(st, D.CreateTable)
    tdef = D.create_table_def(st, "utf8mb4")
    reader = BinlogReader(Endpoint("127.0.0.1", 1, "u", "p"), server_id=5, tables=[("shop", "t")],
                          history_dir=None, batch_size=batch_size, max_batches=1000)
    tracker = SchemaTracker(reader.tables, SchemaHistory(None), FakeCatalog(tdef))  # type: ignore[arg-type]  # a fake catalog with just the method used
    start = LogPosition("binlog.000007", 4)
    tracker.start(start)
    return reader, Session(reader, tracker, LogOffset(start.file, start.pos, skip))


def drain(reader: BinlogReader) -> list[QueuedBatch]:
    out = []
    while not reader._queue.empty():
        out.append(reader._queue.get_nowait())
    return out


def test_mysql_transactions_have_gtid_ids_and_restart_at_their_gtid_event() -> None:
    e = Events()
    e.gtid(41)
    e.query("BEGIN")
    e.table_map()
    e.insert((1, "a"), (2, "b"))
    e.table_map()
    e.insert((3, "c"))
    e.xid()
    gtid42_start = e.pos
    e.gtid(42)
    e.query("ALTER TABLE t ADD COLUMN w INT")
    e.anonymous_gtid()
    e.query("BEGIN")
    e.table_map()
    e.out[-1].columns.append(SimpleNamespace(type=FT.LONG))
    e.out[-1].null_bitmask = b"\x06"
    e.insert((4, "d"))
    e.out[-1].packet.packet = SimpleNamespace(_data=b"\x04" + struct.pack("<i", 4) + b"\x01d", _position=0)
    e.out[-1].event_size = 7
    e.out[-1].columns_present_bitmap = b"\x07"
    e.xid()
    reader, s = session(batch_size=2)
    s.stream_from(Stream(e.out))
    s.flush(force=True)
    batches = drain(reader)
    changes = [c for b in batches for c in b.changes]
    assert [(c.op, c.after, c.position.row) for c in changes] == [
        (Op.INSERT, {"id": 1, "v": "a"}, 0), (Op.INSERT, {"id": 2, "v": "b"}, 1), (Op.INSERT, {"id": 3, "v": "c"}, 0),
        (Op.DDL, None, 0), (Op.INSERT, {"id": 4, "v": "d", "w": None}, 0)]
    assert changes[0].txn == changes[2].txn == f"{SID}:41" and changes[3].txn == f"{SID}:42"
    assert changes[4].txn == f"binlog.000007:{e.out[9].packet.log_pos - 65}"  # no GTID: where it began
    assert changes[3].table.column_names == ("id", "v", "w")  # type: ignore[union-attr]  # DDL changes carry their table
    # the first batch ended inside transaction 41: its state restarts at the GTID event, after row (..., 1)
    first = batches[0]
    assert first.state.pos == 4 and first.state.last == changes[1].position
    assert all(c.server_id == 11 and c.commit_time == 1_700_000_000.0 for c in changes)
    assert any(b.state.pos == gtid42_start for b in batches)  # between transactions: after the XID
    assert batches[-1].state.pos == e.pos and not s.in_txn


def test_a_restart_inside_a_transaction_skips_what_was_handed_out() -> None:
    e = Events()
    e.gtid(7)
    e.query("BEGIN")
    e.table_map()
    e.insert((1, "a"), (2, "b"))
    e.table_map()
    e.insert((3, "c"), (4, "d"))
    e.xid()
    first_event_end = e.out[3].packet.log_pos
    reader, s = session(skip=LogPosition("binlog.000007", first_event_end, 1))
    s.stream_from(Stream(e.out))
    s.flush(force=True)
    changes = [c for b in drain(reader) for c in b.changes]
    assert [c.after["id"] for c in changes] == [3, 4]  # type: ignore[index]  # inserts have their after image


def test_the_state_carries_the_gtid_of_the_last_change_handed_out() -> None:
    e = Events()
    e.gtid(41)
    e.query("BEGIN")
    e.table_map()
    e.insert((1, "a"), (2, "b"))
    e.xid()
    e.anonymous_gtid()
    e.query("BEGIN")
    e.table_map()
    e.insert((3, "c"))
    e.xid()
    reader, s = session(batch_size=1)
    s.stream_from(Stream(e.out))
    s.flush(force=True)
    states = [b.state for b in drain(reader) if b.changes]
    assert [st.gtid for st in states] == [f"{SID}:41", f"{SID}:41", None]
    assert states[0].to_dict()["gtid"] == f"{SID}:41" and "gtid" not in states[-1].to_dict()
    assert states[1].restart_point == LogPosition("binlog.000007", 4)  # inside transaction 41: at its start

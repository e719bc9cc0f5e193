"""A lean parse of the replication stream's frequent events, from the packet's bytes.

mysql-replication builds a `BinLogPacketWrapper` and an event object for every event, reading each field
through several layers of calls: for single-row transactions (GTID, table map, rows, XID) that costs more
than decoding the rows. `LeanStream.next()` reads the packets itself and parses the events the binlog reader
handles in volume straight from the bytes (`struct.unpack_from` at fixed offsets, mirroring the library's
parse: the 19-byte header after the OK byte, the post-header lengths of the format description event, the
4-byte checksum at the end when the stream uses checksums, rows events v1 and v2 with their extra data):

    rows events (WRITE/UPDATE/DELETE v1, v2)   `Rows`: table id and where the row images lie (`span()`)
    PARTIAL_UPDATE_ROWS (MySQL)                 `Rows` (op PARTIAL): its table id, to refuse it
    TABLE_MAP                                   `TableMap`: table id, names and the body after the table id
    XID                                         `Xid`
    GTID (MySQL), anonymous GTID, MariaDB GTID  `Gtid` (`gtid` None for an anonymous one)
    QUERY BEGIN / COMMIT                        `Query`
    ROTATE, HEARTBEAT                           `Rotate`, `Heartbeat`

Every other event (and any of these the lean parse does not take: other queries, a stream set up with
options it does not mirror) is handed to the library's own `fetchone()`, which parses it as before; so is
a table map whose columns the caller needs (`full()`). Rows events of tables whose table map the library
would have dropped (filtered by `only_schemas`/`only_tables`, or not seen since a rotation) are dropped
here too, as the library drops them; the caller skips rows of untracked tables without decoding them.
"""

from __future__ import annotations

import binascii
import struct
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.binlogstream import MYSQL_EXPECTED_ERROR_CODES
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
from pymysqlreplication.exceptions import MalformedBinLogEvent
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

_HEADER = struct.Struct("<IBIIIH").unpack_from  # after the OK byte: time, type, server id, size, log_pos, flags
_U64 = struct.Struct("<Q").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U16X2 = struct.Struct("<HH").unpack_from
_MARIADB_GTID = struct.Struct("<QI").unpack_from
_BODY = 20  # the event body starts after the OK byte and the 19-byte header

WRITE, UPDATE, DELETE, PARTIAL = 1, 2, 3, 4  # PARTIAL: a partial JSON update (MySQL), which obsync cannot read
_ROWS = {BINLOG.WRITE_ROWS_EVENT_V1: (WRITE, False), BINLOG.UPDATE_ROWS_EVENT_V1: (UPDATE, False),
         BINLOG.DELETE_ROWS_EVENT_V1: (DELETE, False), BINLOG.WRITE_ROWS_EVENT_V2: (WRITE, True),
         BINLOG.UPDATE_ROWS_EVENT_V2: (UPDATE, True), BINLOG.DELETE_ROWS_EVENT_V2: (DELETE, True),
         BINLOG.PARTIAL_UPDATE_ROWS_EVENT: (PARTIAL, True)}
# the library's event class of each type the lean parse handles (handled only when the stream reads it)
_CLASSES: dict[int, type] = {
    BINLOG.WRITE_ROWS_EVENT_V1: WriteRowsEvent, BINLOG.UPDATE_ROWS_EVENT_V1: UpdateRowsEvent,
    BINLOG.DELETE_ROWS_EVENT_V1: DeleteRowsEvent, BINLOG.WRITE_ROWS_EVENT_V2: WriteRowsEvent,
    BINLOG.UPDATE_ROWS_EVENT_V2: UpdateRowsEvent, BINLOG.DELETE_ROWS_EVENT_V2: DeleteRowsEvent,
    BINLOG.PARTIAL_UPDATE_ROWS_EVENT: PartialUpdateRowsEvent, BINLOG.TABLE_MAP_EVENT: TableMapEvent,
    BINLOG.XID_EVENT: XidEvent, BINLOG.GTID_LOG_EVENT: GtidEvent, BINLOG.ANONYMOUS_GTID_LOG_EVENT: NotImplementedEvent,
    BINLOG.MARIADB_GTID_EVENT: MariadbGtidEvent, BINLOG.QUERY_EVENT: QueryEvent, BINLOG.ROTATE_EVENT: RotateEvent,
    BINLOG.HEARTBEAT_LOG_EVENT: HeartbeatLogEvent,
}
_P = "_BinLogStreamReader__"  # the stream's private attributes (mysql-replication 1.0.x)
# those read once an event, named once (a name built at each read costs a string a time)
_CONNECTED_STREAM, _CONNECTED_CTL = _P + "connected_stream", _P + "connected_ctl"
_POST_HEADER_LENGTHS, _USE_CHECKSUM = _P + "post_header_lengths", _P + "use_checksum"
_NEEDED = ("connected_stream", "connected_ctl", "use_checksum", "post_header_lengths", "allowed_events",
           "only_tables", "ignored_tables", "only_schemas", "ignored_schemas", "freeze_schema", "verify_checksum")


class Event:
    """What every lean event has: header fields (named as on the library's events and packets) and the packet."""

    __slots__ = ("timestamp", "server_id", "event_size", "log_pos", "packet")

    def __init__(self, timestamp: int, server_id: int, event_size: int, log_pos: int, packet: Any) -> None:
        self.timestamp = timestamp
        self.server_id = server_id
        self.event_size = event_size  # the whole event's, header and checksum included
        self.log_pos = log_pos  # where the next event starts
        self.packet = packet  # pymysql's MysqlPacket, unread


class Rows(Event):
    """A rows event: `op` (WRITE, UPDATE, DELETE, PARTIAL), its table id; `span()` locates the rows (not those
    of a PARTIAL update, which the library would drop too if its table map had not been parsed by it)."""

    __slots__ = ("op", "table_id", "v2", "extra", "stop")
    op: int
    table_id: int
    v2: bool  # a v2 event (extra data after the post-header)
    extra: int  # post-header bytes beyond the known ones
    stop: int  # the body's end in `packet._data` (before the checksum)

    def span(self) -> tuple[int, int, bytes, bytes | None]:
        """(offset of the first row image, offset past the last, columns-present bitmap, the after-image
        bitmap of an UPDATE) in `packet._data`."""
        data = self.packet._data
        o = _BODY + 6
        if self.v2:
            extra_len = _U16X2(data, o)[1]
            o += 4 + self.extra + (extra_len - 2 if extra_len > 2 else 0)
        else:
            o += 2 + self.extra
        c = data[o]
        if c < 251:
            n, o = c, o + 1
        elif c == 252:
            n, o = _U16(data, o + 1)[0], o + 3
        elif c == 253:
            n, o = int.from_bytes(data[o + 1:o + 4], "little"), o + 4
        elif c == 254:
            n, o = _U64(data, o + 1)[0], o + 9
        else:
            raise MalformedBinLogEvent(f"rows event with a NULL column count at log_pos {self.log_pos}")
        nb = (n + 7) // 8
        bitmap = data[o:o + nb]
        o += nb
        if self.op == UPDATE:
            return o + nb, self.stop, bitmap, data[o:o + nb]
        return o, self.stop, bitmap, None


class TableMap(Event):
    """A TABLE_MAP event: table id, names, and its body after the table id (equal bodies: equal columns)."""

    __slots__ = ("table_id", "schema", "table", "body")
    table_id: int
    schema: str
    table: str
    body: bytes


class Xid(Event):
    """An XID event (a transaction's commit)."""

    __slots__ = ("xid",)
    xid: int


class Gtid(Event):
    """A GTID event, MySQL's or MariaDB's (`gtid` as the library writes it), or None for an anonymous GTID."""

    __slots__ = ("gtid",)
    gtid: str | None


class Query(Event):
    """A QUERY event whose statement is BEGIN or COMMIT."""

    __slots__ = ("schema", "query")
    schema: bytes
    query: str


class Rotate(Event):
    """A ROTATE event: the next binlog file and position."""

    __slots__ = ("next_binlog", "position")
    next_binlog: str
    position: int


class Heartbeat(Event):
    """A server heartbeat: `ident` is the current binlog file, `log_pos` the position reached."""

    __slots__ = ("ident",)
    ident: str


LEAN_TYPES = (Rows, TableMap, Xid, Gtid, Query, Rotate, Heartbeat)


class _Dropped(Exception):
    """The library dropped the event it was handed (raised when it reads on)."""


def _dropped(*_args: Any, **_kwargs: Any) -> Any:
    raise _Dropped


class LeanStream:
    """Reads a `BinLogStreamReader`'s events: the frequent ones parsed lean, the others by the library."""

    def __init__(self, stream: BinLogStreamReader) -> None:
        self.stream = stream
        d = stream.__dict__
        # the stream's options the lean parse does not mirror: every event goes through the library
        self.enabled = (all(_P + k in d for k in _NEEDED) and not d[_P + "freeze_schema"]
                        and not d[_P + "verify_checksum"] and not getattr(stream, "end_log_pos", None)
                        and not getattr(stream, "skip_to_timestamp", None))
        allowed = d.get(_P + "allowed_events", frozenset())
        self.types = frozenset(t for t, cls in _CLASSES.items() if cls in allowed)
        self.only_tables = d.get(_P + "only_tables")
        self.ignored_tables = d.get(_P + "ignored_tables")
        self.only_schemas = d.get(_P + "only_schemas")
        self.ignored_schemas = d.get(_P + "ignored_schemas")
        # table ids of the table maps the library would keep (its `table_map`): rows of others are dropped
        self.table_ids: set[int] = set()
        self._phl: Any = None
        self._declared: dict[int, int] = {}

    def next(self) -> Any:
        """The next event (lean or the library's), or None when the stream ended."""
        s = self.stream
        d = s.__dict__
        while True:
            if not self.enabled or not d[_CONNECTED_STREAM] or not d[_CONNECTED_CTL]:
                ev = s.fetchone()  # connects; the first events of a connection come from the library
                self._seen(ev)
                return ev
            try:
                pkt = s._stream_connection._read_packet()
            except pymysql.OperationalError as error:
                if error.args and error.args[0] in MYSQL_EXPECTED_ERROR_CODES:  # as fetchone: reconnect
                    s._stream_connection.close()
                    d[_CONNECTED_STREAM] = False
                    continue
                raise
            data = pkt._data
            if data[0] == 0xFE and len(data) < 9:
                s.close()
                return None
            if data[0] != 0 or len(data) < 7:
                continue
            ev = None
            ts, t, sid, size, log_pos, _flags = _HEADER(data, 1) if len(data) >= 20 else (0, 0, 0, 0, 0, 0)
            if t in self.types and len(data) != size + 1 and t in _ROWS:
                # the library would drop it (it has not seen the table map): rather stop than lose its rows
                raise MalformedBinLogEvent(f"rows event of type {t} ending at {log_pos}: {len(data) - 1} bytes "
                                           f"for an event size of {size}")
            if t in self.types and len(data) == size + 1:
                ev = self._lean(pkt, data, ts, t, sid, size, log_pos, d)
                if ev is not None:
                    if ev is _SKIP:  # as the library drops it: only its position counts
                        if log_pos:
                            s.log_pos = log_pos
                        continue
                    if t == BINLOG.ROTATE_EVENT:
                        s.log_pos = ev.position
                        s.log_file = ev.next_binlog
                        if ts != 0:
                            s.table_map = {}
                            self.table_ids.clear()
                    elif log_pos:
                        s.log_pos = log_pos
                    return ev
            ev = self.library(pkt)
            if ev is not None:
                return ev

    def library(self, pkt: Any) -> Any:
        """The library's parse of `pkt` (a packet just read), with its bookkeeping; None if it drops it."""
        conn = self.stream._stream_connection

        def once(*_args: Any, **_kwargs: Any) -> Any:
            conn._read_packet = _dropped  # the library reads on only when it dropped the event
            return pkt

        conn._read_packet = once
        try:
            ev = self.stream.fetchone()
        except _Dropped:
            return None
        finally:
            conn.__dict__.pop("_read_packet", None)
        self._seen(ev)
        return ev

    def full(self, ev: TableMap) -> Any:
        """The library's parse of a lean table map (a `TableMapEvent`, or None if it drops it)."""
        return self.library(ev.packet)

    def _seen(self, ev: Any) -> None:
        """Follow the library's table map (its keys) through the events it parsed."""
        if type(ev) is TableMapEvent:
            self.table_ids.add(ev.table_id)
        elif type(ev) is RotateEvent and ev.timestamp != 0:
            self.table_ids.clear()

    def _extra(self, t: int, known: int, d: dict[str, Any], size: int) -> int:
        """Bytes of post-header beyond the `known` ones, as the format description declares them."""
        phl = d[_POST_HEADER_LENGTHS]
        if phl is not self._phl:
            self._phl, self._declared = phl, {}
        extra = self._declared.get(t)
        if extra is None:
            declared = phl[t - 1] if phl and 0 <= t - 1 < len(phl) else known
            if declared < known:
                raise MalformedBinLogEvent(f"Event type {t} declares post-header length {declared}, shorter "
                                           f"than the supported minimum {known}")
            extra = self._declared[t] = declared - known
        if extra > size:
            raise MalformedBinLogEvent(f"Event type {t} declares post-header length {known + extra} beyond "
                                       f"event size {size}")
        return extra

    def _lean(self, pkt: Any, data: bytes, ts: int, t: int, sid: int, size: int, log_pos: int,
              d: dict[str, Any]) -> Any:
        """The lean event of a packet, `_SKIP` for one the library would drop, None for the library to parse."""
        stop = size + 1 - (4 if d[_USE_CHECKSUM] else 0)  # the body ends here (before the checksum)
        ev: Any
        if t in _ROWS:
            table_id = int.from_bytes(data[20:26], "little")
            if table_id not in self.table_ids:
                return _SKIP
            ev = Rows(ts, sid, size, log_pos, pkt)
            ev.op, ev.v2 = _ROWS[t]
            ev.table_id = table_id
            ev.extra = self._extra(t, 10 if ev.v2 else 8, d, size)
            ev.stop = stop
            return ev
        if t == BINLOG.TABLE_MAP_EVENT:
            o = 28 + self._extra(t, 8, d, size)
            n = data[o]
            schema = data[o + 1:o + 1 + n].decode()
            o += n + 2
            n = data[o]
            table = data[o + 1:o + 1 + n].decode()
            if (self.only_tables is not None and table not in self.only_tables) or (
                    self.ignored_tables is not None and table in self.ignored_tables) or (
                    self.only_schemas is not None and schema not in self.only_schemas) or (
                    self.ignored_schemas is not None and schema in self.ignored_schemas):
                return _SKIP
            ev = TableMap(ts, sid, size, log_pos, pkt)
            ev.table_id = table_id = int.from_bytes(data[20:26], "little")
            self.table_ids.add(table_id)
            ev.schema, ev.table, ev.body = schema, table, data[26:stop]
            return ev
        if t == BINLOG.XID_EVENT:
            ev = Xid(ts, sid, size, log_pos, pkt)
            ev.xid = _U64(data, _BODY)[0]
            return ev
        if t == BINLOG.MARIADB_GTID_EVENT:
            seq, domain = _MARIADB_GTID(data, _BODY)
            ev = Gtid(ts, sid, size, log_pos, pkt)
            ev.gtid = f"{domain}-{sid}-{seq}"
            return ev
        if t == BINLOG.GTID_LOG_EVENT:
            h = binascii.hexlify(data[21:37]).decode("ascii")
            ev = Gtid(ts, sid, size, log_pos, pkt)
            ev.gtid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}:{_U64(data, 37)[0]}"
            return ev
        if t == BINLOG.ANONYMOUS_GTID_LOG_EVENT:
            ev = Gtid(ts, sid, size, log_pos, pkt)
            ev.gtid = None
            return ev
        if t == BINLOG.QUERY_EVENT:
            schema_len = data[28]
            status_len = _U16(data, 31)[0]
            o = 33 + self._extra(t, 13, d, size) + status_len
            q = data[o + schema_len + 1:stop]
            if q != b"BEGIN" and q != b"COMMIT":
                return None
            ev = Query(ts, sid, size, log_pos, pkt)
            ev.schema, ev.query = data[o:o + schema_len], q.decode()
            return ev
        if t == BINLOG.ROTATE_EVENT:
            ev = Rotate(ts, sid, size, log_pos, pkt)
            ev.position = _U64(data, _BODY)[0]
            ev.next_binlog = data[28:stop].decode()
            return ev
        if t == BINLOG.HEARTBEAT_LOG_EVENT:
            ev = Heartbeat(ts, sid, size, log_pos, pkt)
            ev.ident = data[_BODY:stop].decode()
            return ev
        return None


_SKIP = Event(0, 0, 0, 0, None)  # an event the library drops

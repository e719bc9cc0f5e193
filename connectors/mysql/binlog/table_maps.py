"""Table map events parsed once per distinct event body, not once per transaction.

Every transaction writes a table map event before its rows; mysql-replication parses each one fully (column
definitions, optional metadata, a `Table` whose primary key it works out from every column's attribute dict),
which costs more than decoding a small transaction's rows: about a third of the binlog reader's CPU time on
single-row transactions. Two table map events with the same bytes after the table id parse to the same result,
so `install()` makes `TableMapEvent` keep, per replication stream (on its control connection, whose settings,
filters and server kind are the stream's), the parsed attributes by those bytes, and copy them into the next
event with the same bytes: only the table id (and the per-event header fields) are its own. The cache is
bounded (cleared when full) and falls back to the full parse for anything unusual (read-ahead data, frozen
schemas, filtered tables).
"""

from __future__ import annotations

from typing import Any

from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.row_event import TableMapEvent
from pymysqlreplication.table import Table

LIMIT = 1024  # distinct table map bodies kept per stream
_ATTR = "_obsync_table_maps"
# set by BinLogEvent.__init__ or per event: never copied from the cache
_PER_EVENT = frozenset(("packet", "table_map", "event_type", "timestamp", "event_size", "_post_header_lengths",
                        "_ctl_connection", "mysql_version", "_ignore_decode_errors", "_verify_checksum",
                        "_is_event_valid", "_processed", "complete", "dbms", "table_id", "table_obj"))
_parse = TableMapEvent.__init__


class _Table(Table):
    """A cached parse's `Table` for one event: its `data` (which every rows event asks for, to read the primary
    key) copied from the one computed at the parse, not recomputed from every column's attributes."""

    @property
    def data(self) -> dict[str, Any]:
        d = dict(self.__dict__["_obsync_data"])
        d["table_id"] = self.table_id
        return d


def _init(self: Any, from_packet: Any, event_size: int, table_map: dict, ctl_connection: Any, **kwargs: Any) -> None:
    raw = from_packet.packet
    if kwargs.get("freeze_schema") or getattr(from_packet, "_BinLogPacketWrapper__data_buffer", b""):
        _parse(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        return
    start = raw._position
    body = raw._data[start + 6:start + event_size]  # after the 6-byte table id: flags, names, columns, metadata
    cache: dict[bytes, dict[str, Any]] = ctl_connection.__dict__.setdefault(_ATTR, {})
    hit = cache.get(body)
    if hit is None:
        _parse(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        if self._processed:
            if len(cache) >= LIMIT:
                cache.clear()
            cache[body] = {k: v for k, v in self.__dict__.items() if k not in _PER_EVENT}
            cache[body]["table_obj"] = self.table_obj
            cache[body]["_obsync_data"] = self.table_obj.data
        return
    BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
    self.table_id = self._read_table_id()
    self.__dict__.update(hit)
    table = object.__new__(_Table)  # the same columns, this event's table id (copy.copy is slower)
    table.__dict__.update(hit["table_obj"].__dict__)
    table.table_id = self.table_id
    table.__dict__["_obsync_data"] = hit["_obsync_data"]
    self.table_obj = table
    table_map[self.table_id] = table


def install() -> None:
    """Make `TableMapEvent` reuse parses (idempotent)."""
    TableMapEvent.__init__ = _init

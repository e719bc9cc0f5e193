"""A sink lane's share of a batch of the log or of a full-sync chunk, from the worker reading it to the worker
writing the lane.

`obsync.steps.routing.Router.pick` groups a batch's changes by sink lane, `Router.expand` encodes them on the
lane's worker. A `LaneWork` holds them either as items (`Encode` jobs and records encoded already, in batch
order) or as packed rows, the form it crosses processes in (`pick` builds that form directly when every lane is
written by another process): a row change at a log position is the plain tuple

    (table index, topic index, partition, op, file, pos, row, before, after, commit_time, txn, server_id)

a row read by full sync (`Op.READ` at a snapshot position, with nothing but its row) the plain tuple

    (table index, topic index, partition, chunk, key, after)

(`tables` and `topics` are the lists those index), anything else the tuple (item,). Pickling `Change` objects one
by one would cost the reading worker about as much as encoding them; the op is the `Op` member itself (pickled
once per batch, then a reference). Each table's schema crosses as the bytes it was pickled to once in this
process (`schema_bytes`), turned back into one schema object per distinct bytes in the receiving process
(`schema_from`): no schema is pickled or unpickled per batch, and every batch of a table arrives with the same
schema object, so the encoder's per-table caches find it by identity. Bytewax pickles an item crossing processes
twice (timely measures its size, then writes it): the bytes are kept from the first time. The rows themselves
cross as the bytes `obsync.core.packing` packs them to (pickle spends 0.4-0.5 us on each Decimal and datetime),
or pickled when a value is not one it packs.

Full sync's rows cross so in a cluster when the format's records outweigh them (`Router.crosses_rows`: a
`debezium` value with its Connect schema is about 4 KB for a 150-byte row).
"""
from __future__ import annotations

import pickle
from typing import Any, NamedTuple

from obsync.connectors.kafka.records import OutItem
from obsync.core import packing
from obsync.core.changes import Change, Op, Row, new_row_change
from obsync.core.positions import LogPosition, SnapshotPosition, new_log_position, new_snapshot_position
from obsync.core.schema import TableSchema

PackedRow = tuple[Any, ...]
Packed = tuple[list[TableSchema], list[str], list[PackedRow]]  # (tables, topics, rows)

_CACHE_LIMIT = 1024  # distinct schemas remembered each way (then started afresh)
_CONSTANTS = tuple(Op)  # values packed by reference (`obsync.core.packing`)
_new_tuple = tuple.__new__
_new_object = object.__new__
_READ = Op.READ


class Encode(NamedTuple):
    """A row change whose partition is chosen (`Router.pick`), to be encoded by its lane (`Router.expand`)."""

    change: Change
    topic: str
    partition: int


def log_change(op: Op, table: TableSchema, file: str, pos: int, row: int, before: Row | None, after: Row | None,
               commit_time: float | None, txn: str | None, server_id: int | None) -> Change:
    """A row change at `LogPosition(file, pos, row)`, both built by the core's fast builders (as the binlog reader
    builds them), not by their frozen dataclass's __init__."""
    return new_row_change(op, table, new_log_position(file, pos, row), before, after, commit_time, txn, server_id)


def read_change(table: TableSchema, chunk: str, key: tuple[Any, ...], after: Row) -> Change:
    """A row read by full sync, at `SnapshotPosition(chunk, key)`, built as `log_change` builds a log change."""
    return new_row_change(_READ, table, new_snapshot_position(chunk, key), None, after, None, None, None)


def plain_read(change: Change) -> bool:
    """Whether `change` is a row read by full sync that its packed form (`read_change`'s arguments) keeps whole."""
    return change.op is _READ and change.position.__class__ is SnapshotPosition and change.before is None and \
        change.commit_time is None and change.txn is None and change.server_id is None and change.ddl is None and \
        change.ddl_db is None and not change.ddl_tables


class LaneWork:
    """One lane's share of a batch, in batch order (see the module docstring): `items`, or packed `rows`."""

    __slots__ = ("lane", "_items", "_rows", "_packed")

    def __init__(self, lane: str, items: list[Encode | OutItem]) -> None:
        self.lane = lane
        self._items: list[Encode | OutItem] | None = items
        self._rows: Packed | None = None
        self._packed: bytes | None = None

    @classmethod
    def of_rows(cls, lane: str, tables: list[TableSchema], topics: list[str], rows: list[PackedRow]) -> LaneWork:
        """A lane's work as packed rows (the module docstring)."""
        work = _new_object(cls)
        work.lane, work._items, work._rows, work._packed = lane, None, (tables, topics, rows), None
        return work

    @property
    def items(self) -> list[Encode | OutItem]:
        """The work as items: `Encode` jobs and records (built from the packed rows on first use; anew at each
        use when it arrived from another process, see `rows`)."""
        if self._items is not None:
            return self._items
        rows = self.rows
        assert rows is not None
        items = unpack_rows(*rows)
        if self._rows is not None:
            self._items = items
        return items

    @property
    def rows(self) -> Packed | None:
        """(tables, topics, rows) when the work is held packed, else None. Work that arrived from another
        process holds only its bytes, unpickled here at each use and not kept: the lanes' process may receive an
        epoch of the log's batches ahead of encoding them (Bytewax's sink takes every batch that has arrived
        before it writes any), and as bytes that backlog takes about 140 bytes a row of the e2e bench's table,
        against about 1 KB unpickled (tracemalloc): a 1,000,000-row transaction had pushed the process past
        300 MB."""
        if self._rows is not None:
            return self._rows
        if self._items is None and self._packed is not None:
            return _unpickle(self._packed)[1:]  # type: ignore[return-value]
        return None

    def copy(self) -> LaneWork:
        """The same work, not pickled yet (benches measure the pickling again)."""
        rows = self.rows
        if rows is not None:
            return LaneWork.of_rows(self.lane, *rows)
        return LaneWork(self.lane, self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LaneWork) and (self.lane, self.items) == (other.lane, other.items)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        rows = self.rows
        n = len(rows[2]) if rows is not None else len(self.items)
        return f"LaneWork({self.lane!r}, {n} items)"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._packed is None:
            tables, topics, rows = self._rows if self._rows is not None else pack_items(self.items)
            blob = packing.pack(rows, _CONSTANTS)  # None: a value it does not pack; the rows are pickled
            self._packed = pickle.dumps((self.lane, [schema_bytes(t) for t in tables], topics,
                                         rows if blob is None else blob), protocol=pickle.HIGHEST_PROTOCOL)
        return _arrive, (self.lane, self._packed)


def _arrive(lane: str, packed: bytes) -> LaneWork:
    """A lane's work pickled by `LaneWork.__reduce__`: held as its bytes (see `LaneWork.rows`), which are also
    what it is pickled to again, should it cross on."""
    work = _new_object(LaneWork)
    work.lane, work._items, work._rows, work._packed = lane, None, None, packed
    return work


def _unpickle(packed: bytes) -> tuple[str, list[TableSchema], list[str], list[PackedRow]]:
    lane, schemas, topics, rows = pickle.loads(packed)
    if type(rows) is bytes:  # packed by `obsync.core.packing`
        rows = packing.unpack(rows, _CONSTANTS)
    return lane, [schema_from(b) for b in schemas], topics, rows


def pack_items(items: list[Encode | OutItem]) -> Packed:
    """Items as packed rows (the module docstring): row changes at log positions and rows read by full sync packed,
    anything else as (item,)."""
    tables: dict[int, int] = {}
    table_list: list[TableSchema] = []
    topics: dict[str, int] = {}
    rows: list[PackedRow] = []
    for it in items:
        if type(it) is Encode:
            change, topic, partition = it  # type: ignore[misc]
            pos = change.position
            t = change.table
            read = plain_read(change)
            if t is None or not read and (type(pos) is not LogPosition or change.ddl is not None or
                                          change.ddl_db is not None or change.ddl_tables):
                rows.append((it,))
                continue
            ti = tables.get(id(t))
            if ti is None:
                ti = tables[id(t)] = len(table_list)
                table_list.append(t)
            to = topics.get(topic)
            if to is None:
                to = topics[topic] = len(topics)
            if read:
                rows.append((ti, to, partition, pos.chunk, pos.key, change.after))  # type: ignore[union-attr]
            else:
                rows.append((ti, to, partition, change.op, pos.file, pos.pos, pos.row,  # type: ignore[union-attr]
                             change.before, change.after, change.commit_time, change.txn, change.server_id))
        else:
            rows.append((it,))
    return table_list, list(topics), rows


def unpack_rows(tables: list[TableSchema], topics: list[str], rows: list[PackedRow]) -> list[Encode | OutItem]:
    """Packed rows as items (`Encode` jobs and records)."""
    items: list[Encode | OutItem] = []
    append = items.append
    for r in rows:
        n = len(r)
        if n == 1:
            append(r[0])
            continue
        if n == 6:
            ti, to, partition, chunk, key, after = r
            append(_new_tuple(Encode, (read_change(tables[ti], chunk, key, after), topics[to], partition)))
            continue
        ti, to, partition, op, file, pos, row, before, after, commit_time, txn, server_id = r
        append(_new_tuple(Encode, (log_change(op, tables[ti], file, pos, row, before, after, commit_time, txn,
                                              server_id), topics[to], partition)))
    return items


_SENT: dict[int, tuple[TableSchema, bytes]] = {}  # id(schema) -> (schema, its pickle): holding it keeps its id
_ARRIVED: dict[bytes, TableSchema] = {}  # a schema's pickle -> the one schema object made of it here


def schema_bytes(table: TableSchema) -> bytes:
    """`table` pickled, once per schema object in this process."""
    hit = _SENT.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    if len(_SENT) >= _CACHE_LIMIT:
        _SENT.clear()
    blob = pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL)
    _SENT[id(table)] = (table, blob)
    return blob


def schema_from(blob: bytes) -> TableSchema:
    """The schema pickled as `blob`: one object per distinct bytes in this process."""
    table = _ARRIVED.get(blob)
    if table is None:
        if len(_ARRIVED) >= _CACHE_LIMIT:
            _ARRIVED.clear()
        table = _ARRIVED[blob] = pickle.loads(blob)
    return table

"""What the dataflow hands the Kafka sink: records already encoded and assigned a partition."""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

from obsync.core.changes import StreamDone
from obsync.core.positions import LogPosition, Position, SnapshotPosition

POS_HEADER = "obsync.pos"
SEQ_HEADER = "obsync.seq"
TASK_HEADER = "obsync.task"


class OutRecord(NamedTuple):
    """One Kafka message with the source position it carries (a named tuple: one is built per message).

    `seq` numbers the messages one change produces (a tombstone after a delete, the delete and insert an
    update of the key becomes), so (position, seq) is unique and ordered within the position's stream.
    """

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    position: Position
    seq: int = 0
    commit_time: float | None = None
    headers: tuple[tuple[str, bytes], ...] | None = None  # besides the position headers (large messages)


OutItem = OutRecord | StreamDone

_new_tuple = tuple.__new__
_new_object = object.__new__


def _slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """Sets a slot of a frozen dataclass's new instance directly (its __init__ calls object.__setattr__ per field)."""
    return cls.__dict__[name].__set__  # a member descriptor


_set_chunk, _set_key = _slot_setter(SnapshotPosition, "chunk"), _slot_setter(SnapshotPosition, "key")
_set_file, _set_pos, _set_row = (_slot_setter(LogPosition, n) for n in ("file", "pos", "row"))


class RecordBatch(list[OutItem]):
    """One sink lane's records of one batch: a list, which crosses processes packed (`_pack_records`).

    Pickled record by record, each `OutRecord` and its position costs Python calls (the named tuple's
    `__getnewargs__`, the dataclass's `__getstate__`/`__setstate__`); packed, a record is a plain tuple, each
    topic and chunk name is written once, and the positions are rebuilt without their `__init__`. Bytewax
    pickles an item crossing processes twice (timely measures its size, then writes it): the packed bytes are
    kept from the first time (the batch is not changed once handed on). It arrives as a plain list."""

    __slots__ = ("_packed",)

    def __reduce__(self) -> tuple[Any, ...]:
        packed: bytes | None = getattr(self, "_packed", None)
        if packed is None:
            packed = self._packed = pickle.dumps(_pack_records(self), protocol=pickle.HIGHEST_PROTOCOL)
        return _unpack_records, (packed,)


def _pack_records(records: list[OutItem]) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """(topics, names, rows): a record at a snapshot position as (topic index, partition, key, value, chunk
    index, position key, seq, commit_time, headers), at a log position as (topic index, partition, key, value,
    file index, pos, row, seq, commit_time, headers, None); anything else as (item,)."""
    topics: dict[str, int] = {}
    names: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for r in records:
        if type(r) is not OutRecord:
            append((r,))
            continue
        topic, partition, key, value, pos, seq, commit_time, headers = r
        ti = topics.get(topic)
        if ti is None:
            ti = topics[topic] = len(topics)
        kind = type(pos)
        if kind is SnapshotPosition:
            name = pos.chunk  # type: ignore[union-attr]  # a SnapshotPosition
            ni = names.get(name)
            if ni is None:
                ni = names[name] = len(names)
            append((ti, partition, key, value, ni, pos.key, seq, commit_time, headers))  # type: ignore[union-attr]
        elif kind is LogPosition:
            name = pos.file  # type: ignore[union-attr]  # a LogPosition
            ni = names.get(name)
            if ni is None:
                ni = names[name] = len(names)
            append((ti, partition, key, value, ni, pos.pos, pos.row, seq, commit_time, headers, None))  # type: ignore[union-attr]
        else:
            append((r,))
    return list(topics), list(names), rows


def _unpack_records(packed: bytes) -> list[OutItem]:
    topics, names, rows = pickle.loads(packed)
    out: list[OutItem] = []
    append = out.append
    pos: Position
    for r in rows:
        n = len(r)
        if n == 9:
            ti, partition, key, value, ni, pkey, seq, commit_time, headers = r
            pos = _new_object(SnapshotPosition)
            _set_chunk(pos, names[ni])
            _set_key(pos, pkey)
        elif n == 11:
            ti, partition, key, value, ni, at, row, seq, commit_time, headers, _ = r
            pos = _new_object(LogPosition)
            _set_file(pos, names[ni])
            _set_pos(pos, at)
            _set_row(pos, row)
        else:
            append(r[0])
            continue
        append(_new_tuple(OutRecord, (topics[ti], partition, key, value, pos, seq, commit_time, headers)))
    return out


def part_name(topic: str, partition: int) -> str:
    """A Kafka partition's name in sink state ('#' never occurs in a topic name)."""
    return f"{topic}#{partition:05d}"


def parse_part_name(name: str) -> tuple[str, int]:
    topic, _, p = name.rpartition("#")
    return topic, int(p)


DEFAULT_LANES = 16


def lane_names(lanes: int) -> list[str]:
    """The sink parts of a task: a fixed number of lanes, each writing a stable share of the partitions.

    Lanes rather than one part per Kafka partition, because Bytewax fixes a sink's parts when the
    dataflow starts, while a task's topics grow with tables created as it runs."""
    return [f"lane{i:03d}" for i in range(lanes)]


def lane_of(topic: str, partition: int, lanes: int) -> str:
    """The lane that writes a Kafka partition (stable across runs and processes): a topic's partitions take
    consecutive lanes from one picked by the crc32 of its name, so they are spread over as many lanes, and so
    workers, as they can be (Bytewax gives consecutive sink parts to different workers)."""
    return f"lane{(zlib.crc32(topic.encode()) + partition) % lanes:03d}"

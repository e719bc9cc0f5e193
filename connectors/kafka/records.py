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
    kept from the first time (the batch is not changed once handed on). It arrives as a plain list.

    A topic's values that begin alike (a `debezium` value's Connect schema, about 3.5 KB of its 4 KB) cross
    once with that beginning and then only with the rest (`_shared_prefixes`): the bytes a batch takes between
    processes, and the memory it holds while it waits for the lane's worker, shrink about eightfold there."""

    __slots__ = ("_packed",)

    def __reduce__(self) -> tuple[Any, ...]:
        packed: bytes | None = getattr(self, "_packed", None)
        if packed is None:
            packed = self._packed = pickle.dumps(_pack_records(self), protocol=pickle.HIGHEST_PROTOCOL)
        return _unpack_records, (packed,)


_MIN_PREFIX = 256  # bytes a beginning shared by a topic's values must have to cross once (shorter: not worth it)
_SAMPLES = 8  # records of a batch whose values are compared to find those beginnings


def _shared_prefixes(records: list[OutItem]) -> dict[str, bytes]:
    """Per topic, the beginning its values in `records` share, when at least `_MIN_PREFIX` bytes long: found on a
    few records spread over the batch (a value that does not begin so then crosses whole)."""
    n = len(records)
    if n < 2:
        return {}
    step = max(1, n // _SAMPLES)
    by_topic: dict[str, list[bytes]] = {}
    for i in (*range(0, n, step), n - 1):
        r = records[i]
        if type(r) is OutRecord and r.value is not None and len(r.value) >= _MIN_PREFIX:
            by_topic.setdefault(r.topic, []).append(r.value)
    out: dict[str, bytes] = {}
    for topic, values in by_topic.items():
        if len(values) < 2:
            continue
        first = values[0]
        lo, hi = 0, min(len(v) for v in values)  # the longest m with first[:m] the beginning of every value
        while lo < hi:
            mid = (lo + hi + 1) // 2
            head = first[:mid]
            if all(v.startswith(head) for v in values):
                lo = mid
            else:
                hi = mid - 1
        if lo >= _MIN_PREFIX:
            out[topic] = first[:lo]
    return out


def _pack_records(records: list[OutItem]) -> tuple[list[str], list[bytes], list[str], list[tuple[Any, ...]]]:
    """(topics, prefixes, names, rows): a record at a snapshot position as (topic index, partition, key, value,
    chunk index, position key, seq, commit_time, headers), at a log position as (topic index, partition, key,
    value, file index, pos, row, seq, commit_time, headers, None); anything else as (item,). Where the topic has
    a prefix (b"": none), a value that begins with it crosses without it, one that does not as (value,)."""
    shared = _shared_prefixes(records)
    topics: dict[str, int] = {}
    prefixes: list[bytes] = []
    names: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for r in records:
        if type(r) is not OutRecord:
            append((r,))
            continue
        topic, partition, key, whole, pos, seq, commit_time, headers = r
        ti = topics.get(topic)
        if ti is None:
            ti = topics[topic] = len(topics)
            prefixes.append(shared.get(topic, b""))
        value: bytes | tuple[bytes] | None = whole
        if whole is not None:
            prefix = prefixes[ti]
            if prefix:
                value = whole[len(prefix):] if whole.startswith(prefix) else (whole,)
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
    return list(topics), prefixes, list(names), rows


def _unpack_records(packed: bytes) -> list[OutItem]:
    topics, prefixes, names, rows = pickle.loads(packed)
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
        if value is not None:
            prefix = prefixes[ti]
            if prefix:
                value = value[0] if type(value) is tuple else prefix + value
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

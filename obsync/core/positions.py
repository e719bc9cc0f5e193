"""Positions: where a change came from, totally ordered within a task.

Every snapshot row sorts before every log change. Snapshot rows are ordered by (chunk, key); log changes
by (binlog file number, event end offset, row index within the event). The Kafka sink keeps, per Kafka
partition and per *stream* (one snapshot chunk, or the log), the last position written, and drops
anything at or before it after a resume. Positions travel in the `obsync.pos` Kafka header.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

LOG_STREAM = "log"


_FILE_NUMBERS: dict[str, int] = {}  # few distinct names, asked for every log change the sink writes


def binlog_file_number(file: str) -> int:
    """The sequence number of a binlog file name (`mysql-bin.000042` -> 42)."""
    n = _FILE_NUMBERS.get(file)
    if n is None:
        suffix = file.rsplit(".", 1)[-1]
        if not suffix.isdigit():
            raise ValueError(f"binlog file name {file!r} has no numeric suffix")
        if len(_FILE_NUMBERS) >= 10_000:
            _FILE_NUMBERS.clear()
        n = _FILE_NUMBERS[file] = int(suffix)
    return n


@dataclass(frozen=True, slots=True)
class LogPosition:
    """A row's place in the binary log: the event's end offset and the row's index in the event."""

    file: str
    pos: int
    row: int = 0

    stream = LOG_STREAM

    @property
    def sort_key(self) -> tuple[int, int, int, int]:
        return (1, binlog_file_number(self.file), self.pos, self.row)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}#{self.row}"

    def to_json(self) -> list[Any]:
        return ["log", self.file, self.pos, self.row]


class _LogPositionBuilder:
    """Builds a `LogPosition` at under half the cost of the frozen dataclass's `__init__` (the binlog reader makes
    one per row): the same slots filled by plain stores, then the object's class set to `LogPosition`. The
    result is a `LogPosition` in every respect (type, equality, hash, pickling, `dataclasses.replace`); a field
    added to `LogPosition` and not here fails the class assignment (different slots), never silently."""

    __slots__ = ("file", "pos", "row")

    def __init__(self, file: str, pos: int, row: int) -> None:
        self.file = file
        self.pos = pos
        self.row = row
        self.__class__ = LogPosition  # type: ignore[assignment]  # the same slots: now a LogPosition


# `LogPosition(file, pos, row)`, faster (for the binlog reader's per-row positions)
new_log_position = cast("Callable[[str, int, int], LogPosition]", _LogPositionBuilder)


@dataclass(frozen=True, slots=True)
class SnapshotPosition:
    """A snapshot row's place: its chunk and its key (the order the chunk is read in)."""

    chunk: str  # e.g. "shop.orders/0003"
    key: tuple[Any, ...]

    @property
    def stream(self) -> str:
        return f"snapshot:{self.chunk}"

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (0, self.chunk, self.key)

    def __str__(self) -> str:
        return f"{self.chunk}@{json.dumps(_encode_key(self.key), separators=(',', ':'))}"

    def to_json(self) -> list[Any]:
        return ["snap", self.chunk, _encode_key(self.key)]


class _SnapshotPositionBuilder:
    """Builds a `SnapshotPosition` as `_LogPositionBuilder` builds a `LogPosition` (a lane's worker rebuilds one per
    full-sync row that crossed processes)."""

    __slots__ = ("chunk", "key")

    def __init__(self, chunk: str, key: tuple[Any, ...]) -> None:
        self.chunk = chunk
        self.key = key
        self.__class__ = SnapshotPosition  # type: ignore[assignment]  # the same slots: now a SnapshotPosition


# `SnapshotPosition(chunk, key)`, faster
new_snapshot_position = cast("Callable[[str, tuple[Any, ...]], SnapshotPosition]", _SnapshotPositionBuilder)


Position = LogPosition | SnapshotPosition


def position_from_json(data: list[Any]) -> Position:
    """Inverse of `to_json()`."""
    kind = data[0]
    if kind == "log":
        return LogPosition(data[1], int(data[2]), int(data[3]))
    if kind == "snap":
        return SnapshotPosition(data[1], _decode_key(data[2]))
    raise ValueError(f"unknown position kind {kind!r} in {data!r}")


def position_to_header(p: Position) -> bytes:
    """The `obsync.pos` header: compact JSON of `to_json()` (written directly for the common shapes)."""
    if p.__class__ is LogPosition:
        return b'["log",%s,%d,%d]' % (_json_str(p.file), p.pos, p.row)
    if isinstance(p, SnapshotPosition) and len(p.key) == 1 and type(p.key[0]) is int:
        return b'["snap",%s,[%d]]' % (_json_str(p.chunk), p.key[0])
    return json.dumps(p.to_json(), separators=(",", ":"), ensure_ascii=False).encode()


_STR_CACHE: dict[str, bytes] = {}


def _json_str(s: str) -> bytes:
    """JSON string literal of a file or chunk name (few distinct values: cached)."""
    b = _STR_CACHE.get(s)
    if b is None:
        if len(_STR_CACHE) > 10_000:
            _STR_CACHE.clear()
        b = _STR_CACHE[s] = json.dumps(s, ensure_ascii=False).encode()
    return b


def position_from_header(raw: bytes) -> Position:
    return position_from_json(json.loads(raw))


def is_after(p: Position, last: Position | None) -> bool:
    """True when `p` comes strictly after `last` in the same stream (or nothing was written yet)."""
    return last is None or p.sort_key > last.sort_key


# Key values keep their Python type through JSON so that comparisons after a round trip match.
def _encode_key(key: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for v in key:
        if v is None or isinstance(v, (bool, int, str)):
            out.append(v)
        elif isinstance(v, float):
            out.append({"f": repr(v)})
        elif isinstance(v, Decimal):
            out.append({"d": str(v)})
        elif isinstance(v, bytes):
            out.append({"b": base64.b64encode(v).decode()})
        elif isinstance(v, dt.datetime):
            out.append({"dt": v.isoformat()})
        elif isinstance(v, dt.date):
            out.append({"da": v.isoformat()})
        elif isinstance(v, dt.timedelta):
            out.append({"td": [v.days, v.seconds, v.microseconds]})
        else:
            raise TypeError(f"cannot encode key value {v!r} of type {type(v).__name__}")
    return out


def _decode_key(items: list[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for v in items:
        if not isinstance(v, dict):
            out.append(v)
        elif "f" in v:
            out.append(float(v["f"]))
        elif "d" in v:
            out.append(Decimal(v["d"]))
        elif "b" in v:
            out.append(base64.b64decode(v["b"]))
        elif "dt" in v:
            out.append(dt.datetime.fromisoformat(v["dt"]))
        elif "da" in v:
            out.append(dt.date.fromisoformat(v["da"]))
        elif "td" in v:
            d, s, us = v["td"]
            out.append(dt.timedelta(days=d, seconds=s, microseconds=us))
        else:
            raise ValueError(f"unknown key encoding {v!r}")
    return tuple(out)

"""A table's state as its topic describes it, and its comparison with the source's rows. No servers here.

`TopicState` replays decoded messages (`obsync.formats.decoding.Decoded`) into a SQLite file:

- **Tables with a key**: one row per key (the values of the table's key columns, taken from the image): an
  insert or update puts its after image there, a delete (or a tombstone) marks the key deleted, a truncate
  marks every key deleted; an update whose before image has another key first deletes that key. The last
  message for a key wins: within a partition the later offset, across partitions the later position.
- **Tables without a key**: a multiset of row images: an insert adds one, a delete removes one copy of its
  before image, an update does both.

`compare_keyed` / `compare_keyless` then take the source's rows (images produced by the same decoder, so like
is compared with like) in batches and record every difference in the same file: memory stays bounded by the
batch size and `keep`, the differences listed in full (the counts are always exact).

Values are compared in a canonical JSON form (`canonical`): bytes, decimals and temporal values are tagged, so
that a value equals another exactly when their canonical texts are equal.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from obsync.formats.decoding import Decoded

Row = dict[str, Any]
ABSENT = {"$absent": True}  # a column one side's image does not have


def canonical(v: Any) -> Any:
    """`v` as a JSON value whose text identifies it: bytes, decimals, temporal values tagged, others as is."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return {"$f": repr(v)}
    if isinstance(v, Decimal):
        return {"$d": str(v)}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return {"$t": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"$td": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, dict):
        return {str(k): canonical(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [canonical(x) for x in v]
    return {"$repr": repr(v)}


_PLAIN = frozenset({str, int, bool, type(None)})  # values `canonical` leaves as they are


def dumps(v: Any) -> str:
    """The JSON text of a canonical value: keys sorted, no spaces."""
    try:
        return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits: the same value always takes this path
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def key_text(image: Row, key_columns: Sequence[str]) -> str | None:
    """The canonical key of an image, None when it lacks a key column."""
    try:
        values = [image[c] for c in key_columns]
    except KeyError:
        return None
    return dumps(values if all(type(x) in _PLAIN for x in values) else [canonical(x) for x in values])


def row_text(image: Row) -> str:
    """The canonical text of a row image (the JSON formats decode to plain values: taken as they are)."""
    return dumps(image if all(type(x) in _PLAIN for x in image.values()) else canonical(image))


@dataclass(frozen=True, slots=True)
class Where:
    """Where a message is: partition, offset, its `obsync.pos` header (None for a message without one) and an
    order text (positions compare as texts; "" when unknown)."""

    partition: int
    offset: int
    position: str | None
    order: str = ""


@dataclass
class Difference:
    """One key (or row image, for a table without a key) whose source and Kafka states differ."""

    kind: str  # "missing" (in Kafka), "extra" (in Kafka), "different"
    key: Any  # the key columns' values, or the row image of a table without a key
    source: Any = None
    kafka: Any = None
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> {"source": v, "kafka": v}
    count: int = 1  # copies, for a table without a key
    partition: int | None = None
    offset: int | None = None
    position: Any = None  # the obsync.pos header of the last message for the key, as JSON

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "key": self.key}
        if self.kind == "different":
            out["columns"] = self.columns
        elif self.kind == "missing":
            out["source"] = self.source
        else:
            out["kafka"] = self.kafka
        if self.count != 1:
            out["count"] = self.count
        out["position"] = self.position
        out["partition"] = self.partition
        out["offset"] = self.offset
        return out


def column_differences(source: Row, kafka: Row) -> dict[str, dict[str, Any]]:
    """Column -> both values, for the columns whose canonical values differ (or that one side lacks)."""
    out: dict[str, dict[str, Any]] = {}
    for c in list(source) + [c for c in kafka if c not in source]:
        s = source.get(c, ABSENT)
        k = kafka.get(c, ABSENT)
        if dumps(s) != dumps(k):
            out[c] = {"source": s, "kafka": k}
    return out


_FLUSH_EVERY = 1000  # replayed messages buffered before one executemany
_PUT = ("INSERT INTO state (k, row, part, off, pos, ord) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(k) DO UPDATE "
        "SET row = excluded.row, part = excluded.part, off = excluded.off, pos = excluded.pos, "
        "ord = excluded.ord WHERE excluded.part = state.part OR excluded.ord >= state.ord")
_COUNT = ("INSERT INTO state (k, row, part, off, pos, ord, n) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(k) DO "
          "UPDATE SET n = state.n + excluded.n, part = excluded.part, off = excluded.off, pos = excluded.pos")


class TopicState:
    """The replayed state of one table's topic(s), in a SQLite file at `path` (created; removed by `close`)."""

    def __init__(self, path: Path, key_columns: Sequence[str]) -> None:
        self.path = path
        self.key_columns = tuple(key_columns)
        self.keyed = bool(self.key_columns)
        self.messages = 0
        self._puts: list[tuple[Any, ...]] = []  # replay buffered for `_flush`
        self._counts: list[tuple[Any, ...]] = []
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.executescript("""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -16384;
            PRAGMA temp_store = FILE;
            CREATE TABLE state (k TEXT PRIMARY KEY, row TEXT, part INTEGER, off INTEGER, pos TEXT, ord TEXT,
                                n INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID;
            CREATE TABLE seen (k TEXT PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE diff (k TEXT PRIMARY KEY, source TEXT, n INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID;
            CREATE TABLE src (k TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
        """)
        self.db.execute("BEGIN")

    # -- replay -----------------------------------------------------------------------------------------

    def apply(self, d: Decoded, at: Where) -> None:
        """Replay one decoded message."""
        self.messages += 1
        if d.op == "truncate":
            self._flush()
            self.db.execute("UPDATE state SET row = NULL, part = ?, off = ?, pos = ?, ord = ?" if self.keyed
                            else "DELETE FROM state", (at.partition, at.offset, at.position, at.order)
                            if self.keyed else ())
            return
        if d.op == "skip":
            return
        if not self.keyed:
            if d.before is not None and d.op in ("delete", "update"):
                self._count(row_text(d.before), -1, at)
            if d.after is not None and d.op in ("insert", "update"):
                self._count(row_text(d.after), +1, at)
            return
        old = None if d.before is None else key_text(d.before, self.key_columns)
        new = None if d.after is None else key_text(d.after, self.key_columns)
        if d.op == "delete" or (d.op == "update" and old is not None and old != new):
            if old is not None:
                self._put(old, None, at)
        if d.op in ("insert", "update") and new is not None:
            self._put(new, row_text(d.after), at)  # type: ignore[arg-type]  # new is set only with an after image

    def _put(self, k: str, row: str | None, at: Where) -> None:
        self._puts.append((k, row, at.partition, at.offset, at.position, at.order))
        if len(self._puts) >= _FLUSH_EVERY:
            self._flush()

    def _count(self, image: str, delta: int, at: Where) -> None:
        self._counts.append((image, image, at.partition, at.offset, at.position, at.order, delta))
        if len(self._counts) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered replay (in order: a later message for a key still wins)."""
        if self._puts:
            self.db.executemany(_PUT, self._puts)
            self._puts.clear()
        if self._counts:
            self.db.executemany(_COUNT, self._counts)
            self._counts.clear()

    # -- comparison -------------------------------------------------------------------------------------

    def compare_keyed(self, images: Sequence[Row]) -> int:
        """Compare a batch of source images (keyed table); record differences; the number of rows compared."""
        self._flush()
        rows = [(key_text(img, self.key_columns), row_text(img)) for img in images]
        keys = [k for k, _ in rows if k is not None]
        found: dict[str, str | None] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            marks = ",".join("?" * len(part))
            found.update(self.db.execute(f"SELECT k, row FROM state WHERE k IN ({marks})", part).fetchall())
        self.db.executemany("INSERT OR IGNORE INTO seen (k) VALUES (?)", [(k,) for k in keys])
        self.db.executemany("INSERT OR REPLACE INTO diff (k, source) VALUES (?, ?)",
                            [(k, src) for k, src in rows if k is not None and found.get(k) != src])
        return len(rows)

    def finish_keyed(self) -> None:
        """After the last batch: every key Kafka holds that the source does not is an extra."""
        self._flush()
        self.db.execute("INSERT OR REPLACE INTO diff (k, source) SELECT s.k, NULL FROM state s "
                        "WHERE s.row IS NOT NULL AND NOT EXISTS (SELECT 1 FROM seen WHERE seen.k = s.k)")

    def count_source(self, images: Sequence[Row]) -> int:
        """Add a batch of source images (table without a key) to the source's multiset."""
        self.db.executemany("INSERT INTO src (k, n) VALUES (?, 1) ON CONFLICT(k) DO UPDATE SET n = src.n + 1",
                            [(row_text(img),) for img in images])
        return len(images)

    def finish_keyless(self) -> None:
        """The differences of a table without a key: per row image, source copies - Kafka copies (when not 0).
        Can be run again after more messages were applied."""
        self._flush()
        self.db.execute("DELETE FROM diff")
        self.db.execute("INSERT INTO diff (k, source, n) SELECT k, k, n FROM src")
        self.db.execute("INSERT INTO diff (k, source, n) SELECT k, NULL, 0 FROM state WHERE n > 0 "
                        "ON CONFLICT(k) DO NOTHING")
        self.db.execute("UPDATE diff SET n = n - COALESCE((SELECT MAX(state.n, 0) FROM state "
                        "WHERE state.k = diff.k), 0)")
        self.db.execute("DELETE FROM diff WHERE n = 0")

    def recheck_keyed(self) -> int:
        """Drop the differences the state no longer shows (after more messages were applied); how many remain."""
        self._flush()
        self.db.execute("DELETE FROM diff WHERE source IS (SELECT row FROM state WHERE state.k = diff.k) "
                        "OR (source IS NULL AND NOT EXISTS (SELECT 1 FROM state WHERE state.k = diff.k "
                        "AND state.row IS NOT NULL))")
        return self.difference_count()

    def difference_count(self) -> int:
        self._flush()
        return int(self.db.execute("SELECT COUNT(*) FROM diff").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """missing / extra / different, counted in full (copies for a table without a key)."""
        self._flush()
        if self.keyed:
            rows = self.db.execute(
                "SELECT CASE WHEN d.source IS NULL THEN 'extra' WHEN s.row IS NULL THEN 'missing' "
                "ELSE 'different' END, COUNT(*) FROM diff d LEFT JOIN state s ON s.k = d.k GROUP BY 1").fetchall()
        else:
            rows = self.db.execute("SELECT CASE WHEN n > 0 THEN 'missing' ELSE 'extra' END, SUM(ABS(n)) "
                                   "FROM diff GROUP BY 1").fetchall()
        out = {"missing": 0, "extra": 0, "different": 0}
        out.update({k: int(v) for k, v in rows})
        return out

    def differences(self, keep: int, order: Sequence[str] = ()) -> list[Difference]:
        """The first `keep` differences, by key; images and changed columns in the column `order` given (the
        table's), other columns after them by name."""
        self._flush()
        rank = {c: i for i, c in enumerate(order)}

        def ordered(row: Any) -> Any:
            if not isinstance(row, dict):
                return row
            return dict(sorted(row.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))

        out: list[Difference] = []
        cur = self.db.execute("SELECT d.k, d.source, d.n, s.row, s.part, s.off, s.pos FROM diff d "
                              "LEFT JOIN state s ON s.k = d.k ORDER BY d.k LIMIT ?", (keep,))
        for k, source, n, row, part, off, pos in cur:
            where = {"partition": part, "offset": off, "position": None if pos is None else json.loads(pos)}
            src = None if source is None else ordered(json.loads(source))
            kafka = None if row is None else ordered(json.loads(row))
            if not self.keyed:
                image = ordered(json.loads(k))
                out.append(Difference("missing" if n > 0 else "extra", image, count=abs(n),
                                      **(where if n < 0 else {})))
                continue
            key = dict(zip(self.key_columns, json.loads(k), strict=True))
            if src is None:
                out.append(Difference("extra", key, kafka=kafka, **where))
            elif kafka is None:
                out.append(Difference("missing", key, source=src, **(where if part is not None else {})))
            else:
                out.append(Difference("different", key, columns=column_differences(src, kafka), **where))
        return out

    def commit(self) -> None:
        self._flush()
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            self.path.unlink(missing_ok=True)


def replay(state: TopicState, messages: Iterable[tuple[Decoded, Where]]) -> None:
    """Apply messages in order (a convenience for tests and small inputs)."""
    for d, at in messages:
        state.apply(d, at)

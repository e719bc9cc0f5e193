"""SharePlex's JSON message (docs/formats/README.md, "SharePlex").

    {"meta": {"time", "userid", "op", "scn", "rowid", "trans", "seq", "size", "table", "idx", "posttime"},
     "data": {...}, "key": {...} | null}

Members appear in that order, nulls included. One message per change, two for an update:
- `op`: `INSERT` (also for rows read by full sync), `UPDATE BEFORE` then `UPDATE AFTER`, `DELETE`; DDL
  messages carry `TRUNCATE` for TRUNCATE TABLE and otherwise the statement's kind as the Default format's
  `ddlType` names it (`ALTER TABLE`, `CREATE INDEX`, `DROP TABLE`, ...), with `data: {"ddl": statement}`.
  Heartbeats are not sent: SharePlex has none, and its readers know no such `op`.
- `data`: the row, as the Default format renders it (`obsync.formats.values`): the after image for INSERT and
  UPDATE AFTER, the before image for UPDATE BEFORE and DELETE. An update of the key arrives here as a
  DELETE and an INSERT (split upstream, see `obsync.steps.routing`).
- `key`: for UPDATE BEFORE, UPDATE AFTER and DELETE, the before image's key columns (the primary key, else
  the first NOT NULL unique key) or, for a table without a key, the whole before image, which is how
  SharePlex identifies such rows; null otherwise.
- `time`: commit time, UTC, `yyyy-MM-ddTHH:mm:ssZ` (null for rows read by full sync); `posttime`: the time the
  message was built, same form: the one member that differs between replays (the clock is injectable).
- `trans`: the transaction identity (GTID, or `file:pos` of its start); `scn`, SharePlex's commit number, is
  the change's place in the log as a decimal string (`file_number * 10**12 + event_end_offset`), growing along
  the log and shared by the rows of one binlog event; both null for rows read by full sync. `userid` and
  `rowid` are null: the binlog carries neither the committing user nor row addresses.
- `seq` / `size` / `idx` (`seq/size`): SharePlex numbers the operations of a transaction 1..size. obsync
  streams a transaction without holding it, and a change carries neither the number of changes in its
  transaction nor in its binlog event, so `size` of a row change is null, `seq` is the row's 1-based place in
  its binlog rows event (both messages of an update share it) and `idx` is null: nothing here claims to know
  where a transaction ends. A DDL statement and a row read by full sync are each a transaction of one
  operation: `seq` 1, `size` 1, `idx` "1/1".
- `table`: `database.table`.

Kafka key: JSON array of `table.message_key_columns` values, as in the Default format; None for DDL and
tables without a key.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from orjson import dumps

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition
from obsync.core.schema import TableSchema
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord, TableCache
from obsync.formats.canal import ddl_table, log_batch_id
from obsync.formats.decoding import SKIP, Decoded, Decoder, json_object
from obsync.formats.default import ddl_type
from obsync.formats.registry import register, register_decoder
from obsync.formats.values import KeyValues, TableRenderer, json_key, table_renderer


def utc_text(seconds: float) -> str:
    """Epoch seconds as `yyyy-MM-ddTHH:mm:ssZ` (fraction dropped)."""
    return _utc_second(int(seconds // 1))


@lru_cache(maxsize=256)  # messages come in runs of one commit second and one clock second
def _utc_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scn_of(change: Change) -> str | None:
    """`meta.scn`: the change's binlog event (`obsync.formats.canal.log_batch_id`) as a decimal string; None off
    the log."""
    return str(log_batch_id(change)) if type(change.position) is LogPosition else None


class _Table:
    """What every message of one table shares, computed once."""

    __slots__ = ("renderer", "key", "name", "row_key")

    def __init__(self, schema: TableSchema, tr: TableRenderer) -> None:
        self.renderer = tr
        self.key: KeyValues | None = tr.message_key_values
        self.name = schema.full_name
        self.row_key = schema.key_columns  # the columns of `key` (empty: the whole before image)


class SharePlexEncoder(Encoder):
    """Encodes changes as SharePlex JSON messages; `clock` gives `posttime`, in epoch seconds (injectable)."""

    name = "shareplex"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tables: TableCache[_Table] = TableCache(lambda schema: _Table(schema, table_renderer(schema)))

    def encode_ddl(self, change: Change, topic: str) -> list[KafkaRecord]:
        return [KafkaRecord(topic, None, self._ddl(change))]

    # heartbeats: none (`encode_heartbeat` gives nothing)

    def encode_row(self, change: Change, table: TableSchema, topic: str) -> list[KafkaRecord]:
        op = change.op
        t = self._tables.get(table)
        if op is Op.INSERT or op is Op.READ:
            return [self._row(topic, t, change, "INSERT", change.after, None)]  # type: ignore[arg-type]  # inserts and snapshot reads have their after image
        before = change.before
        assert before is not None
        prev = t.renderer.render_row(before)
        if t.row_key:
            key: dict[str, Any] = {c: prev.get(c) for c in t.row_key}
        else:
            key = prev
        if op is Op.DELETE:
            return [self._row(topic, t, change, "DELETE", before, key, prev)]
        if op is Op.UPDATE:
            return [self._row(topic, t, change, "UPDATE BEFORE", before, key, prev),
                    self._row(topic, t, change, "UPDATE AFTER", change.after, key)]  # type: ignore[arg-type]  # an update has its after image
        raise ValueError(f"cannot encode a {op!r} change")

    # ------------------------------------------------------------------ parts

    def _row(self, topic: str, t: _Table, change: Change, op: str, row: Mapping[str, Any],
             key: dict[str, Any] | None, rendered: dict[str, Any] | None = None) -> KafkaRecord:
        data = rendered if rendered is not None else t.renderer.render_row(row)
        kafka_key = None
        if t.key is not None:
            kafka_key = json_key(t.key(row))
        pos = change.position
        if type(pos) is LogPosition:
            seq, size = pos.row + 1, None
        else:
            seq, size = 1, 1
        return KafkaRecord(topic, kafka_key, self._message(change, op, t.name, seq, size, data, key))

    def _message(self, change: Change, op: str, table: str | None, seq: int, size: int | None,
                 data: dict[str, Any] | None, key: dict[str, Any] | None) -> bytes:
        commit = change.commit_time
        return dumps({
            "meta": {
                "time": None if commit is None else utc_text(commit),
                "userid": None,
                "op": op,
                "scn": scn_of(change),
                "rowid": None,
                "trans": change.txn,
                "seq": seq,
                "size": size,
                "table": table,
                "idx": None if size is None else f"{seq}/{size}",
                "posttime": utc_text(self._clock()),
            },
            "data": data,
            "key": key,
        })

    def _ddl(self, change: Change) -> bytes:
        statement = change.ddl or ""
        kind = ddl_type(statement)
        op = "TRUNCATE" if kind == "TRUNCATE TABLE" else (kind or "DDL")
        db, name = ddl_table(change, op)  # the first table the statement names
        table = None if name is None else f"{db}.{name}"
        return self._message(change, op, table, 1, 1, {"ddl": statement}, None)


@register("shareplex")
def _build(ctx: EncoderContext, **options: Any) -> SharePlexEncoder:
    """The shareplex format takes no `format_options`."""
    if options:
        raise ConfigError(f"field `format_options.{sorted(options)[0]}`: unknown option of format shareplex; "
                          "valid: (none: this format takes no options)")
    return SharePlexEncoder()


# ---------------------------------------------------------------------- reading back

_SHAREPLEX_OPS = {"INSERT": "insert", "UPDATE AFTER": "insert", "DELETE": "delete", "UPDATE BEFORE": "delete"}


class SharePlexDecoder(Decoder):
    """Reads SharePlex messages: INSERT and UPDATE AFTER add `data`, DELETE and UPDATE BEFORE remove it; DDL
    is skipped. `meta.table` is `db.table`."""

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        if value is None:
            return [SKIP]
        doc = json_object(value, f"a shareplex message of topic {topic}")
        meta = doc.get("meta") or {}
        op = _SHAREPLEX_OPS.get(meta.get("op"))
        if op is None:
            return [SKIP]
        db, _, name = str(meta.get("table") or "").partition(".")
        data = doc.get("data")
        return [Decoded(op, (db, name), data if op == "delete" else None, data if op == "insert" else None)]  # type: ignore[arg-type]  # op is one of _SHAREPLEX_OPS' values


@register_decoder("shareplex")
def _decoder(encoder: Encoder) -> SharePlexDecoder:
    return SharePlexDecoder(encoder)

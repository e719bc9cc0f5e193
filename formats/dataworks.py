"""DataWorks' Kafka message, version 2.0 (docs/formats/README.md, "DataWorks 2.0").

    {"schema": {"dataColumn": [{"name", "type"}], "primaryKey": [...] | null,
                "source": {"dbType", "dbVersion", "dbName", "schemaName", "tableName"[, "businessSystem"]}},
     "payload": {"before": {"dataColumn": {...}} | null, "after": {"dataColumn": {...}} | null,
                 "sequenceId", "timestamp": {"eventTime", "systemTime", "checkpointTime"}, "op", "ddl"},
     "version": "2.0"}

Members appear in that order, nulls included. One message per change, two for an update:
- `op`: `INSERT` (also for rows read by full sync), `UPDATE_BEFORE` then `UPDATE_AFTER`, `DELETE`; DDL
  messages carry the statement's kind under Canal's names, which DataWorks uses (`CREATE`, `ALTER`, `ERASE`,
  `TRUNCATE`, `RENAME`, `CINDEX`, `DINDEX`, `QUERY`; see `obsync.formats.canal.ddl_kind`) and the statement in
  `ddl`; heartbeats are `MHEARTBEAT`. `COMMENT ON ...` and `ALTER TABLE ... TRUNCATE PARTITION` are not sent,
  as OMS documents for this format.
- `before` / `after`: `UPDATE_BEFORE` carries only the before image, `UPDATE_AFTER` only the after image,
  INSERT the after image, DELETE the before image (read an update as the pair). An update of the key
  arrives here as a DELETE and an INSERT (split upstream, see `obsync.steps.routing`).
- `sequenceId`: a 25-digit string that grows along the log (binlog file number, 7 digits; event end offset,
  12; row in the event, 5; then 1 for UPDATE_AFTER, 0 for anything else), unique per message and the same on
  every replay; rows read by full sync all have 25 zeros, so that they sort before any change
  when full and incremental data are merged by it.
- `timestamp`: `eventTime` and `checkpointTime` are the commit time in ms (null for rows read by full sync);
  `systemTime` is the time the message was built, the one member that differs between replays.
- `schema.source`: `dbType` `mysql` or `oceanbase`; `dbVersion` null (the encoder is not told it); `dbName`
  and `schemaName` both the database (MySQL's databases are its schemas); `businessSystem` only when
  `format_options.business_system` is set (1 to 20 characters). `primaryKey`: the key columns (the primary
  key, else the first NOT NULL unique key), null without one. Heartbeats name no table (`dataColumn`,
  `primaryKey` and the table members are null).

Types (`column_type`) are reduced to BOOLEAN, LONG, DOUBLE, STRING, DATE and BYTES, and values are JSON of that type:
- LONG: integers (unsigned BIGINT to 18446744073709551615), YEAR, and BIT wider than 1 (its unsigned value).
- BOOLEAN: BIT(1).
- DOUBLE: FLOAT, DOUBLE and DECIMAL, as JSON numbers written with every digit (`obsync.core.canonical_text` text: FLOAT
  shortest for float32, DECIMAL exact with its scale): a reader that parses numbers as BigDecimal (fastjson
  does) loses nothing; one that reads doubles gets the nearest double.
- DATE: DATE, DATETIME, TIMESTAMP and TIME as 13-digit epoch milliseconds (TIME: the duration in ms;
  DATETIME and DATE read as UTC; fractions below the ms dropped, rounding down). Zero dates
  (`0000-00-00`) are null, as DataWorks' JDBC reader (`zeroDateTimeBehavior=convertToNull`) reads them.
- BYTES: BINARY, VARBINARY, BLOB kinds, binary-charset text and spatial types, in Base64.
- STRING: text kinds, ENUM, SET, JSON (as MySQL prints them) and anything else.

Kafka key: JSON array of `table.message_key_columns` values, as in the Default format; None for DDL,
heartbeats and tables without a key.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

from orjson import Fragment, dumps

from obsync.core.canonical_text import render_bytes, render_function
from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column, TableSchema
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord, TableCache, reject_unknown_options
from obsync.formats.canal import ddl_kind, ddl_table, log_batch_id
from obsync.formats.decoding import SKIP, Decoded, Decoder, json_object
from obsync.formats.registry import register, register_decoder
from obsync.formats.values import KeyValues, json_key, table_renderer
from obsync.sql.ddl import tokenize

VERSION = "2.0"
DB_TYPES = {"OB_MYSQL": "oceanbase", "MYSQL": "mysql"}
_SPATIAL = frozenset({"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                      "multipolygon", "geometrycollection", "geomcollection"})
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = _EPOCH.date()
_UTC = dt.UTC
_SNAPSHOT_SEQUENCE = "0" * 25

Convert = Callable[[Any], Any]


def column_type(column: Column) -> str:
    """The DataWorks type of a column: BOOLEAN, LONG, DOUBLE, STRING, DATE or BYTES."""
    t = column.data_type
    if t in INTEGER_TYPES or t == "year":
        return "LONG"
    if t == "bit":
        return "BOOLEAN" if column.bit_width == 1 else "LONG"
    if t in ("decimal", "numeric", "float", "double", "real", "double precision"):
        return "DOUBLE"
    if t in ("date", "datetime", "timestamp", "time"):
        return "DATE"
    if column.is_binary or t in BINARY_TYPES or t in _SPATIAL:
        return "BYTES"
    return "STRING"


# ---------------------------------------------------------------------------------------------- values


def _bit_int(v: Any) -> int:
    return v if type(v) is int else int.from_bytes(bytes(v), "big")


def _bit_bool(v: Any) -> bool:
    return _bit_int(v) != 0


def _number(column: Column) -> Convert:
    text = render_function(column)  # plain notation, every digit
    return lambda v: Fragment(text(v))


def _epoch_ms(v: Any) -> int | None:
    """DATE / DATETIME (naive, read as UTC) / TIMESTAMP (aware) -> epoch ms; zero dates (strings) -> None."""
    cls = type(v)
    if cls is dt.datetime:
        d = (v.astimezone(_UTC).replace(tzinfo=None) if v.tzinfo is not None else v) - _EPOCH
        return (d.days * 86_400 + d.seconds) * 1000 + d.microseconds // 1000
    if cls is dt.date:
        return (v - _EPOCH_DATE).days * 86_400_000
    if cls is str:
        return None
    raise TypeError(f"not a date or time: {v!r}")


def _duration_ms(v: dt.timedelta) -> int:
    return ((v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds) // 1000


def convert_function(column: Column) -> Convert:
    """The function giving the JSON value of a non-NULL canonical value of `column` (see `column_type`)."""
    kind = column_type(column)
    t = column.data_type
    if kind == "LONG":
        return _bit_int if t == "bit" else int
    if kind == "BOOLEAN":
        return _bit_bool
    if kind == "DOUBLE":
        return _number(column)
    if kind == "DATE":
        return _duration_ms if t == "time" else _epoch_ms
    if kind == "BYTES":
        return lambda v: render_bytes(bytes(v))
    if t in TEXT_TYPES or t in ("json", "enum", "set"):
        return str
    return render_function(column)


# ------------------------------------------------------------------------------------------------- DDL


def is_sent(statement: str) -> bool:
    """False for the DDL this format does not carry: COMMENT ON ..., ALTER TABLE ... TRUNCATE PARTITION."""
    try:
        words = [t.up for t in tokenize(statement)]
    except Exception:  # noqa: BLE001 - unreadable statements are sent, as QUERY
        return True
    if words[:1] == ["COMMENT"]:
        return False
    if words[:1] == ["ALTER"]:
        return not any(a == "TRUNCATE" and b == "PARTITION" for a, b in zip(words, words[1:], strict=False))
    return True


# --------------------------------------------------------------------------------------------- encoder


def sequence_id(change: Change, part: int = 0) -> str:
    """`payload.sequenceId` (see the module docstring); `part` is 1 for an UPDATE_AFTER message."""
    pos = change.position
    if type(pos) is LogPosition:
        return f"{log_batch_id(change):019d}{pos.row:05d}{part}"
    return _SNAPSHOT_SEQUENCE


class _Table:
    """What every message of one table shares, computed once."""

    __slots__ = ("converts", "key", "schema")

    def __init__(self, schema: TableSchema, source: dict[str, Any], extra: dict[str, Any]) -> None:
        self.converts: dict[str, Convert] = {c.name: convert_function(c) for c in schema.columns}
        self.key: KeyValues | None = table_renderer(schema).message_key_values
        self.schema = Fragment(dumps(_schema(schema, source, extra)))


def _schema(schema: TableSchema, source: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataColumn": [{"name": c.name, "type": column_type(c)} for c in schema.columns],
        "primaryKey": list(schema.key_columns) or None,
        "source": {**source, "dbName": schema.db, "schemaName": schema.db, "tableName": schema.name, **extra},
    }


class DataWorksEncoder(Encoder):
    """Encodes changes as DataWorks 2.0 messages.

    `db_type` is `OB_MYSQL` or `MYSQL`; `business_system` (1 to 20 characters) is written to
    `schema.source.businessSystem`; `clock` gives `systemTime`, in epoch seconds (injectable for tests).
    """

    name = "dataworks"

    def __init__(self, *, db_type: str = "MYSQL", business_system: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if db_type not in DB_TYPES:
            raise ConfigError(f"`db_type` {db_type!r} is not valid; valid: {', '.join(DB_TYPES)}")
        if business_system is not None and not (isinstance(business_system, str)
                                                and 1 <= len(business_system) <= 20):
            raise ConfigError(f"field `format_options.business_system`: {business_system!r} is not valid; "
                              "it is a business-system identifier of 1 to 20 characters")
        self.business_system = business_system
        self._source: dict[str, Any] = {"dbType": DB_TYPES[db_type], "dbVersion": None}
        self._source_extra: dict[str, Any] = {} if business_system is None else {"businessSystem": business_system}
        self._clock = clock
        self._tables: TableCache[_Table] = TableCache(
            lambda schema: _Table(schema, self._source, self._source_extra))

    def encode_ddl(self, change: Change, topic: str) -> list[KafkaRecord]:
        statement = change.ddl or ""
        if not is_sent(statement):
            return []
        return [KafkaRecord(topic, None, self._ddl(change, statement))]

    def encode_heartbeat(self, change: Change, topic: str) -> list[KafkaRecord]:
        return [KafkaRecord(topic, None, self._message(
            self._no_table_schema(None, None), None, None, change, None, "MHEARTBEAT"))]

    def encode_row(self, change: Change, table: TableSchema, topic: str) -> list[KafkaRecord]:
        op = change.op
        t = self._tables.get(table)
        if op is Op.INSERT or op is Op.READ:
            return [self._row(topic, t, table, change, None, change.after, "INSERT")]
        if op is Op.DELETE:
            return [self._row(topic, t, table, change, change.before, None, "DELETE")]
        if op is Op.UPDATE:
            return [self._row(topic, t, table, change, change.before, None, "UPDATE_BEFORE"),
                    self._row(topic, t, table, change, None, change.after, "UPDATE_AFTER", part=1)]
        raise ValueError(f"cannot encode a {op!r} change")

    # ------------------------------------------------------------------ parts

    def _row(self, topic: str, t: _Table, schema: TableSchema, change: Change, before: Mapping[str, Any] | None,
             after: Mapping[str, Any] | None, op: str, part: int = 0) -> KafkaRecord:
        row = after if after is not None else before
        assert row is not None
        key = None
        if t.key is not None:
            key = json_key(t.key(row))
        b = None if before is None else {"dataColumn": self._convert(schema, t, before)}
        a = None if after is None else {"dataColumn": self._convert(schema, t, after)}
        return KafkaRecord(topic, key, self._message(t.schema, b, a, change, sequence_id(change, part), op))

    def _message(self, schema: Any, before: Any, after: Any, change: Change, sequence: str | None, op: str,
                 ddl: str | None = None) -> bytes:
        event = None if change.commit_time is None else round(change.commit_time * 1000)
        return dumps({
            "schema": schema,
            "payload": {
                "before": before,
                "after": after,
                "sequenceId": sequence,
                "timestamp": {"eventTime": event, "systemTime": int(self._clock() * 1000), "checkpointTime": event},
                "op": op,
                "ddl": ddl,
            },
            "version": VERSION,
        })

    def _ddl(self, change: Change, statement: str) -> bytes:
        kind = ddl_kind(statement)
        if change.table is not None:
            schema = _schema(change.table, self._source, self._source_extra)
        else:
            schema = self._no_table_schema(*ddl_table(change, kind))
        return self._message(schema, None, None, change, sequence_id(change), kind, statement)

    def _no_table_schema(self, db: str | None, table: str | None) -> dict[str, Any]:
        return {"dataColumn": None, "primaryKey": None,
                "source": {**self._source, "dbName": db, "schemaName": db, "tableName": table,
                           **self._source_extra}}

    @staticmethod
    def _convert(schema: TableSchema, t: _Table, row: Mapping[str, Any]) -> dict[str, Any]:
        converts = t.converts
        try:
            return {k: None if v is None else converts[k](v) for k, v in row.items()}
        except Exception as exc:  # let the common renderer name the column at fault
            table_renderer(schema).render_row(row)
            raise exc


@register("dataworks")
def _build(ctx: EncoderContext, **options: Any) -> DataWorksEncoder:
    """`format_options` of the dataworks format: `business_system` (1 to 20 characters)."""
    reject_unknown_options("dataworks", options, ("business_system",))
    return DataWorksEncoder(db_type=ctx.db_type, **options)


# ---------------------------------------------------------------------- reading back

_DATAWORKS_OPS = {"INSERT": "insert", "UPDATE_AFTER": "insert", "DELETE": "delete", "UPDATE_BEFORE": "delete"}


class DataWorksDecoder(Decoder):
    """Reads DataWorks 2.0 messages: INSERT and UPDATE_AFTER add `after.dataColumn`, DELETE and UPDATE_BEFORE
    remove `before.dataColumn`; DDL and heartbeats are skipped."""

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        if value is None:
            return [SKIP]
        doc = json_object(value, f"a dataworks message of topic {topic}")
        payload = doc.get("payload") or {}
        op = _DATAWORKS_OPS.get(payload.get("op"))
        if op is None:
            return [SKIP]
        source = (doc.get("schema") or {}).get("source") or {}
        before, after = payload.get("before"), payload.get("after")
        return [Decoded(op, (source.get("dbName"), source.get("tableName")),  # type: ignore[arg-type]  # op is one of _DATAWORKS_OPS' values
                        None if before is None else before.get("dataColumn"),
                        None if after is None else after.get("dataColumn"))]


@register_decoder("dataworks")
def _decoder(encoder: Encoder) -> DataWorksDecoder:
    return DataWorksDecoder(encoder)

"""Canal's flat message, as Canal's Kafka producer writes it (docs/formats/README.md, "Canal").

    {"data": [{...}] | null, "database", "es", "gtid", "id", "isDdl", "mysqlType": {...} | null,
     "old": [{...}] | null, "pkNames": [...] | null, "sql", "sqlType": {...} | null, "table", "ts", "type"}

Canal serializes its `FlatMessage` with fastjson (`WriteMapNullValue`), which writes every member, nulls
included, in alphabetical order; so do we, so that a message of ours reads like one of Canal's byte for byte
but for the values below. One message per change: `data` holds one row (Canal puts every row of a binlog
event in one message; readers such as Flink's `canal-json` take each element of `data` in turn either way).

- `type`: `INSERT` (also for rows read by full sync: Canal has no snapshot kind), `UPDATE`, `DELETE`; DDL
  messages carry the kind Canal's DDL parser gives (`ddl_kind`) with `isDdl: true`, the statement in `sql`
  and null `data`, `old`, `mysqlType`, `sqlType`, `pkNames`. Heartbeats are not sent: Canal's producer sends
  none, and Flink's reader fails on a `type` it does not know.
- `data`: the after image (the before image for DELETE). `old`: UPDATE only, the columns whose rendered value
  changed, with their old values (`[{}]` when none did), as Canal does. An update of the key arrives here as a
  DELETE and an INSERT (split upstream, see `obsync.steps.routing`).
- `es`: commit time in ms (0 for rows read by full sync, which have none); `ts`: the time the message was
  built, in ms: the one member that differs between replays (the clock is injectable for tests).
- `id`: Canal's batch id. Ours is the binlog event: `file_number * 10**12 + event_end_offset`, shared by the
  rows of one event, growing along the log, the same on every replay; 0 for rows read by full sync.
- `gtid`: the transaction's GTID, "" when the source has none (as Canal writes it).
- `pkNames`: the key columns (the primary key, else the first NOT NULL unique key, which is what MySQL shows
  as `PRI` and Canal reads); null for a table without one.
- `mysqlType`: column -> declared type (`int(11) unsigned`, `varchar(64)`); `sqlType`: column ->
  `java.sql.Types` code, per declared type (`SQL_TYPES`), as Canal's binlog parser assigns them, with two
  deliberate differences: unsigned integers get the wider type that holds every value (Canal widens only
  the values that overflow the signed type, so its code changes from row to row); ENUM and SET are VARCHAR,
  matching their text (Canal writes the member index and the bit mask, with INTEGER and BIT).

Values are strings or null, from `obsync.formats.values` except where Canal writes otherwise:
- BINARY, VARBINARY, BLOB kinds and binary-charset text: each byte as the character of the same code
  (ISO-8859-1), as Canal writes them, so `value.getBytes(ISO_8859_1)` gives the bytes back. With
  `format_options.binary_encoding: base64` they are Base64 instead, which is what Flink's `canal-json` reader
  decodes into a BYTES column (it reads an ISO-8859-1 value correctly only into a STRING column).
- BIT: the unsigned number the bits make (`b'101'` is `5`), as Canal writes it.
- TIMESTAMP: `yyyy-MM-dd HH:mm:ss[.ffffff]` (fraction to the column's precision) in UTC. Canal prints the
  time in its own JVM's zone; UTC keeps replays identical whatever the machine.
- FLOAT, DOUBLE: shortest round-trip text in plain notation (`1.1`, `100000000000000000000`); Java's
  `toString` would write `1.0E20`. ENUM and SET: their text.

Kafka key: JSON array of `table.message_key_columns` values, as in the Default format (Canal's producer sends
no key); None for DDL and tables without a key.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from orjson import Fragment, dumps

from obsync.core.canonical_text import Render, render_bytes, render_function
from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition, binlog_file_number
from obsync.core.schema import BINARY_TYPES, Column, TableSchema
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord, TableCache, reject_unknown_options
from obsync.formats.decoding import SKIP, Decoded, Decoder, json_object
from obsync.formats.registry import register, register_decoder
from obsync.formats.values import KeyValues, json_key, table_renderer
from obsync.sql.ddl import tokenize

# java.sql.Types codes
BIT, TINYINT, SMALLINT, INTEGER, BIGINT, REAL, DOUBLE, DECIMAL = -7, -6, 5, 4, -5, 7, 8, 3
CHAR, VARCHAR, DATE, TIME, TIMESTAMP, BLOB, CLOB, OTHER = 1, 12, 91, 92, 93, 2004, 2005, 1111

SQL_TYPES: dict[str, int] = {
    "tinyint": TINYINT, "smallint": SMALLINT, "mediumint": INTEGER, "int": INTEGER, "integer": INTEGER,
    "bigint": BIGINT, "decimal": DECIMAL, "numeric": DECIMAL, "float": REAL, "double": DOUBLE, "real": DOUBLE,
    "double precision": DOUBLE, "bit": BIT, "date": DATE, "time": TIME, "datetime": TIMESTAMP,
    "timestamp": TIMESTAMP, "year": VARCHAR, "char": CHAR, "varchar": VARCHAR, "tinytext": CLOB, "text": CLOB,
    "mediumtext": CLOB, "longtext": CLOB, "json": VARCHAR, "enum": VARCHAR, "set": VARCHAR,
    **{t: BLOB for t in BINARY_TYPES},
    **{t: BLOB for t in ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                         "multipolygon", "geometrycollection", "geomcollection")},
}
_UNSIGNED_SQL_TYPES = {"tinyint": SMALLINT, "smallint": INTEGER, "mediumint": INTEGER, "int": BIGINT,
                       "integer": BIGINT, "bigint": DECIMAL}
BINARY_ENCODINGS = ("iso-8859-1", "base64")
_LOG_ID_SCALE = 10**12


def sql_type(column: Column) -> int:
    """The `java.sql.Types` code Canal's `sqlType` gives `column` (see the module docstring)."""
    if column.unsigned and column.data_type in _UNSIGNED_SQL_TYPES:
        return _UNSIGNED_SQL_TYPES[column.data_type]
    if column.is_binary:
        return BLOB
    return SQL_TYPES.get(column.data_type, OTHER)


# ---------------------------------------------------------------------------------------------- values


def _latin1(v: bytes) -> str:
    return v.decode("latin-1")


def _bit_number(v: Any) -> str:
    return str(v if type(v) is int else int.from_bytes(bytes(v), "big"))


def _timestamp_renderer(column: Column) -> Render:
    as_datetime = render_function(Column(column.name, "datetime", "datetime", fsp=column.fsp))
    utc = dt.UTC

    def render(v: Any) -> str:
        if type(v) is dt.datetime and v.tzinfo is not utc and v.tzinfo is not None:
            v = v.astimezone(utc)
        # The DATETIME text stops after the fraction, before any "+00:00"; zero TIMESTAMPs arrive as
        # strings and print like zero DATETIMEs.
        return as_datetime(v)

    return render


def canal_render_function(column: Column, binary: Render = _latin1) -> Render:
    """How Canal writes a non-NULL canonical value of `column` (see the module docstring)."""
    t = column.data_type
    if t == "bit":
        return _bit_number
    if column.is_binary:
        return binary
    if t == "timestamp":
        return _timestamp_renderer(column)
    return render_function(column)


# ------------------------------------------------------------------------------------------------- DDL


def _name_end(toks: list[Any], i: int) -> int:
    """Index after a table name (`t`, `db`.`t`) starting at `toks[i]`."""
    if i + 2 < len(toks) and toks[i + 1].kind == ".":
        return i + 3
    return i + 1


def ddl_kind(statement: str) -> str:
    """The Canal event type of a DDL statement: CREATE, ALTER, ERASE, TRUNCATE, RENAME, CINDEX, DINDEX or QUERY.

    As Canal's DDL parser decides it: CREATE TABLE is CREATE, DROP TABLE is ERASE, TRUNCATE is TRUNCATE,
    RENAME TABLE is RENAME, CREATE INDEX is CINDEX and DROP INDEX DINDEX; an ALTER TABLE takes the kind of
    its first alteration (`RENAME TO` is RENAME; `ADD INDEX/KEY/UNIQUE/FULLTEXT/SPATIAL/PRIMARY KEY` and
    `ADD CONSTRAINT ... UNIQUE/PRIMARY KEY` are CINDEX; `DROP INDEX/KEY` and `DROP CONSTRAINT` are DINDEX;
    anything else ALTER). Every other statement (databases, views, users, ...) is QUERY, and so is one that
    cannot be read.
    """
    try:
        toks = tokenize(statement)
    except Exception:  # noqa: BLE001 - the tokenizer raises its own error types
        return "QUERY"
    words = [t.up for t in toks[:12]]
    if not words:
        return "QUERY"
    verb = words[0]
    rest = [w for w in words[1:6] if w not in ("TEMPORARY", "OR", "REPLACE", "ONLINE", "OFFLINE", "IGNORE")]
    first = rest[0] if rest else ""
    if verb == "CREATE":
        if first == "TABLE":
            return "CREATE"
        if first == "INDEX" or (first in ("UNIQUE", "FULLTEXT", "SPATIAL") and rest[1:2] == ["INDEX"]):
            return "CINDEX"
    elif verb == "DROP":
        if first in ("TABLE", "TABLES"):
            return "ERASE"
        if first == "INDEX":
            return "DINDEX"
    elif verb == "TRUNCATE":
        return "TRUNCATE"
    elif verb == "RENAME" and first in ("TABLE", "TABLES"):
        return "RENAME"
    elif verb == "ALTER" and first == "TABLE":
        return _alter_kind(toks)
    return "QUERY"


def _alter_kind(toks: list[Any]) -> str:
    i = next(k for k, t in enumerate(toks) if t.up == "TABLE") + 1
    if i >= len(toks):
        return "ALTER"
    i = _name_end(toks, i)
    words = [t.up for t in toks[i:i + 4]]
    action = words[0] if words else ""
    what = words[1] if len(words) > 1 else ""
    if action == "RENAME" and what not in ("COLUMN", "INDEX", "KEY"):
        return "RENAME"
    if action == "ADD":
        if what in ("INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "PRIMARY"):
            return "CINDEX"
        if what == "CONSTRAINT" and {"UNIQUE", "PRIMARY"} & set(words[2:4]):
            return "CINDEX"
    if action == "DROP" and what in ("INDEX", "KEY", "CONSTRAINT"):
        return "DINDEX"
    return "ALTER"


def ddl_table(change: Change, kind: str) -> tuple[str | None, str | None]:
    """(database, table) a DDL message names: the first table of the statement, or for RENAME its new name,
    as Canal does; else the tracked table; else the statement's database and no table."""
    names = change.ddl_tables
    if names:
        return names[1] if kind == "RENAME" and len(names) > 1 else names[0]
    if change.table is not None:
        return change.table.db, change.table.name
    return change.ddl_db, None


# --------------------------------------------------------------------------------------------- encoder


_file_number = lru_cache(maxsize=64)(binlog_file_number)


def log_batch_id(change: Change) -> int:
    """Canal's `id` for a change: its binlog event (`file_number * 10**12 + end_offset`), 0 off the log."""
    pos = change.position
    if type(pos) is LogPosition:
        return _file_number(pos.file) * _LOG_ID_SCALE + pos.pos
    return 0


def gtid_of(txn: str | None) -> str:
    """The GTID in a change's transaction identity; "" for the `file:pos` identity of a source without GTIDs."""
    if not txn:
        return ""
    head, sep, tail = txn.rpartition(":")
    if sep and "." in head and tail.isdigit():  # mysql-bin.000042:1234
        return ""
    return txn


class _Table:
    """What every message of one table shares, computed once."""

    __slots__ = ("renders", "key", "database", "table", "pk_names", "mysql_type", "sql_type")

    def __init__(self, schema: TableSchema, binary: Render) -> None:
        self.renders: dict[str, Render] = {c.name: canal_render_function(c, binary) for c in schema.columns}
        self.key: KeyValues | None = table_renderer(schema).message_key_values
        self.database = schema.db
        self.table = schema.name
        self.pk_names = list(schema.key_columns) or None
        self.mysql_type = Fragment(dumps({c.name: c.column_type for c in schema.columns}))
        self.sql_type = Fragment(dumps({c.name: sql_type(c) for c in schema.columns}))


class CanalEncoder(Encoder):
    """Encodes changes as Canal flat messages.

    `binary_encoding` is how binary values are written (`iso-8859-1`, as Canal, or `base64`); `clock` gives
    the time `ts` records, in epoch seconds (injectable so that tests get fixed bytes).
    """

    name = "canal"

    def __init__(self, *, binary_encoding: str = "iso-8859-1", clock: Callable[[], float] = time.time) -> None:
        if binary_encoding not in BINARY_ENCODINGS:
            raise ConfigError(f"field `format_options.binary_encoding`: {binary_encoding!r} is not valid; "
                              f"valid: {', '.join(BINARY_ENCODINGS)}")
        self.binary_encoding = binary_encoding
        self._binary: Render = _latin1 if binary_encoding == "iso-8859-1" else render_bytes
        self._clock = clock
        self._tables: TableCache[_Table] = TableCache(lambda schema: _Table(schema, self._binary))

    def encode_ddl(self, change: Change, topic: str) -> list[KafkaRecord]:
        return [KafkaRecord(topic, None, self._ddl(change))]

    # heartbeats: none (`encode_heartbeat` gives nothing), see the module docstring

    def encode_row(self, change: Change, table: TableSchema, topic: str) -> list[KafkaRecord]:
        op = change.op
        t = self._tables.get(table)
        if op is Op.INSERT or op is Op.READ:
            row = change.after
            data, old, kind = self._render(table, t, row), None, "INSERT"  # type: ignore[arg-type]  # inserts and snapshot reads have their after image
        elif op is Op.DELETE:
            row = change.before
            data, old, kind = self._render(table, t, row), None, "DELETE"  # type: ignore[arg-type]  # a delete has its before image
        elif op is Op.UPDATE:
            row = change.after
            data = self._render(table, t, row)  # type: ignore[arg-type]  # an update has both images
            prev = self._render(table, t, change.before)  # type: ignore[arg-type]  # an update has both images
            old, kind = [{k: v for k, v in prev.items() if k in data and data[k] != v}], "UPDATE"
        else:
            raise ValueError(f"cannot encode a {op!r} change")
        key = None
        if t.key is not None:
            key = json_key(t.key(row))  # type: ignore[arg-type]  # row is set for every op encoded
        value = dumps({
            "data": [data],
            "database": t.database,
            "es": self._es(change),
            "gtid": gtid_of(change.txn),
            "id": log_batch_id(change),
            "isDdl": False,
            "mysqlType": t.mysql_type,
            "old": old,
            "pkNames": t.pk_names,
            "sql": "",
            "sqlType": t.sql_type,
            "table": t.table,
            "ts": int(self._clock() * 1000),
            "type": kind,
        })
        return [KafkaRecord(topic, key, value)]

    def _ddl(self, change: Change) -> bytes:
        statement = change.ddl or ""
        kind = ddl_kind(statement)
        db, table = ddl_table(change, kind)
        return dumps({
            "data": None,
            "database": db or "",
            "es": self._es(change),
            "gtid": gtid_of(change.txn),
            "id": log_batch_id(change),
            "isDdl": True,
            "mysqlType": None,
            "old": None,
            "pkNames": None,
            "sql": statement,
            "sqlType": None,
            "table": table or "",
            "ts": int(self._clock() * 1000),
            "type": kind,
        })

    @staticmethod
    def _es(change: Change) -> int:
        return 0 if change.commit_time is None else round(change.commit_time * 1000)

    @staticmethod
    def _render(schema: TableSchema, t: _Table, row: Mapping[str, Any]) -> dict[str, str | None]:
        renders = t.renders
        try:
            return {k: None if v is None else renders[k](v) for k, v in row.items()}
        except Exception as exc:  # let the common renderer name the column at fault
            table_renderer(schema).render_row(row)
            raise exc


@register("canal")
def _build(ctx: EncoderContext, **options: Any) -> CanalEncoder:
    """`format_options` of the canal format: `binary_encoding` (`iso-8859-1`, the default, or `base64`)."""
    reject_unknown_options("canal", options, ("binary_encoding",))
    return CanalEncoder(**options)



# ---------------------------------------------------------------------- reading back


class CanalDecoder(Decoder):
    """Reads Canal flat messages: INSERT adds `data`, DELETE removes `data`, UPDATE removes `data` overlaid
    with `old` and adds `data` (each element of `data` in turn); DDL (`isDdl`) is skipped."""

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        if value is None:
            return [SKIP]
        doc = json_object(value, f"a canal message of topic {topic}")
        kind = doc.get("type")
        if doc.get("isDdl") or kind not in ("INSERT", "UPDATE", "DELETE"):
            return [SKIP]
        table = (doc.get("database"), doc.get("table"))
        rows = doc.get("data") or []
        olds = doc.get("old") or []
        out: list[Decoded] = []
        for i, row in enumerate(rows):
            if kind == "INSERT":
                out.append(Decoded("insert", table, None, row))  # type: ignore[arg-type]  # names as the message gives them
            elif kind == "DELETE":
                out.append(Decoded("delete", table, row, None))  # type: ignore[arg-type]  # names as the message gives them
            else:
                old = olds[i] if i < len(olds) and isinstance(olds[i], dict) else {}
                out.append(Decoded("update", table, {**row, **old}, row))  # type: ignore[arg-type]  # names as the message gives them
        return out


@register_decoder("canal")
def _decoder(encoder: Encoder) -> CanalDecoder:
    return CanalDecoder(encoder)

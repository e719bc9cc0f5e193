"""OMS's Default serialization: one JSON object per change (docs/formats/README.md, "Default").

    {"prevStruct": {...} | null, "postStruct": {...} | null,
     "allMetaData": {"checkpoint", "record_primary_key", "record_primary_value", "source_identity", "dbType",
                     "storeDataSequence", "table_name", "db", "timestamp", "uniqueId"[, "ddlType"]},
     "recordType": "INSERT" | "UPDATE" | "DELETE" | "ROW" | "DDL" | "HEARTBEAT"}

Members appear in that order in every message; a member that does not apply is null (the before image of
an INSERT, the commit time of a snapshot row, the key of a table without one), never left out, except
`ddlType`, which only DDL messages carry. Values are rendered by `obsync.formats.values`. The same change always
encodes to the same bytes: nothing depends on the clock or on what was encoded before.

- `checkpoint`: incremental, the commit time in epoch seconds; full sync, the row's key values (as
  `record_primary_value`).
- `storeDataSequence`: a JSON integer, the commit second followed by nine digits of the change's binlog
  offset (`commit_seconds * 10**9 + event_end_offset % 10**9`). It sorts changes of one commit second in log
  order and is the same on every replay. Rows of one binlog event share it, as do the two messages an update
  of the key becomes; within one second it goes back only across a binlog file rotation. It fits a signed
  64-bit integer (Java `long`, Go `uint64`), as OMS's `LONG` does; it has more digits than a JavaScript
  number holds exactly.
- `db`: the database, or `tenant.database` when the encoder is given the OceanBase tenant name, as OMS writes
  it for OceanBase sources.
- An UPDATE that changes the row's key (its primary key or its message key) is written as a DELETE of the
  old key followed by an INSERT of the new one, so that every change to one key goes to that key's
  partition.

Kafka key: JSON array of the values of the message key columns (`TableSchema.message_key_columns`: the
object's sharding columns if set, else the primary key, else a non-null unique key): `[42]`, `["a",7]`,
integers as numbers, everything else as the rendered text (`obsync.formats.values.json_key`); None for DDL,
heartbeats and tables without a key; the same bytes are the partition key the Hash rule hashes
(`obsync.steps.partitioning`). `record_primary_key` / `record_primary_value` name the primary key (else the
unique key) whatever the sharding columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition
from obsync.core.schema import TableSchema
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord, TableCache, reject_unknown_options
from obsync.formats.decoding import SKIP, Decoded, Decoder, json_object
from obsync.formats.registry import register, register_decoder
from obsync.formats.values import KeyValues, TableRenderer, json_key, key_render_function, table_renderer


def _json_dumps(obj: Any) -> bytes:
    """The standard library's encoding of `obj`: byte for byte what orjson writes for our messages (tested)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


try:  # about twice as fast through the whole encoder
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover
    _dumps = _json_dumps

KEY_JOINER = "\u0001"
TableMeta = tuple[str | None, str, str | None, KeyValues | None]  # see DefaultEncoder._table_meta
OneImage = Callable[[Change], "tuple[bytes | None, bytes] | None"]  # see DefaultEncoder._one_image_plan
_INSERT, _READ, _DELETE, _UPDATE = Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE
_new_tuple = tuple.__new__
DB_TYPES = {"OB_MYSQL": "OB_MYSQL", "MYSQL": "MYSQL", "oceanbase": "OB_MYSQL", "mysql": "MYSQL", "mariadb": "MYSQL"}
_SEQ_DIGITS = 10**9


class DefaultEncoder(Encoder):
    """Encodes changes as OMS Default JSON messages.

    `task_name` is the default `source_identity`; `db_type` is `OB_MYSQL` or `MYSQL` (the source kinds
    `oceanbase`, `mysql` and `mariadb` are accepted too); `tenant`, for OceanBase sources, makes `db`
    read `tenant.database` as OMS writes it.
    """

    name = "default"
    key_is_partition_key = True  # its Kafka key is the JSON array of the message key values (a test pins it)

    def __init__(
        self,
        task_name: str,
        *,
        source_identity: str | None = None,
        db_type: str = "MYSQL",
        tenant: str | None = None,
    ) -> None:
        if db_type not in DB_TYPES:
            raise ConfigError(f"`db_type` {db_type!r} is not valid; valid: {', '.join(DB_TYPES)}")
        self.source_identity = task_name if source_identity is None else source_identity
        self.db_type = DB_TYPES[db_type]
        self.tenant = tenant or None
        self._tables: TableCache[TableMeta] = TableCache(self._new_table_meta)
        # inserts, snapshot rows and deletes in one pass per table (`_one_image_plan`), unless a subclass
        # reshapes row messages (`_row`)
        self._one_image: TableCache[OneImage] | None = (
            TableCache(self._one_image_plan) if type(self)._row is DefaultEncoder._row else None)

    # ------------------------------------------------------------------ public

    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        op = change.op
        plans = self._one_image
        if plans is not None and (op is _INSERT or op is _READ or op is _DELETE or op is _UPDATE):
            table = change.table
            if table is not None:
                one = plans.get(table)(change)
                if one is not None:
                    return [_new_tuple(KafkaRecord, (topic, *one))]  # without the named tuple's Python __new__
        return super().encode(change, topic)

    def encode_ddl(self, change: Change, topic: str) -> list[KafkaRecord]:
        return [KafkaRecord(topic, None, self._ddl(change))]

    def encode_heartbeat(self, change: Change, topic: str) -> list[KafkaRecord]:
        return [KafkaRecord(topic, None, self._message(change, "HEARTBEAT", None, None, None, None, None))]

    def encode_row(self, change: Change, table: TableSchema, topic: str) -> list[KafkaRecord]:
        op = change.op
        tr = table_renderer(table)
        if op is Op.INSERT or op is Op.READ:
            record_type = "INSERT" if op is Op.INSERT else "ROW"
            return [KafkaRecord(topic, *self._row(change, tr, record_type, None, change.after))]
        if op is Op.DELETE:
            return [KafkaRecord(topic, *self._row(change, tr, "DELETE", change.before, None))]
        if op is Op.UPDATE:
            before, after = change.before, change.after
            keys = tr.key_columns
            mkeys = tr.schema.message_key_columns
            if any(before[c] != after[c] for c in keys) or (  # type: ignore[index]  # an update has both images
                    mkeys is not keys and any(before[c] != after[c] for c in mkeys)):  # type: ignore[index]  # an update has both images
                old = self._row(change, tr, "DELETE", before, None)
                new = self._row(change, tr, "INSERT", None, after)
                # keys equal once rendered (1.0 -> 1.00) stay one update
                if old[0] != new[0] or (keys and tr.key_json_values(before) != tr.key_json_values(after)):
                    return [KafkaRecord(topic, *old), KafkaRecord(topic, *new)]
            return [KafkaRecord(topic, *self._row(change, tr, "UPDATE", before, after))]
        raise ValueError(f"cannot encode a {op!r} change")

    # ------------------------------------------------------------------ parts

    def _row(
        self,
        change: Change,
        tr: TableRenderer,
        record_type: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> tuple[bytes | None, bytes]:
        """(Kafka key, message) of a row change."""
        prev = None if before is None else tr.render_row(before)
        post = None if after is None else tr.render_row(after)
        names, table_name, db, message_key = self._table_meta(tr)
        values = key = None
        if names is not None:
            values = tr.key_text(post if post is not None else prev, KEY_JOINER)  # type: ignore[arg-type]  # a row change has one of its images
        if message_key is not None:
            key = json_key(message_key(after if after is not None else before))  # type: ignore[arg-type]  # a row change has one of its images
        return key, self._message(change, record_type, prev, post, names, values, (table_name, db))

    def _message(
        self,
        change: Change,
        record_type: str,
        prev: dict[str, Any] | None,
        post: dict[str, Any] | None,
        key_names: str | None,
        key_values: str | None,
        where: tuple[str | None, str | None] | None,
        ddl_type: str | None = None,
    ) -> bytes:
        commit = change.commit_time
        if record_type == "ROW":
            checkpoint = key_values
            timestamp = sequence = None
        else:
            timestamp = None if commit is None else str(int(commit))
            checkpoint = timestamp
            pos = change.position
            sequence = (
                int(commit) * _SEQ_DIGITS + pos.pos % _SEQ_DIGITS
                if commit is not None and type(pos) is LogPosition
                else None
            )
        table_name, db = where if where is not None else (None, None)
        meta = {
            "checkpoint": checkpoint,
            "record_primary_key": key_names,
            "record_primary_value": key_values,
            "source_identity": self.source_identity,
            "dbType": self.db_type,
            "storeDataSequence": sequence,
            "table_name": table_name,
            "db": db,
            "timestamp": timestamp,
            "uniqueId": change.txn,
        }
        if ddl_type is not None:
            meta["ddlType"] = ddl_type
        return _dumps({"prevStruct": prev, "postStruct": post, "allMetaData": meta, "recordType": record_type})

    def _ddl(self, change: Change) -> bytes:
        statement = change.ddl or ""
        if change.table is not None:
            db, table_name = change.table.db, change.table.name
        elif change.ddl_tables:
            db, table_name = change.ddl_tables[0]
        else:
            db, table_name = change.ddl_db, None
        return self._message(
            change, "DDL", None, {"ddl": statement}, None, None, (table_name, self._db(db)), ddl_type(statement)
        )

    def _one_image_plan(self, schema: TableSchema) -> OneImage:
        """(Kafka key, message) of an INSERT, a snapshot row, a DELETE or an UPDATE that keeps its key of
        `schema`'s table, in one call: what `encode_row` -> `_row` -> `_message` make of them, byte for byte (a unit
        test compares the two on every kind of change), with the table's constants bound once; None for an UPDATE
        that changes its key (`encode_row` splits it). The message is written by the compiled JSON template when
        there is one (`TableRenderer.json_template`); a change it refuses takes the dict and orjson path, which
        writes the same bytes or raises the error that names the column at fault."""
        tr = table_renderer(schema)
        names, table_name, db, message_key = self._new_table_meta(schema)
        render = tr.render_row
        key_cols = tr.key_columns
        k0 = key_cols[0] if len(key_cols) == 1 else None
        key_renders = tuple((c, tr.renders[c]) for c in key_cols)
        # a message key of one integer column: `json_key` of an int value `v` is `[v]`, written here directly
        mk = schema.message_key_columns
        int_key = mk[0] if message_key is not None and len(mk) == 1 and \
            key_render_function(schema.column(mk[0])) is int else None
        source_identity, db_type = self.source_identity, self.db_type
        dumps = _dumps
        template = tr.json_template(tuple(_dumps_fragments(names, source_identity, db_type, table_name, db)))

        def message(prev: dict[str, Any] | None, post: dict[str, Any] | None, record_type: str, values: str | None,
                    checkpoint: str | None, sequence: int | None, timestamp: str | None, txn: str | None) -> bytes:
            return dumps({"prevStruct": prev, "postStruct": post, "allMetaData": {
                "checkpoint": checkpoint,
                "record_primary_key": names,
                "record_primary_value": values,
                "source_identity": source_identity,
                "dbType": db_type,
                "storeDataSequence": sequence,
                "table_name": table_name,
                "db": db,
                "timestamp": timestamp,
                "uniqueId": txn,
            }, "recordType": record_type})

        mkey_cols = mk if mk is not key_cols else ()

        def encode(change: Change) -> tuple[bytes | None, bytes] | None:
            op = change.op
            before = None
            if op is _DELETE:
                row = change.before
                record_type = "DELETE"
            elif op is _UPDATE:
                before, row = change.before, change.after
                for c in key_cols:
                    if before[c] != row[c]:  # type: ignore[index]  # an update has both images
                        return None
                for c in mkey_cols:
                    if before[c] != row[c]:  # type: ignore[index]  # an update has both images
                        return None
                record_type = "UPDATE"
            else:
                row = change.after
                record_type = "INSERT" if op is _INSERT else "ROW"
            if int_key is not None and (v := row[int_key]).__class__ is int:  # type: ignore[index]  # a row change has its image
                key = b"[%d]" % v
            else:
                key = None if message_key is None else json_key(message_key(row))  # type: ignore[arg-type]  # see above
            if record_type == "ROW":
                timestamp = sequence = None
            else:
                commit = change.commit_time
                if commit is None:
                    timestamp = sequence = None
                else:
                    timestamp = str(int(commit))
                    pos = change.position
                    sequence = (int(commit) * _SEQ_DIGITS + pos.pos % _SEQ_DIGITS
                                if type(pos) is LogPosition else None)
            if template is not None:
                try:
                    values = None
                    if names is not None:
                        if k0 is not None:
                            v0 = row[k0]  # type: ignore[index]  # see above
                            values = None if v0 is None else key_renders[0][1](v0)
                        else:
                            values = KEY_JOINER.join([None if (v := row[c]) is None else r(v)  # type: ignore[misc,index]  # as below
                                                      for c, r in key_renders])
                    checkpoint = values if record_type == "ROW" else timestamp
                    if record_type == "DELETE":
                        return key, template(row, None, checkpoint, values, sequence, timestamp, change.txn,
                                             record_type)
                    return key, template(before, row, checkpoint, values, sequence, timestamp, change.txn,
                                         record_type)
                except Exception:  # noqa: BLE001, S110 - the path below writes the same bytes or raises what is wrong
                    pass
            rendered = render(row)  # type: ignore[arg-type]  # a row change has its image
            values = None
            if names is not None:
                values = rendered[k0] if k0 is not None else KEY_JOINER.join(rendered[c] for c in key_cols)  # type: ignore[misc]  # key columns are NOT NULL
            checkpoint = values if record_type == "ROW" else timestamp
            if record_type == "DELETE":
                return key, message(rendered, None, record_type, values, checkpoint, sequence, timestamp, change.txn)
            prev = None if before is None else render(before)
            return key, message(prev, rendered, record_type, values, checkpoint, sequence, timestamp, change.txn)

        return encode

    def _table_meta(self, tr: TableRenderer) -> TableMeta:
        """(record_primary_key, table_name, db, message key function) of a table."""
        return self._tables.get(tr.schema)

    def _new_table_meta(self, schema: TableSchema) -> TableMeta:
        tr = table_renderer(schema)
        names = KEY_JOINER.join(tr.key_columns) if tr.key_columns else None
        return names, schema.name, self._db(schema.db), tr.message_key_values

    def _db(self, db: str | None) -> str | None:
        if db is None or self.tenant is None:
            return db
        return f"{self.tenant}.{db}"


def _dumps_fragments(names: str | None, source_identity: str, db_type: str, table_name: str,
                     db: str | None) -> list[bytes]:
    """The constant parts of a row message of one table, between its per-change values: prevStruct, postStruct,
    checkpoint, record_primary_value, storeDataSequence, timestamp, uniqueId and recordType (the order and
    spelling of `DefaultEncoder._message`)."""
    return [b'{"prevStruct":', b',"postStruct":', b',"allMetaData":{"checkpoint":',
            b',"record_primary_key":' + _dumps(names) + b',"record_primary_value":',
            b',"source_identity":' + _dumps(source_identity) + b',"dbType":' + _dumps(db_type)
            + b',"storeDataSequence":',
            b',"table_name":' + _dumps(table_name) + b',"db":' + _dumps(db) + b',"timestamp":',
            b',"uniqueId":', b'},"recordType":', b"}"]


# ---------------------------------------------------------------------- DDL kind

_COMMENT = re.compile(r"/\*(?!!)[\s\S]*?\*/|(?:--[ \t]|#)[^\n]*")
_EXECUTABLE_COMMENT = re.compile(r"/\*!\d*([\s\S]*?)\*/")
_QUOTED = re.compile(r"`[^`]*`|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_OPTION = re.compile(r"\b(?:DEFINER|ALGORITHM)\s*=\s*\S+", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_OBJECTS = frozenset(
    "TABLE INDEX VIEW DATABASE SCHEMA TRIGGER PROCEDURE FUNCTION EVENT USER ROLE SEQUENCE TABLESPACE SERVER "
    "TABLEGROUP TENANT SYNONYM OUTLINE PACKAGE TYPE RESOURCE LOGFILE".split()
)
_MODIFIERS = frozenset(
    "OR REPLACE TEMPORARY UNIQUE FULLTEXT SPATIAL ONLINE OFFLINE IGNORE SQL SECURITY DEFINER INVOKER "
    "AGGREGATE GLOBAL LOCAL EXTERNAL NO_WRITE_TO_BINLOG".split()
)


def ddl_type(statement: str) -> str:
    """The kind of a DDL statement, as `ddlType` names it: `ALTER TABLE`, `CREATE INDEX`, `TRUNCATE TABLE`.

    The verb and the kind of object it acts on; modifiers between them (`OR REPLACE`, `TEMPORARY`,
    `UNIQUE`, `DEFINER=...`) are skipped, comments ignored and MySQL's executable comments read. A
    statement whose verb is not followed by an object word gives the verb alone (`GRANT`), except
    `TRUNCATE t`, which is `TRUNCATE TABLE`; an empty statement gives "".
    """
    head = _EXECUTABLE_COMMENT.sub(r" \1 ", _COMMENT.sub(" ", statement[:2000]))
    head = _OPTION.sub(" ", _QUOTED.sub(" ? ", head))
    words = _WORD.findall(head, 0, 400)
    if not words:
        return ""
    verb = words[0].upper()
    for word in words[1:8]:
        word = word.upper()
        if word in _OBJECTS:
            return f"{verb} {word}"
        if word not in _MODIFIERS:
            break
    return "TRUNCATE TABLE" if verb == "TRUNCATE" else verb


@register("default")
def _build(ctx: EncoderContext, **options: Any) -> DefaultEncoder:
    """`format_options` of the default format: `source_identity` (default the task name), `tenant` (written as
    `tenant.database` in `db`, as OMS does for OceanBase sources)."""
    reject_unknown_options("default", options, ("source_identity", "tenant"))
    return DefaultEncoder(ctx.task_name, db_type=ctx.db_type, **options)



# ---------------------------------------------------------------------- reading back

_DEFAULT_OPS = {"INSERT": "insert", "ROW": "insert", "UPDATE": "update", "DELETE": "delete"}


class DefaultDecoder(Decoder):
    """Reads Default messages: `recordType` INSERT/ROW add `postStruct`, DELETE removes `prevStruct`, UPDATE
    does both; DDL and HEARTBEAT are skipped. `drop` names members of `postStruct` that are not columns."""

    def __init__(self, encoder: Encoder, drop: str | None = None) -> None:
        super().__init__(encoder)
        self.drop = drop

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        if value is None:
            return [SKIP]
        doc = json_object(value, f"a {self.encoder.name} message of topic {topic}")
        op = _DEFAULT_OPS.get(doc.get("recordType"))  # type: ignore[arg-type]  # any JSON value; unknown: skipped
        if op is None:
            return [SKIP]
        meta = doc.get("allMetaData") or {}
        before, after = doc.get("prevStruct"), doc.get("postStruct")
        if self.drop is not None and isinstance(after, dict):
            after = {k: v for k, v in after.items() if k != self.drop}
        return [Decoded(op, (meta.get("db"), meta.get("table_name")),  # type: ignore[arg-type]  # op is one of _DEFAULT_OPS' values
                        before if op != "insert" else None, after if op != "delete" else None)]


@register_decoder("default")
def _decoder(encoder: Encoder) -> DefaultDecoder:
    return DefaultDecoder(encoder)

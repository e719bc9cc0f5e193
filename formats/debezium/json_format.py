"""The `debezium` format: Debezium MySQL connector change events as Kafka Connect's JsonConverter writes them.

With `schemas_enable: true` (the default, as in Kafka Connect) key and value are each
`{"schema": <Connect schema>, "payload": <struct>}`; with `false` they are the bare payloads (that is the
`debezium_flatten` format). A null key (table without key columns, truncate events) and a null value
(tombstones) are Kafka nulls. Schema-change events go to the `<topic_prefix>` topic (`extra_topics()`).
See `obsync.formats.debezium.envelope` for what each change becomes and `obsync.formats.debezium.connect_schema` /
`obsync.formats.debezium.values` for the schemas and values.

Each table's schemas are serialized once; a message is the cached schema bytes spliced around the payload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from obsync.core.changes import Change, Op
from obsync.core.schema import TableSchema
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord, TableCache
from obsync.formats.debezium import connect_schema as cs
from obsync.formats.debezium.config import COMMON_OPTIONS, DebeziumConfig, parse_options
from obsync.formats.debezium.envelope import Event, EventBuilder, decode_envelope, source_values
from obsync.formats.decoding import Decoded, Decoder, load_json
from obsync.formats.registry import register, register_decoder


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


try:  # the same bytes as the standard library for these documents, faster
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover
    _dumps = _json_dumps

try:  # built by `pip install` when a C compiler is there (setup.py)
    from obsync.core._render import JsonTemplate as _JsonTemplate
except ImportError:  # pragma: no cover - installed without a C compiler
    _JsonTemplate = None

_ROW_OPS = frozenset((Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE))
_new_tuple = tuple.__new__
_KEY_INTS = range(-(2**63), 2**64)  # the integers orjson writes (as `%d` writes them); others take the general path


class DebeziumEncoder(Encoder):
    """Debezium change events through the JsonConverter, with or without schemas (`cfg.schemas_enable`)."""

    name = "debezium"
    # whether the events' rows may be pre-written JSON (`EventBuilder.fragments`): only the serialized messages
    # are used (a subclass that reads the rows, `debezium_smt`, sets it False)
    row_fragments = True

    def __init__(self, cfg: DebeziumConfig, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        self.builder = EventBuilder(cfg, json_values=True, clock=clock,
                                    fragments=self.row_fragments and _dumps is not _json_dumps)
        # row changes in one pass (`_encode_row_fast`) when the compiled parts are there and a subclass changes
        # neither the events nor their records
        fast = (self.builder.fragments and _JsonTemplate is not None and type(self).record is DebeziumEncoder.record
                and type(self).wrap is DebeziumEncoder.wrap and type(self).encode is DebeziumEncoder.encode)
        self._template = _JsonTemplate if fast else None
        self._templates: TableCache[Any] = TableCache(self._table_templates)
        self._sc_key = _dumps(cs.schema_change_key_schema())
        self._sc_value = _dumps(cs.schema_change_value_schema())

    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        if self._template is not None and change.table is not None and change.op in _ROW_OPS:
            records = self._encode_row_fast(change, change.table, topic)
            if records is not None:
                return records
        return [self.record(e, topic) for e in self.builder.encode(change, topic)]

    def _encode_row_fast(self, change: Change, table: TableSchema, topic: str) -> list[KafkaRecord] | None:
        """The records of a row change as `builder` + `record` make them, byte for byte (a unit test compares
        the two), in one pass: the value written by a compiled JSON template of the table's constant parts, the
        rows by the compiled row writer. None (the general path then encodes it) for an UPDATE of the message key
        and for a row the writer refuses."""
        builder = self.builder
        plan = builder.plan(table)
        template, key_column, key_head, key_tail = self._templates.get(table)
        op = change.op
        before = after = b = a = None
        if op is Op.DELETE:
            before = image = change.before
            b = plan.row_json_bytes(before)  # type: ignore[arg-type]  # a delete has its before image
            if b is None:
                return None
            code = "d"
        else:
            after = image = change.after
            a = plan.row_json_bytes(after)  # type: ignore[arg-type]  # an insert, read or update has its after image
            if a is None:
                return None
            if op is Op.UPDATE:
                before = change.before
                b = plan.row_json_bytes(before)  # type: ignore[arg-type]  # an update has both images
                if b is None:
                    return None
                code = "u"
            else:
                code = "c" if op is Op.INSERT else "r"
        if key_column is not None and type(v := image.get(key_column)) is int and v in _KEY_INTS:  # type: ignore[union-attr]
            if code == "u" and before.get(key_column) != v:  # type: ignore[union-attr]  # an update of the message key
                return None
            key: bytes | None = b"%s%d%s" % (key_head, v, key_tail)
        else:
            key_struct = plan.key(image, True)  # type: ignore[arg-type]  # see above
            if code == "u" and plan.key(before, True) != key_struct:  # type: ignore[arg-type]  # see above
                return None
            key = None if key_struct is None else self.wrap(plan.schema_json("key", _dumps), key_struct)
        now = builder.clock()
        ts_us, snapshot, file, offset, row, server_id, gtid = source_values(change, now)
        try:
            value = template(b, a, ts_us // 1_000, snapshot, ts_us, ts_us * 1_000, server_id, gtid, file, offset, row,
                             code, now // 1_000_000, now // 1_000, now)
        except Exception:  # noqa: BLE001 - an int beyond 64 bits: the general path writes it
            return None
        out = [_new_tuple(KafkaRecord, (topic, key, value))]
        if code == "d" and self.cfg.tombstones_on_delete:
            out.append(_new_tuple(KafkaRecord, (topic, key, None)))
        return out

    def _table_templates(self, table: TableSchema) -> tuple[Any, str | None, bytes, bytes]:
        """A table's change-event value as a compiled JSON template (JsonTemplate, `obsync/core/_render.c`): the
        envelope of `EventBuilder.envelope` and the `source` block of `EventBuilder.source`, members in their
        order, with the per-change values as slots; and its message key's column, head and tail when the key is
        one column written as the integer it holds (its bytes then are head, the integer, tail), else None."""
        plan = self.builder.plan(table)
        key_column, key_head, key_tail = None, b"", b""
        if plan.key_is_one_plain_column():
            key_column = plan.key_names[0]
            key_head = b"{" + _dumps(key_column) + b":"
            key_tail = b"}"
            if self.cfg.schemas_enable:
                key_head = b'{"schema":' + plan.schema_json("key", _dumps) + b',"payload":' + key_head
                key_tail = b"}}"
        source = (b',"source":{"version":' + _dumps(cs.DEBEZIUM_VERSION) + b',"connector":' + _dumps(cs.CONNECTOR)
                  + b',"name":' + _dumps(self.cfg.topic_prefix) + b',"ts_ms":')
        head = (b'{"schema":' + plan.schema_json("envelope", _dumps) + b',"payload":{"before":'
                if self.cfg.schemas_enable else b'{"before":')
        fragments = (head, b',"after":', source, b',"snapshot":',
                     b',"db":' + _dumps(table.db or "") + b',"sequence":null,"ts_us":', b',"ts_ns":',
                     b',"table":' + _dumps(table.name) + b',"server_id":', b',"gtid":', b',"file":', b',"pos":',
                     b',"row":', b',"thread":null,"query":null},"transaction":null,"op":', b',"ts_ms":', b',"ts_us":',
                     b',"ts_ns":', b"}}" if self.cfg.schemas_enable else b"}")
        return _JsonTemplate(fragments, None), key_column, key_head, key_tail

    def extra_topics(self) -> list[str]:
        return [self.cfg.topic_prefix] if self.cfg.include_schema_changes else []

    def snapshot_ddl(self) -> bool:
        return self.cfg.include_schema_changes

    def records_outweigh_rows(self) -> bool:
        return self.cfg.schemas_enable  # the Connect schema: about 3.5 KB of a 4.2 KB value

    def record(self, e: Event, topic: str) -> KafkaRecord:
        """The Kafka record of one event."""
        if e.kind == "schema_change":
            return KafkaRecord(self.cfg.topic_prefix, self.wrap(self._sc_key, e.key),
                               self.wrap(self._sc_value, e.value))
        plan = e.plan
        assert plan is not None
        key = None if e.key is None else self.wrap(plan.schema_json("key", _dumps), e.key)
        value = None if e.value is None else self.wrap(plan.schema_json("envelope", _dumps), e.value)
        return KafkaRecord(topic, key, value)

    def wrap(self, schema_json: bytes, payload: Any) -> bytes:
        """`{"schema":..., "payload":...}` with schemas, else the payload alone."""
        if self.cfg.schemas_enable:
            return b'{"schema":%s,"payload":%s}' % (schema_json, _dumps(payload))
        return _dumps(payload)


@register("debezium")
def _build(ctx: EncoderContext, **options: Any) -> DebeziumEncoder:
    """`format_options`: see `obsync.formats.debezium.config`; `schemas_enable` defaults to true."""
    return DebeziumEncoder(parse_options("debezium", ctx.task_name, options,
                                         COMMON_OPTIONS + ("truncate_events", "schemas_enable")))


# ---------------------------------------------------------------------- reading back


class DebeziumDecoder(Decoder):
    """Reads Debezium JSON events (`{schema, payload}` or bare payloads): `c`/`r` add `after`, `d` removes
    `before`, `u` does both, `t` (truncate) empties the table; a tombstone removes its key's row; schema-change
    events are skipped."""

    encoder: DebeziumEncoder

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        what = f"a {self.encoder.name} message of topic {topic}"
        k = None if key is None else self.payload(load_json(key, what + " (key)"))
        v = None if value is None else self.payload(load_json(value, what))
        return self.rows(k, v)

    def payload(self, doc: Any) -> Any:
        if self.encoder.cfg.schemas_enable and isinstance(doc, dict) and "payload" in doc:
            return doc["payload"]
        return doc

    def rows(self, key: Any, value: Any) -> list[Decoded]:
        return decode_envelope(value, key)


@register_decoder("debezium")
def _decoder(encoder: Encoder) -> DebeziumDecoder:
    return DebeziumDecoder(encoder)

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

from obsync.core.changes import Change
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord
from obsync.formats.debezium import connect_schema as cs
from obsync.formats.debezium.config import COMMON_OPTIONS, DebeziumConfig, parse_options
from obsync.formats.debezium.envelope import Event, EventBuilder, decode_envelope
from obsync.formats.decoding import Decoded, Decoder, load_json
from obsync.formats.registry import register, register_decoder


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


try:  # the same bytes as the standard library for these documents, faster
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover
    _dumps = _json_dumps


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
        self._sc_key = _dumps(cs.schema_change_key_schema())
        self._sc_value = _dumps(cs.schema_change_value_schema())

    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        return [self.record(e, topic) for e in self.builder.encode(change, topic)]

    def extra_topics(self) -> list[str]:
        return [self.cfg.topic_prefix] if self.cfg.include_schema_changes else []

    def snapshot_ddl(self) -> bool:
        return self.cfg.include_schema_changes

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

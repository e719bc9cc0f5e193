"""The `avro` format: the Debezium envelope's content (docs/formats/README.md, "Debezium") encoded with Avro.

Each change becomes the records the Debezium format writes (`obsync.formats.debezium.envelope`: a key struct and an
`<prefix>.<db>.<table>.Envelope` value; a tombstone after a delete; schema-change events in the `<topic_prefix>`
topic), with key and value each written in Avro binary (fastavro) under the Avro schema Confluent's
AvroConverter makes of the Debezium Connect schema (`obsync.formats.avro.schemas`). A tombstone keeps a null value;
a record without key (a table without key columns) a null key.

Two modes:
- **With a schema registry** (`schema_registry.url`): Confluent's wire format (`0x00`, 4-byte big-endian
  schema id, Avro binary). Schemas are registered under the topic's subjects `<topic>-key` and `<topic>-value`
  (TopicNameStrategy) the first time the process meets them. After a DDL the table's next change carries a new
  schema: a new column is an optional field with default null, a BACKWARD-compatible change the registry
  accepts as the subject's next version; a change the subject's compatibility level refuses stops the task
  with `IncompatibleSchemaError`, which says how to go on. With the `compatible` schema-change policy, a new
  value schema is first checked with the registry; when its level refuses it, the smallest compatible shape
  (`obsync.formats.avro.compat`) is registered and written instead, and the task stops only when no shape is
  compatible, saying which fields are at fault and the choices.
- **Without one**: Avro single-object encoding (`0xC3 0x01`, the schema's 8-byte CRC-64-AVRO fingerprint,
  Avro binary). Each schema is written once per process to the schema topic (`schema_topic`, default
  `<topic_prefix>.schemas`), key the fingerprint as 16 hexadecimal digits, value the full schema JSON, before
  the first message that uses it. A consumer reads that topic into fingerprint -> schema and decodes each
  message with the schema of its fingerprint (docs/formats/avro.md).

Encoding never depends on what was encoded before except for this: the registry's ids, and whether the schema
record was already written by this process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.schema import TableSchema
from obsync.formats.avro.compat import compatible_shape
from obsync.formats.avro.errors import IncompatibleSchemaError
from obsync.formats.avro.plan import compile_writer, is_compiled
from obsync.formats.avro.registry import SchemaRegistryClient, schema_text
from obsync.formats.avro.schemas import (
    LOGICAL_TYPE_MODES,
    Convert,
    avro_schema,
    datum_converter,
    decimal_bytes,
    renames_fields,
)
from obsync.formats.avro.wire import AvroWriter, confluent_header, fingerprint, single_object_header
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord
from obsync.formats.debezium import connect_schema as cs
from obsync.formats.debezium.config import COMMON_OPTIONS, DebeziumConfig, parse_options
from obsync.formats.debezium.envelope import ENVELOPE_FIELDS, SOURCE_FIELDS, EventBuilder
from obsync.formats.registry import register
from obsync.task.naming import topic_problem

log = logging.getLogger(__name__)

DEBEZIUM_OPTIONS = (*COMMON_OPTIONS, "truncate_events")
_ROW_OPS = frozenset((Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE))
AVRO_OPTIONS = ("schema_registry", "schema_topic", "logical_types")
REGISTRY_KEYS = ("url", "user", "password")


@dataclass(frozen=True, slots=True)
class _Writer:
    """How one Connect schema is written: its Avro writer (header included) and its value converter; and
    `direct`, the schema's compiled writer taking Connect values as they are (Decimals converted in place, no
    copies), when the converter would only convert Decimals and name union branches."""

    connect: dict[str, Any]  # held so that its id() is not reused while cached
    writer: AvroWriter
    convert: Convert | None
    fingerprint: bytes  # registry-less mode: the schema's fingerprint, and its record for the schema topic
    text: str
    schema_record: KafkaRecord | None
    direct: Callable[[Any], bytes] | None = None
    # `direct` is the compiled writer and the schema is a Debezium envelope whose members and `source` block's are
    # in `EventBuilder.envelope_tuple`'s order: it takes that tuple (`_encode_row`)
    tuples: bool = False

    def write(self, value: Any) -> bytes:
        direct = self.direct
        if direct is not None:
            try:
                return self.writer.header + direct(value)
            except Exception:  # noqa: BLE001 - what it does not write (or fails on) takes the converter's way
                pass
        return self.writer.write(value if self.convert is None else self.convert(value))


def _direct(connect: dict[str, Any], writer: AvroWriter) -> Callable[[Any], bytes] | None:
    """The compiled writer of Connect values of `connect` (see `_Writer`), or None."""
    if writer.fast is None or renames_fields(connect):
        return None
    return compile_writer(writer.parsed, decimal_bytes, _repeats)


def _takes_tuples(parsed: Any, direct: Callable[[Any], bytes] | None) -> bool:
    """Whether `direct` writes a Debezium envelope of schema `parsed` from `EventBuilder.envelope_tuple`."""
    if not is_compiled(direct) or not isinstance(parsed, dict):
        return False
    fields = parsed.get("fields") or []
    if tuple(f.get("name") for f in fields) != ENVELOPE_FIELDS:
        return False
    source = fields[ENVELOPE_FIELDS.index("source")].get("type")
    return isinstance(source, dict) and tuple(f.get("name") for f in source.get("fields") or []) == SOURCE_FIELDS


def _repeats(record: str, field: str) -> bool:
    """String fields whose values recur from change to change: the `source` block's (constants, the database,
    table and binlog file names, `snapshot`) and the envelope's `op`."""
    return record == "io.debezium.connector.mysql.Source" or (field == "op" and record.endswith(".Envelope"))


class AvroEncoder(Encoder):
    """Encodes changes as Avro Debezium records; `registry` None selects single-object encoding."""

    name = "avro"

    def __init__(self, cfg: DebeziumConfig, registry: SchemaRegistryClient | None = None, *,
                 schema_topic: str | None = None, logical_types: str = "connect",
                 clock: Callable[[], int] = time.time_ns, schema_changes: str = "evolve") -> None:
        self.cfg = cfg
        self.compatible = schema_changes == "compatible" and registry is not None
        self.registry = registry
        self.schema_topic = schema_topic or f"{cfg.topic_prefix}.schemas"
        self.logical_types = logical_types
        self._events = EventBuilder(cfg, json_values=False, clock=clock)
        self._writers: dict[tuple[str, str, int], _Writer] = {}
        self._published: dict[bytes, str] = {}  # fingerprint -> schema text written to the schema topic
        self._lock = threading.Lock()

    def snapshot_ddl(self) -> bool:
        return self.cfg.include_schema_changes

    def extra_topics(self) -> list[str]:
        topics = [self.cfg.topic_prefix] if self.cfg.include_schema_changes else []
        if self.registry is None:
            topics.append(self.schema_topic)
        return topics

    def row_records_elsewhere(self) -> bool:
        return False  # a row's first record of a schema brings one for the schema topic: `records_elsewhere_now`

    def records_elsewhere_now(self, change: Change, topic: str) -> bool:
        """Without a registry: whether this process has yet to write the schema topic's record of the key or
        envelope schema of the change's table (what every row change of it uses)."""
        if self.registry is not None or change.table is None:
            return False
        plan = self._events.plan(change.table)
        for part, connect in (("key", plan.key_schema), ("value", plan.envelope_schema)):
            if connect is not None:
                w = self._writer(topic, part, connect, None)
                if self._published.get(w.fingerprint) != w.text:
                    return True
        return False

    def encode_on_lane(self, change: Change, topic: str) -> list[KafkaRecord]:
        return self._encode(change, topic, False)

    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        return self._encode(change, topic, True)

    def _encode(self, change: Change, topic: str, publish: bool) -> list[KafkaRecord]:
        """The records of `change`; with `publish`, in registry-less mode, first the schema topic's record of
        each schema this process has not written yet."""
        out: list[KafkaRecord] = []
        schemas = out if publish else None
        table = change.table
        if table is not None and change.op in _ROW_OPS and self._encode_row(change, table, topic, out, schemas):
            return out
        for e in self._events.encode(change, topic):
            if e.kind == "schema_change":
                rec_topic = self.cfg.topic_prefix
                key_schema, value_schema = cs.schema_change_key_schema(), cs.schema_change_value_schema()
            else:
                assert e.plan is not None
                rec_topic = topic
                key_schema = None if e.kind == "truncate" else e.plan.key_schema
                value_schema = None if e.kind == "tombstone" else e.plan.envelope_schema
            key = value = None
            if key_schema is not None and e.key is not None:
                key = self._writer(rec_topic, "key", key_schema, schemas).write(e.key)
            if value_schema is not None and e.value is not None:
                value = self._writer(rec_topic, "value", value_schema, schemas).write(e.value)
            out.append(KafkaRecord(rec_topic, key, value))
        return out

    def _encode_row(self, change: Change, table: TableSchema, topic: str, out: list[KafkaRecord],
                    schemas: list[KafkaRecord] | None) -> bool:
        """Appends the records of a row change to `out`, as the general path of `_encode` makes them from
        `EventBuilder.encode_row`'s events (the same structs, writers and order; a unit test compares the two),
        without the events between: True. False, with nothing appended, for an UPDATE that changes the message
        key (a delete, a tombstone and a create: the general path writes them)."""
        events = self._events
        plan = events.plan(table)
        op = change.op
        now = events.clock()
        before = after = None
        if op is Op.DELETE:  # the structs in the order EventBuilder.encode_row builds them (the same first error)
            assert change.before is not None  # a delete has its before image
            key = plan.key(change.before, False)
            before, code = plan.row(change.before, False), "d"
        elif op is Op.UPDATE:
            assert change.before is not None and change.after is not None  # an update has both images
            old_key, key = plan.key(change.before, False), plan.key(change.after, False)
            if old_key != key:
                return False
            before, after, code = plan.row(change.before, False), plan.row(change.after, False), "u"
        else:
            assert change.after is not None  # an insert or read has its after image
            key = plan.key(change.after, False)
            after, code = plan.row(change.after, False), "c" if op is Op.INSERT else "r"
        key_schema = plan.key_schema
        kw = None if key_schema is None or key is None else self._writer(topic, "key", key_schema, schemas)
        vw = self._writer(topic, "value", plan.envelope_schema, schemas)
        key_bytes = None if kw is None else kw.write(key)
        value = None
        if vw.tuples:
            try:
                value = vw.writer.header + vw.direct(events.envelope_tuple(change, plan, before, after, code, now))  # type: ignore[misc]  # `tuples` says it is there
            except Exception:  # noqa: BLE001 - what it does not write: the struct's way below writes it or says why
                value = None
        if value is None:
            value = vw.write(events.envelope(change, plan, before, after, code, now))
        out.append(KafkaRecord(topic, key_bytes, value))
        if code == "d" and self.cfg.tombstones_on_delete:
            out.append(KafkaRecord(topic, key_bytes, None))
        return True

    # ------------------------------------------------------------------ schemas

    def _writer(self, topic: str, part: str, connect: dict[str, Any], out: list[KafkaRecord] | None) -> _Writer:
        """The writer of `connect` for subject `<topic>-<part>`; in registry-less mode, appends the schema
        record to `out` (None: nowhere) when this process has not written that schema yet."""
        cache_key = (topic, part, id(connect))
        w = self._writers.get(cache_key)
        if w is None or w.connect is not connect:
            with self._lock:
                w = self._writers.get(cache_key)
                if w is None or w.connect is not connect:
                    w = self._writers[cache_key] = self._new_writer(topic, part, connect)
        if out is not None and w.schema_record is not None and self._published.get(w.fingerprint) != w.text:
            with self._lock:
                if self._published.get(w.fingerprint) != w.text:
                    self._published[w.fingerprint] = w.text
                    out.append(w.schema_record)
        return w

    def _new_writer(self, topic: str, part: str, connect: dict[str, Any]) -> _Writer:
        if len(self._writers) >= 4096:
            self._writers.clear()
        schema = avro_schema(connect, self.logical_types)
        text = schema_text(schema)
        if self.registry is not None:
            subject = f"{topic}-{part}"
            adjusted = False
            if self.compatible and part == "value" and topic != self.cfg.topic_prefix:
                shape, text = self._compatible(subject, schema, text)
                adjusted, schema = shape is not schema, shape
            header = confluent_header(self.registry.register(subject, text))
            writer = AvroWriter(schema, header)
            direct = None if adjusted else _direct(connect, writer)
            return _Writer(connect, writer, datum_converter(connect), b"", text, None, direct,
                           _takes_tuples(writer.parsed, direct))
        fp = fingerprint(schema)
        known = self._published.get(fp)
        if known is not None and known != text:
            log.warning("schema of %s-%s has the fingerprint %s of another schema that differs only in attributes "
                        "outside Avro's canonical form (logical types, connect.*); the schema topic %s now holds "
                        "the newer one under that key", topic, part, fp.hex(), self.schema_topic)
        record = KafkaRecord(self.schema_topic, fp.hex().encode(), text.encode())
        writer = AvroWriter(schema, single_object_header(fp))
        direct = _direct(connect, writer)
        return _Writer(connect, writer, datum_converter(connect), fp, text, record, direct,
                       _takes_tuples(writer.parsed, direct))

    def _compatible(self, subject: str, schema: Any, text: str) -> tuple[Any, str]:
        """(schema_changes.policy compatible) `schema`, or the smallest shape the subject's level accepts."""
        registry = self.registry
        assert registry is not None
        refused = registry.check(subject, text)
        if not refused:
            return schema, text
        level = registry.compatibility(subject)
        latest = registry.latest(subject)
        adjusted = compatible_shape(latest, schema, level)
        if adjusted.notes and not adjusted.problems:
            adjusted_text = schema_text(adjusted.schema)
            still = registry.check(subject, adjusted_text)
            if not still:
                log.warning("schema registry: the new schema of subject %s is not %s compatible (%s); registering "
                            "the smallest compatible shape instead (schema_changes.policy compatible): %s",
                            subject, level, "; ".join(refused), "; ".join(adjusted.notes))
                return adjusted.schema, adjusted_text
            refused = still
        problems = adjusted.problems or refused
        raise IncompatibleSchemaError(
            f"schema registry: the new schema of subject {subject!r} is not compatible with its latest version "
            f"under compatibility level {level}, and no shape obsync can write is: {'; '.join(problems)}. The "
            f"task stopped before writing any change in it. Choices: relax the subject's level (PUT "
            f"{registry.urls[0]}/config/{quote(subject, safe='')} {{\"compatibility\": \"NONE\"}}) and start "
            "again; set schema_changes.policy to ignore (messages keep the old shape) and start again; or register "
            "a schema by hand")


# ---------------------------------------------------------------------- options


def _registry(value: Any) -> SchemaRegistryClient | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, dict):
        raise ConfigError("field `format_options.schema_registry`: expected a mapping with `url` (and `user`, "
                          f"`password`), got {type(value).__name__}")
    for key in value:
        if key not in REGISTRY_KEYS:
            raise ConfigError(f"field `format_options.schema_registry.{key}`: unknown setting; "
                              f"valid: {', '.join(REGISTRY_KEYS)}")
    url = value.get("url")
    if not url:  # no URL: registry-less mode
        if value.get("user") is not None or value.get("password") is not None:
            raise ConfigError("field `format_options.schema_registry.url`: required when `user` or `password` "
                              "is set")
        return None
    for key in REGISTRY_KEYS:
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ConfigError(f"field `format_options.schema_registry.{key}`: must be a string")
    if value.get("password") is not None and value.get("user") is None:
        raise ConfigError("field `format_options.schema_registry.user`: required when `password` is set")
    try:
        return SchemaRegistryClient(url, value.get("user"), value.get("password"))
    except ValueError as e:
        raise ConfigError(f"field `format_options.schema_registry.url`: {e}") from None


@register("avro")
def _build(ctx: EncoderContext, **options: Any) -> AvroEncoder:
    """`format_options` of the avro format: `schema_registry` (`{url, user, password}`; absent or without
    `url`: registry-less mode), `schema_topic` (registry-less mode's schema topic, default
    `<topic_prefix>.schemas`), `logical_types` (`connect`, the default: Avro logical types for Connect's logical
    types only, as Confluent's converter; `all`: also for Debezium's DATE, DATETIME types), and the Debezium
    options that shape the content (`obsync.formats.debezium.config`)."""
    valid = (*DEBEZIUM_OPTIONS, *AVRO_OPTIONS)
    for key in sorted(options):
        if key not in valid:
            raise ConfigError(f"field `format_options.{key}`: unknown option of format avro; valid: "
                              f"{', '.join(valid)}")
    cfg = parse_options("avro", ctx.task_name, {k: v for k, v in options.items() if k in DEBEZIUM_OPTIONS},
                        DEBEZIUM_OPTIONS)
    logical = options.get("logical_types", "connect")
    if logical not in LOGICAL_TYPE_MODES:
        raise ConfigError(f"field `format_options.logical_types`: {logical!r} is not valid; "
                          f"valid: {', '.join(LOGICAL_TYPE_MODES)}")
    schema_topic = options.get("schema_topic")
    if schema_topic is not None and (not isinstance(schema_topic, str) or topic_problem(schema_topic) is not None):
        raise ConfigError(f"field `format_options.schema_topic`: {schema_topic!r} is not a valid Kafka topic name "
                          "(1-249 letters, digits, '.', '_', '-')")
    encoder = AvroEncoder(cfg, _registry(options.get("schema_registry")), schema_topic=schema_topic,
                          logical_types=logical, schema_changes=ctx.schema_changes)
    if encoder.registry is None and encoder.schema_topic == cfg.topic_prefix:
        raise ConfigError("field `format_options.schema_topic`: must differ from `topic_prefix`, the "
                          "schema-change topic")
    log.info("format avro: %s", f"schema registry {encoder.registry!r}" if encoder.registry is not None
             else f"no schema registry; schemas written to topic {encoder.schema_topic}")
    return encoder


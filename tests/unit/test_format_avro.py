"""The avro format's pure parts: Connect -> Avro schemas (Confluent's AvroData conventions), the wire bytes, the
registry client against the test registry, and whole changes encoded and decoded back."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import re
import struct
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.avro.encoder import DEBEZIUM_OPTIONS, AvroEncoder
from obsync.formats.avro.errors import (
    AvroFormatError,
    IncompatibleSchemaError,
    SchemaRegistryError,
    SchemaRegistryUnavailable,
)
from obsync.formats.avro.registry import SchemaRegistryClient
from obsync.formats.avro.schemas import avro_name, avro_schema, datum_converter, decimal_bytes
from obsync.formats.avro.wire import (
    AvroWriter,
    confluent_header,
    fingerprint,
    read,
    single_object_header,
    split_confluent,
    split_single_object,
)
from obsync.formats.base import EncoderContext, KafkaRecord
from obsync.formats.debezium.config import parse_options
from obsync.formats.registry import encoder_for
from tests.helpers.schema_registry import TestSchemaRegistry, can_read, expand

# ---------------------------------------------------------------------- Connect -> Avro, per column type

# (Connect field schema as the JsonConverter writes Debezium's, Avro type Confluent's AvroData writes)
COLUMN_TYPES = [
    ({"type": "int16", "optional": False}, {"type": "int", "connect.type": "int16"}),
    ({"type": "int8", "optional": True}, ["null", {"type": "int", "connect.type": "int8"}]),
    ({"type": "int32", "optional": False}, "int"),
    ({"type": "int64", "optional": True}, ["null", "long"]),
    ({"type": "float", "optional": True}, ["null", "float"]),
    ({"type": "double", "optional": False}, "double"),
    ({"type": "boolean", "optional": False}, "boolean"),
    ({"type": "string", "optional": True}, ["null", "string"]),
    ({"type": "bytes", "optional": True}, ["null", "bytes"]),
    (
        {"type": "bytes", "optional": False, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}},
        {"type": "bytes", "scale": 2, "precision": 12, "connect.version": 1,
         "connect.parameters": {"scale": "2", "connect.decimal.precision": "12"},
         "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"},
    ),
    (  # no precision parameter: AvroData's default precision 64
        {"type": "bytes", "optional": False, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "0"}},
        {"type": "bytes", "scale": 0, "precision": 64, "connect.version": 1, "connect.parameters": {"scale": "0"},
         "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"},
    ),
    (
        {"type": "int32", "optional": False, "name": "org.apache.kafka.connect.data.Date", "version": 1},
        {"type": "int", "connect.version": 1, "connect.name": "org.apache.kafka.connect.data.Date",
         "logicalType": "date"},
    ),
    (
        {"type": "int32", "optional": False, "name": "org.apache.kafka.connect.data.Time", "version": 1},
        {"type": "int", "connect.version": 1, "connect.name": "org.apache.kafka.connect.data.Time",
         "logicalType": "time-millis"},
    ),
    (
        {"type": "int64", "optional": False, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
        {"type": "long", "connect.version": 1, "connect.name": "org.apache.kafka.connect.data.Timestamp",
         "logicalType": "timestamp-millis"},
    ),
    # Debezium's semantic types: their base type and connect.name, as Confluent's converter writes them
    (
        {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1},
        ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}],
    ),
    (
        {"type": "int64", "optional": False, "name": "io.debezium.time.MicroTime", "version": 1},
        {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTime"},
    ),
    (
        {"type": "int64", "optional": False, "name": "io.debezium.time.Timestamp", "version": 1},
        {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.Timestamp"},
    ),
    (
        {"type": "int64", "optional": False, "name": "io.debezium.time.MicroTimestamp", "version": 1},
        {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"},
    ),
    (
        {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
        ["null", {"type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"}],
    ),
    (
        {"type": "int32", "optional": True, "name": "io.debezium.time.Year", "version": 1},
        ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Year"}],
    ),
    (
        {"type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1},
        ["null", {"type": "string", "connect.version": 1, "connect.name": "io.debezium.data.Json"}],
    ),
    (
        {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "a,B,c d"}},
        ["null", {"type": "string", "connect.version": 1, "connect.parameters": {"allowed": "a,B,c d"},
                  "connect.name": "io.debezium.data.Enum"}],
    ),
    (
        {"type": "bytes", "optional": False, "name": "io.debezium.data.Bits", "version": 1,
         "parameters": {"length": "10"}},
        {"type": "bytes", "connect.version": 1, "connect.parameters": {"length": "10"},
         "connect.name": "io.debezium.data.Bits"},
    ),
    (  # a column default: the union starts with the type, the default is the field's and connect.default
        {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "version": 1,
         "default": 0},
        [{"type": "long", "connect.version": 1, "connect.default": 0,
          "connect.name": "io.debezium.time.MicroTimestamp"}, "null"],
    ),
]


@pytest.mark.parametrize("connect,expected", COLUMN_TYPES, ids=lambda v: json.dumps(v)[:60])
def test_column_type_converts_as_confluent_avro_data_does(connect, expected):
    assert avro_schema(connect) == expected


def test_debezium_temporal_types_get_avro_logical_types_on_request_except_micro_time():
    def logical(name: str, kind: str) -> str | None:
        s = avro_schema({"type": kind, "optional": False, "name": name, "version": 1}, logical_types="all")
        return s.get("logicalType")

    assert logical("io.debezium.time.Date", "int32") == "date"
    assert logical("io.debezium.time.Timestamp", "int64") == "timestamp-millis"
    assert logical("io.debezium.time.MicroTimestamp", "int64") == "timestamp-micros"
    assert logical("io.debezium.time.MicroTime", "int64") is None  # TIME spans -838:59:59..838:59:59
    assert logical("io.debezium.time.ZonedTimestamp", "string") is None


def test_struct_becomes_record_with_optional_fields_defaulting_to_null():
    value = {"type": "struct", "optional": True, "name": "shop.inventory.orders.Value", "fields": [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "string", "optional": True, "field": "note"},
    ]}
    envelope = {"type": "struct", "optional": False, "name": "shop.inventory.orders.Envelope", "version": 1,
                "fields": [{**value, "field": "before"}, {**value, "field": "after"},
                           {"type": "string", "optional": False, "field": "op"}]}
    assert avro_schema(envelope) == {
        "type": "record", "name": "Envelope", "namespace": "shop.inventory.orders",
        "fields": [
            {"name": "before", "type": ["null", {
                "type": "record", "name": "Value", "namespace": "shop.inventory.orders",
                "fields": [{"name": "id", "type": "int"},
                           {"name": "note", "type": ["null", "string"], "default": None}],
                "connect.name": "shop.inventory.orders.Value"}], "default": None},
            {"name": "after", "type": ["null", "shop.inventory.orders.Value"], "default": None},
            {"name": "op", "type": "string"},
        ],
        "connect.version": 1, "connect.name": "shop.inventory.orders.Envelope",
    }
    parse_schema(avro_schema(envelope))  # valid Avro, the second use a reference


def test_names_are_made_valid_avro_names_and_values_follow():
    connect = {"type": "struct", "optional": False, "name": "my-task.db-1.9t.Value", "fields": [
        {"type": "int32", "optional": False, "field": "order-id"},
        {"type": "string", "optional": True, "field": "1st"},
        {"type": "string", "optional": True, "field": "ok"},
    ]}
    schema = avro_schema(connect)
    assert (schema["namespace"], schema["name"]) == ("my_task.db_1._9t", "Value")
    assert [f["name"] for f in schema["fields"]] == ["order_id", "_1st", "ok"]
    assert schema["connect.name"] == "my-task.db-1.9t.Value"  # the Connect name itself is kept
    convert = datum_converter(connect)
    assert convert({"order-id": 1, "1st": "x", "ok": None}) == {"order_id": 1, "_1st": "x", "ok": None}
    assert avro_name("ü") == "_" and avro_name("") == "_"


def test_fields_that_collide_once_renamed_are_refused():
    connect = {"type": "struct", "optional": False, "name": "t.Value", "fields": [
        {"type": "int32", "optional": False, "field": "a-b"}, {"type": "int32", "optional": False, "field": "a_b"}]}
    with pytest.raises(Exception, match="both become Avro field 'a_b'"):
        avro_schema(connect)


def test_maps_and_arrays():
    assert avro_schema({"type": "array", "optional": False, "items": {"type": "string", "optional": False}}) == {
        "type": "array", "items": "string"}
    assert avro_schema({"type": "map", "optional": False, "keys": {"type": "string", "optional": False},
                        "values": {"type": "int64", "optional": True}}) == {"type": "map", "values": ["null", "long"]}
    entries = avro_schema({"type": "map", "optional": False, "keys": {"type": "int32", "optional": False},
                           "values": {"type": "string", "optional": False}})
    assert entries["items"]["name"] == "MapEntry" and [f["name"] for f in entries["items"]["fields"]] == [
        "key", "value"]
    convert = datum_converter({"type": "map", "optional": False, "keys": {"type": "int32", "optional": False},
                               "values": {"type": "string", "optional": False}})
    assert convert({1: "a"}) == [{"key": 1, "value": "a"}]


def test_bytes_defaults_are_iso_8859_1_text():
    s = avro_schema({"type": "bytes", "optional": True, "default": base64.b64encode(b"\x00\xff").decode()})
    assert s == [{"type": "bytes", "connect.default": "\x00\xff"}, "null"]


# ---------------------------------------------------------------------- values

DECIMAL_65_30 = {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                 "parameters": {"scale": "30", "connect.decimal.precision": "65"}}


@pytest.mark.parametrize("value", [
    Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
    Decimal("0"), Decimal("-0.000000000000000000000000000001"), Decimal("99999999999999999999999999999999999"),
])
def test_decimals_are_exact_at_any_precision(value):
    convert = datum_converter(DECIMAL_65_30)
    schema = avro_schema(DECIMAL_65_30)
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), convert(value))
    back = schemaless_reader(io.BytesIO(buf.getvalue()), parse_schema(schema))
    assert back == value and back.as_tuple().exponent == -30


def test_decimal_bytes_are_java_big_integer_bytes():
    convert = datum_converter({**DECIMAL_65_30, "parameters": {"scale": "0"}})
    assert convert(Decimal(-128)) == b"\x80"  # BigInteger.valueOf(-128).toByteArray()
    assert convert(Decimal(128)) == b"\x00\x80"
    assert convert(Decimal(0)) == b"\x00"
    assert convert("AIA=") == b"\x00\x80"  # the JsonConverter's Base64 form is taken as the bytes it is
    with pytest.raises(Exception, match="more than 0 fraction digits"):
        convert(Decimal("1.5"))


def _unscaled_by_digits(d: Decimal, scale: int) -> bytes:
    """The Decimal's unscaled bytes computed from its digit tuple (the reference for `decimal_bytes`)."""
    sign, digits, exp = d.as_tuple()
    if not isinstance(exp, int):
        raise AvroFormatError(f"decimal {d} is not a number")
    n = int("".join(map(str, digits)) or "0")
    shift = exp + scale
    if shift >= 0:
        n *= 10**shift
    else:
        n, rest = divmod(n, 10**-shift)
        if rest:
            raise AvroFormatError(f"decimal {d} has more than {scale} fraction digits (the column's scale)")
    n = -n if sign else n
    return n.to_bytes((n if n >= 0 else ~n).bit_length() // 8 + 1, "big", signed=True)


def test_decimal_bytes_are_the_unscaled_digits_at_any_precision():
    import random

    r = random.Random(7)
    values = [Decimal(x) for x in ("0", "-0", "0.00", "-0.00", "1E+5", "1E-5", "NaN", "sNaN", "-Infinity",
                                   "1234.50", "-1234.5", "99999999999999999999999999999999999999.99")]
    for _ in range(3000):
        digits = r.randrange(10 ** r.randrange(1, 70))
        values.append(Decimal(f"{'-' if r.random() < 0.5 else ''}{digits}E{r.randrange(-40, 10)}"))
    for d in values:
        for scale in (0, 1, 2, 5, 10, 30):
            try:
                expected: Any = _unscaled_by_digits(d, scale)
            except AvroFormatError as e:
                with pytest.raises(AvroFormatError, match=re.escape(str(e))):
                    decimal_bytes(d, scale)
                continue
            assert decimal_bytes(d, scale) == expected, (d, scale)


def test_bytes_accept_base64_text_or_bytes():
    convert = datum_converter({"type": "bytes", "optional": True})
    assert convert("/wD+") == b"\xff\x00\xfe" and convert(b"\x01") == b"\x01" and convert(None) is None


# ---------------------------------------------------------------------- wire format

RECORD = {"type": "record", "name": "K", "namespace": "t", "fields": [{"name": "id", "type": "int"}]}


def test_confluent_wire_format_golden_bytes():
    message = AvroWriter(RECORD, confluent_header(258)).write({"id": -3})
    assert message == b"\x00\x00\x00\x01\x02" + b"\x05"  # magic, id 258 big-endian, zigzag(-3)
    assert split_confluent(message) == (258, b"\x05")


def test_single_object_encoding_golden_bytes():
    # The Avro specification's fingerprint of "int": 0x7275d51a3f395c8f, written little-endian.
    assert fingerprint("int") == bytes.fromhex("8f5c393f1ad57572")
    fp = fingerprint(RECORD)
    message = AvroWriter(RECORD, single_object_header(fp)).write({"id": 1})
    assert message[:2] == b"\xc3\x01" and message[2:10] == fp and message[10:] == b"\x02"
    assert split_single_object(message) == (fp, b"\x02")


def test_fingerprint_ignores_attributes_outside_the_canonical_form():
    with_props = {**RECORD, "connect.name": "t.K", "doc": "x"}
    assert fingerprint(with_props) == fingerprint(RECORD)


def test_readers_refuse_other_bytes():
    with pytest.raises(ValueError):
        split_confluent(b"\xc3\x01" + bytes(9))
    with pytest.raises(ValueError):
        split_single_object(b"\x00\x00\x00\x00\x01\x02")


# ---------------------------------------------------------------------- registry client + test registry

V1 = {"type": "record", "name": "Value", "namespace": "p.d.t", "fields": [{"name": "id", "type": "int"}]}
V2 = {**V1, "fields": [*V1["fields"], {"name": "note", "type": ["null", "string"], "default": None}]}
V3 = {**V1, "fields": [{"name": "id", "type": "string"}]}


def test_registry_ids_versions_and_caching():
    with TestSchemaRegistry() as reg:
        client = SchemaRegistryClient(reg.url)
        assert client.register("t-value", V1) == 1
        assert client.register("t-value", V1) == 1  # cached: no second request
        assert client.register("other-value", V1) == 1  # one id per schema, whatever the subject
        assert client.register("t-value", V2) == 2  # an added optional field: BACKWARD compatible
        assert client.versions("t-value") == [1, 2] and client.versions("none") == []
        assert SchemaRegistryClient(reg.url).schema(2) == V2
        posts = [p for m, p in reg.requests if m == "POST"]
        assert posts == ["/subjects/t-value/versions", "/subjects/other-value/versions", "/subjects/t-value/versions"]


def test_registry_refuses_incompatible_change_naming_the_level():
    with TestSchemaRegistry() as reg:
        client = SchemaRegistryClient(reg.url)
        client.register("t-value", V1)
        with pytest.raises(IncompatibleSchemaError, match="compatibility level BACKWARD"):
            client.register("t-value", V3)
        reg.config["t-value"] = "NONE"
        assert client.register("t-value", V3) == 2


def test_registry_basic_auth_and_password_never_shown():
    with TestSchemaRegistry(user="obsync", password="s3cret") as reg:
        assert SchemaRegistryClient(reg.url, "obsync", "s3cret").register("t-value", V1) == 1
        url = reg.url.replace("http://", "http://obsync:s3cret@")
        client = SchemaRegistryClient(url)
        assert client.register("t-value", V1) == 1 and "s3cret" not in repr(client) + str(client.urls)
        bad = SchemaRegistryClient(reg.url, "obsync", "wrong")
        with pytest.raises(SchemaRegistryError, match="schema_registry.user") as err:
            bad.register("t-value", V1)
        assert "wrong" not in str(err.value) and "wrong" not in repr(bad)


def test_registry_unreachable_is_transient():
    client = SchemaRegistryClient("http://127.0.0.1:9", attempts=2, backoff=0)
    with pytest.raises(SchemaRegistryUnavailable) as err:
        client.register("t-value", V1)
    assert err.value.transient


def test_test_registry_compatibility_rules():
    def ok(reader, writer):
        return not can_read(expand(reader), expand(writer))

    assert ok(V2, V1) and ok(V1, V2)  # added optional field; removed field
    assert not ok(V3, V1)
    required = {**V1, "fields": [*V1["fields"], {"name": "n", "type": "long"}]}
    assert not ok(required, V1)
    promoted = {**V1, "fields": [{"name": "id", "type": "long"}]}
    assert ok(promoted, V1) and not ok(V1, promoted)
    assert ok({**V1, "fields": [{"name": "id", "type": ["null", "int"], "default": None}]}, V1)


# ---------------------------------------------------------------------- whole changes

UTC = dt.UTC
NOW_NS = 1_700_000_002_123_456_789
POS = LogPosition("mysql-bin.000042", 1234567)
GTID = "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"
ORDERS = TableSchema("shop", "orders", (
    Column("id", "bigint", "bigint(20)", nullable=False),
    Column("name", "varchar", "varchar(32)", charset="utf8mb4", precision=32),
    Column("amount", "decimal", "decimal(65,30)", precision=65, scale=30),
    Column("paid_at", "timestamp", "timestamp(3)", fsp=3),
    Column("made", "datetime", "datetime(6)", fsp=6),
    Column("day", "date", "date"),
    Column("dur", "time", "time(6)", fsp=6),
    Column("flags", "bit", "bit(10)", precision=10),
    Column("blob", "blob", "blob", charset="binary"),
), primary_key=("id",))
AMOUNT = Decimal("-12345678901234567890123456789012345.123456789012345678901234567890")
ROW1 = {"id": 42, "name": "咖啡 ☕", "amount": AMOUNT,
        "paid_at": dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC),
        "made": dt.datetime(2024, 1, 2, 3, 4, 5, 6), "day": dt.date(2024, 2, 29),
        "dur": -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999), "flags": 0b1000000001,
        "blob": b"\x00\xff"}
ROW2 = {**ROW1, "amount": Decimal("0E-30"), "paid_at": None, "name": None}
# ROW1 as a consumer decodes it (fastavro: Decimal with the column's scale, Debezium's temporal integers)
ROW1_DECODED = {"id": 42, "name": "咖啡 ☕", "amount": AMOUNT, "paid_at": "2023-11-14T22:13:20.500Z",
                "made": 1704164645000006, "day": 19782, "dur": -3020398999999, "flags": b"\x01\x02",
                "blob": b"\x00\xff"}


def encoder(registry: SchemaRegistryClient | None = None, **options) -> AvroEncoder:
    return AvroEncoder(parse_options("avro", "task1", options, DEBEZIUM_OPTIONS), registry,
                       clock=lambda: NOW_NS)


class SchemaTopic:
    """What a registry-less consumer keeps: fingerprint (hex) -> schema, from the schema topic's records."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def take(self, records: list[KafkaRecord], schema_topic: str = "task1.schemas") -> list[KafkaRecord]:
        rest = []
        for r in records:
            if r.topic == schema_topic:
                self.schemas[r.key.decode()] = json.loads(r.value)
            else:
                rest.append(r)
        return rest

    def decode(self, message: bytes | None) -> Any:
        if message is None:
            return None
        fp, payload = split_single_object(message)
        return read(payload, self.schemas[fp.hex()])


def insert(row=ROW1, table=ORDERS) -> Change:
    return Change(Op.INSERT, table, POS, after=row, commit_time=1700000001.0, txn=GTID, server_id=7)


def test_insert_decodes_to_the_debezium_envelope_registry_less():
    topic = SchemaTopic()
    records = encoder().encode(insert(), "orders")
    schema_records = [r for r in records if r.topic == "task1.schemas"]
    assert [r.topic for r in records] == ["task1.schemas", "task1.schemas", "orders"]  # schemas first
    records = topic.take(records)
    for r in schema_records:  # key: the fingerprint in hex; value: the full schema
        assert r.key.decode() == fingerprint(json.loads(r.value)).hex()
    (rec,) = records
    assert topic.decode(rec.key) == {"id": 42}
    value = topic.decode(rec.value)
    assert value["before"] is None and value["after"] == ROW1_DECODED
    assert value["op"] == "c" and value["ts_ms"] == NOW_NS // 1_000_000 and value["transaction"] is None
    assert value["source"] == {
        "version": "3.1.0.Final", "connector": "mysql", "name": "task1", "ts_ms": 1700000001000, "snapshot": "false",
        "db": "shop", "sequence": None, "ts_us": 1700000001000000, "ts_ns": 1700000001000000000, "table": "orders",
        "server_id": 7, "gtid": GTID, "file": "mysql-bin.000042", "pos": 1234567, "row": 0, "thread": None,
        "query": None}
    schemas = list(topic.schemas.values())
    assert {s["connect.name"] for s in schemas} == {"task1.shop.orders.Key", "task1.shop.orders.Envelope"}


def test_key_golden_bytes():
    (rec,) = SchemaTopic().take(encoder().encode(insert(), "orders"))
    fp = fingerprint({"type": "record", "name": "Key", "namespace": "task1.shop.orders",
                      "fields": [{"name": "id", "type": "long"}]})
    assert rec.key == b"\xc3\x01" + fp + b"\x54"  # zigzag(42) = 84


def test_schema_written_once_then_only_messages():
    enc = encoder()
    enc.encode(insert(), "orders")
    again = enc.encode(insert({**ROW1, "id": 43}), "orders")
    assert [r.topic for r in again] == ["orders"]


def test_update_and_delete_with_tombstone():
    topic, enc = SchemaTopic(), encoder()
    topic.take(enc.encode(insert(), "orders"))
    (upd,) = topic.take(enc.encode(Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=ROW2, commit_time=1.0), "orders"))
    value = topic.decode(upd.value)
    assert value["op"] == "u" and value["before"] == ROW1_DECODED
    assert value["after"] == {**ROW1_DECODED, "amount": Decimal("0E-30"), "paid_at": None, "name": None}
    deleted, tombstone = topic.take(enc.encode(Change(Op.DELETE, ORDERS, POS, before=ROW2, commit_time=1.0),
                                               "orders"))
    assert topic.decode(deleted.value)["op"] == "d" and topic.decode(deleted.value)["after"] is None
    assert tombstone.value is None and topic.decode(tombstone.key) == {"id": 42}


def test_snapshot_row_and_keyless_table():
    keyless = TableSchema("shop", "log", (Column("msg", "text", "text", charset="utf8mb4"),))
    topic = SchemaTopic()
    (rec,) = topic.take(encoder().encode(Change(Op.READ, keyless, SnapshotPosition("shop.log/0", ()),
                                                after={"msg": "hi"}), "log"))
    assert rec.key is None
    value = topic.decode(rec.value)
    assert value["op"] == "r" and value["after"] == {"msg": "hi"} and value["source"]["snapshot"] == "true"


def test_ddl_goes_to_the_schema_change_topic():
    topic, enc = SchemaTopic(), encoder()
    ddl = Change(Op.DDL, ORDERS, POS, ddl="ALTER TABLE orders ADD note TEXT", ddl_db="shop",
                 ddl_tables=(("shop", "orders"),), commit_time=1.0)
    (rec,) = topic.take(enc.encode(ddl, "orders"))
    assert rec.topic == "task1" and topic.decode(rec.key) == {"databaseName": "shop"}
    assert topic.decode(rec.value)["ddl"] == "ALTER TABLE orders ADD note TEXT"
    assert enc.encode(ddl, "orders") == []  # one schema-change event per DDL, however often it is routed
    assert enc.extra_topics() == ["task1", "task1.schemas"]


def test_registry_mode_subjects_wire_format_and_evolution():
    with TestSchemaRegistry() as reg:
        enc = encoder(SchemaRegistryClient(reg.url))
        (rec,) = enc.encode(insert(), "orders")
        assert enc.extra_topics() == ["task1"]
        assert sorted(reg.subjects) == ["orders-key", "orders-value"]
        for message, expected in ((rec.key, {"id": 42}), (rec.value, None)):
            schema_id, payload = split_confluent(message)
            decoded = read(payload, SchemaRegistryClient(reg.url).schema(schema_id))
            if expected is not None:
                assert decoded == expected
            else:
                assert decoded["after"] == ROW1_DECODED
        wider = TableSchema("shop", "orders", (*ORDERS.columns, Column("note", "text", "text", charset="utf8mb4")),
                            primary_key=("id",))
        (rec2,) = enc.encode(insert({**ROW1, "note": "new"}, wider), "orders")
        assert reg.subjects["orders-value"] == [2, 3] and reg.subjects["orders-key"] == [1]
        schema_id, payload = split_confluent(rec2.value)
        new_schema = SchemaRegistryClient(reg.url).schema(schema_id)
        assert read(payload, new_schema)["after"]["note"] == "new"
        value_fields = {f["name"]: f for f in new_schema["fields"][0]["type"][1]["fields"]}
        assert value_fields["note"] == {"name": "note", "type": ["null", "string"], "default": None}
        # an old message still decodes with the new schema (BACKWARD): the new field reads as null
        old_id, old_payload = split_confluent(rec.value)
        evolved = schemaless_reader(io.BytesIO(old_payload), parse_schema(SchemaRegistryClient(reg.url).schema(old_id)),
                         parse_schema(new_schema))
        assert evolved["after"]["note"] is None


def test_incompatible_change_stops_with_a_clear_error():
    with TestSchemaRegistry() as reg:
        enc = encoder(SchemaRegistryClient(reg.url))
        enc.encode(insert(), "orders")
        retyped = TableSchema("shop", "orders", (Column("id", "bigint", "bigint(20)", nullable=False),
                                                 Column("name", "int", "int(11)")), primary_key=("id",))
        with pytest.raises(IncompatibleSchemaError, match="orders-value"):
            enc.encode(insert({"id": 1, "name": 5}, retyped), "orders")


def test_decimal_handling_mode_string_and_names_made_valid():
    odd = TableSchema("my-db", "t", (Column("id", "int", "int(11)", nullable=False),
                                     Column("a-b", "decimal", "decimal(5,2)", precision=5, scale=2)),
                      primary_key=("id",))
    topic = SchemaTopic()
    (rec,) = topic.take(encoder(decimal_handling_mode="string").encode(
        insert({"id": 1, "a-b": Decimal("1.50")}, odd), "t"))
    assert topic.decode(rec.value)["after"] == {"id": 1, "a_b": "1.50"}


def test_logical_types_all_gives_native_dates():
    enc = AvroEncoder(parse_options("avro", "task1", {}, DEBEZIUM_OPTIONS), logical_types="all", clock=lambda: NOW_NS)
    topic = SchemaTopic()
    (rec,) = topic.take(enc.encode(insert(), "orders"))
    after = topic.decode(rec.value)["after"]
    assert after["made"] == dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC) and after["day"] == dt.date(2024, 2, 29)
    assert after["dur"] == -3020398999999  # TIME stays microseconds


# ---------------------------------------------------------------------- options

def build(**options):
    return encoder_for("avro", EncoderContext("task1", "MYSQL"), options)


def test_options_build_both_modes():
    assert build().registry is None and build().schema_topic == "task1.schemas"
    enc = build(schema_registry={"url": "http://127.0.0.1:8081", "user": "u", "password": "pw"},
                topic_prefix="dbserver1", decimal_handling_mode="double")
    assert enc.registry is not None and enc.cfg.topic_prefix == "dbserver1" and enc.extra_topics() == ["dbserver1"]
    assert build(schema_topic="my-schemas").extra_topics() == ["task1", "my-schemas"]
    assert build(schema_registry="http://127.0.0.1:8081").registry.urls == ["http://127.0.0.1:8081"]
    assert build(include_schema_changes=False).extra_topics() == ["task1.schemas"]


@pytest.mark.parametrize("options,field", [
    ({"compression": "x"}, "format_options.compression"),
    ({"schema_registry": {"url": "http://h", "token": "x"}}, "format_options.schema_registry.token"),
    ({"schema_registry": {"url": "ftp://h"}}, "format_options.schema_registry.url"),
    ({"schema_registry": {"user": "u", "password": "hunter2"}}, "format_options.schema_registry.url"),
    ({"schema_registry": {"url": "http://h", "password": "hunter2"}}, "format_options.schema_registry.user"),
    ({"schema_registry": ["http://h"]}, "format_options.schema_registry"),
    ({"decimal_handling_mode": "exact"}, "format_options.decimal_handling_mode"),
    ({"logical_types": "some"}, "format_options.logical_types"),
    ({"schema_topic": "a b"}, "format_options.schema_topic"),
    ({"schema_topic": "task1"}, "format_options.schema_topic"),
])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError, match=re.escape(f"`{field}`")) as err:
        build(**options)
    assert "hunter2" not in str(err.value)


def test_password_is_never_logged(caplog):
    with caplog.at_level(logging.DEBUG):
        build(schema_registry={"url": "http://127.0.0.1:8081", "user": "u", "password": "hunter2"})
    assert caplog.records and "hunter2" not in caplog.text


def test_struct_columns_round_trip_and_a_second_one_is_a_reference():
    point = bytes(4) + b"\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.5, -2.0)  # SRID 0, WKB POINT(1.5 -2)
    table = TableSchema("geo", "places", (Column("id", "int", "int(11)", nullable=False),
                                          Column("g1", "geometry", "geometry"), Column("g2", "geometry", "geometry"),
                                          Column("p", "point", "point")), primary_key=("id",))
    topic = SchemaTopic()
    (rec,) = topic.take(encoder().encode(insert({"id": 1, "g1": point, "g2": None, "p": point}, table), "places"))
    after = topic.decode(rec.value)["after"]
    assert after == {"id": 1, "g1": {"wkb": point[4:], "srid": None}, "g2": None,
                     "p": {"x": 1.5, "y": -2.0, "wkb": point[4:], "srid": None}}
    value = next(s for s in topic.schemas.values() if s["name"] == "Envelope")["fields"][0]["type"][1]
    types = {f["name"]: f["type"] for f in value["fields"]}
    assert types["g1"][1]["connect.doc"] == "Geometry"
    assert types["g2"] == ["null", "io.debezium.data.geometry.Geometry"]


def test_column_defaults_become_avro_field_defaults_and_keep_backward_compatibility() -> None:
    """A NOT NULL column added with a default is a required Avro field with that default: a BACKWARD reader."""
    from obsync.formats.debezium.config import DebeziumConfig
    from obsync.formats.debezium.connect_schema import value_schema

    cfg = DebeziumConfig(topic_prefix="p")
    before = TableSchema("db", "t", (Column("id", "int", "int", nullable=False),), primary_key=("id",))
    after = TableSchema("db", "t", (*before.columns, Column("c", "int", "int", nullable=False, default="0"),
                                    Column("p", "decimal", "decimal(5,2)", precision=5, scale=2, default="1.50")),
                        primary_key=("id",))
    old, new = (avro_schema(value_schema(t, cfg)) for t in (before, after))
    fields = {f["name"]: f for f in new[1]["fields"]}  # ["null", Value]
    assert fields["c"] == {"name": "c", "type": {"type": "int", "connect.default": 0}, "default": 0}
    assert fields["p"]["type"][1] == "null" and fields["p"]["default"] == "\x00\x96"  # [T, "null"], bytes as text
    parse_schema(new)
    assert can_read(expand(new), expand(old)) == []
    without = TableSchema("db", "t", (*before.columns, Column("c", "int", "int", nullable=False)), primary_key=("id",))
    assert can_read(expand(avro_schema(value_schema(without, cfg))), expand(old)) != []

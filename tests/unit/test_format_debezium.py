"""The Debezium formats (`debezium`, `debezium_flatten`, `debezium_smt`): golden messages per operation and per
column type, decimal modes, tombstones, key changes, DDL and options.

Every schema'd message is also read back by `read_connect_json`, a strict model of Kafka Connect's
JsonConverter: a value that does not match its declared type, or a payload field the schema does not declare,
fails the test (the real converter would read the first as 0 and silently drop the second).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal, localcontext
from typing import Any

import pytest

import obsync.formats.debezium.json_format as json_format_mod
from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError, SchemaMismatchError
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.debezium import connect_schema as cs
from obsync.formats.debezium.config import DebeziumConfig
from obsync.formats.debezium.envelope import EventBuilder, connect_records
from obsync.formats.debezium.json_format import DebeziumEncoder
from obsync.formats.debezium.smt import DebeziumSmtEncoder
from obsync.formats.registry import encoder_for

UTC = dt.UTC
GTID = "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"
POS = LogPosition("mysql-bin.000042", 1234567, 1)
NOW_NS = 1700000005_123456789  # the encoder's clock in these tests
COMMIT = 1700000001.0

ORDERS = TableSchema(
    "shop",
    "orders",
    (
        Column("id", "bigint", "bigint(20)", nullable=False),
        Column("name", "varchar", "varchar(32)", charset="utf8mb4", precision=32),
        Column("amount", "decimal", "decimal(12,2)", precision=12, scale=2),
        Column("paid_at", "timestamp", "timestamp(3)", fsp=3),
    ),
    primary_key=("id",),
)
ROW1 = {"id": 42, "name": "咖啡 ☕", "amount": Decimal("12.50"),
        "paid_at": dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)}
ROW2 = {**ROW1, "amount": Decimal("-1.00"), "paid_at": None}
ROW1_PAYLOAD = {"id": 42, "name": "咖啡 ☕", "amount": "BOI=", "paid_at": "2023-11-14T22:13:20.500Z"}
ROW2_PAYLOAD = {"id": 42, "name": "咖啡 ☕", "amount": "nA==", "paid_at": None}

# The source block's schema exactly as Debezium 3.0.7.Final's MySQL connector wrote it through the JsonConverter
# (a captured message); 3.1 adds `"version":1` (DBZ-8499), which obsync writes as 3.1.0.Final.
REAL_SOURCE_SCHEMA_3_0_7 = (
    '{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string",'
    '"optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64",'
    '"optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum",'
    '"version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,'
    'incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},'
    '{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},'
    '{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":true,"field":"table"},'
    '{"type":"int64","optional":false,"field":"server_id"},{"type":"string","optional":true,"field":"gtid"},'
    '{"type":"string","optional":false,"field":"file"},{"type":"int64","optional":false,"field":"pos"},'
    '{"type":"int32","optional":false,"field":"row"},{"type":"int64","optional":true,"field":"thread"},'
    '{"type":"string","optional":true,"field":"query"}],"optional":false,"name":"io.debezium.connector.mysql.Source",'
    '"field":"source"}'
)
# ... and the rest of that message's envelope schema after `source`.
REAL_ENVELOPE_TAIL_3_0_7 = (
    '{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,'
    '"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,'
    '"name":"event.block","version":1,"field":"transaction"},{"type":"string","optional":false,"field":"op"},'
    '{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},'
    '{"type":"int64","optional":true,"field":"ts_ns"}'
)
SOURCE_SCHEMA = REAL_SOURCE_SCHEMA_3_0_7.replace(
    '"name":"io.debezium.connector.mysql.Source",', '"name":"io.debezium.connector.mysql.Source","version":1,')


# ------------------------------------------------------------------------------ a JsonConverter model

_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_EPOCH = dt.datetime(1970, 1, 1)


def connect_value(schema: dict[str, Any], value: Any, path: str = "$") -> Any:
    """`value` read with `schema` as the JsonConverter reads it, strictly (AssertionError where the converter
    would silently read 0 or drop a field), then Debezium's logical types decoded to Python values."""
    if value is None:
        assert schema["optional"] or "default" in schema, f"{path}: null in a required {schema['type']}"
        return None
    t = schema["type"]
    if t in _INT_BITS:
        bits = _INT_BITS[t]
        assert type(value) is int and -(1 << bits - 1) <= value < (1 << bits - 1), f"{path}: {value!r} not {t}"
        v: Any = value
    elif t in ("float", "double"):
        assert type(value) in (int, float), f"{path}: {value!r} not {t}"
        v = float(value)
    elif t == "boolean":
        assert type(value) is bool, f"{path}: {value!r} not boolean"
        v = value
    elif t == "string":
        assert type(value) is str, f"{path}: {value!r} not string"
        v = value
    elif t == "bytes":
        assert type(value) is str, f"{path}: {value!r} not Base64 bytes"
        v = base64.b64decode(value, validate=True)
    elif t == "array":
        assert type(value) is list, f"{path}: {value!r} not array"
        v = [connect_value(schema["items"], x, f"{path}[{i}]") for i, x in enumerate(value)]
    elif t == "struct":
        assert type(value) is dict, f"{path}: {value!r} not struct"
        names = [f["field"] for f in schema["fields"]]
        assert len(names) == len(set(names)), f"{path}: duplicate field names {names}"
        undeclared = set(value) - set(names)
        assert not undeclared, f"{path}: fields {sorted(undeclared)} are not in the schema (dropped by Connect)"
        v = {f["field"]: connect_value(f, value.get(f["field"]), f"{path}.{f['field']}") for f in schema["fields"]}
    else:
        raise AssertionError(f"{path}: unknown Connect type {t!r}")
    return _logical(schema, v)


def _logical(schema: dict[str, Any], v: Any) -> Any:
    name = schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal":
        with localcontext() as ctx:
            ctx.prec = 200
            return Decimal(int.from_bytes(v, "big", signed=True)).scaleb(-int(schema["parameters"]["scale"]))
    if name == "io.debezium.time.Date":
        return dt.date(1970, 1, 1) + dt.timedelta(days=v)
    if name == "io.debezium.time.MicroTime":
        return dt.timedelta(microseconds=v)
    if name == "io.debezium.time.Timestamp":
        return _EPOCH + dt.timedelta(milliseconds=v)
    if name == "io.debezium.time.MicroTimestamp":
        return _EPOCH + dt.timedelta(microseconds=v)
    if name == "io.debezium.time.ZonedTimestamp":
        assert v.endswith("Z"), v
        return dt.datetime.fromisoformat(v[:-1] + "+00:00")
    if name == "io.debezium.data.Bits":
        assert len(v) == (int(schema["parameters"]["length"]) + 7) // 8, v
        return int.from_bytes(v, "little")
    return v


def read_connect_json(raw: bytes | None) -> Any:
    """A schema'd JsonConverter message (`{schema, payload}`) read and decoded; None for a Kafka null."""
    if raw is None:
        return None
    doc = json.loads(raw)
    assert list(doc) == ["schema", "payload"], list(doc)
    return connect_value(doc["schema"], doc["payload"])


# ------------------------------------------------------------------------------------------- helpers


def cfg(**over: Any) -> DebeziumConfig:
    return DebeziumConfig(**{"topic_prefix": "dbz", **over})


def encoder(**over: Any) -> DebeziumEncoder:
    return DebeziumEncoder(cfg(**over), clock=lambda: NOW_NS)


def smt_encoder(**over: Any) -> DebeziumSmtEncoder:
    return DebeziumSmtEncoder(cfg(schemas_enable=False, **over), clock=lambda: NOW_NS)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def source(**over: Any) -> dict[str, Any]:
    s = {"version": "3.1.0.Final", "connector": "mysql", "name": "dbz", "ts_ms": 1700000001000, "snapshot": "false",
         "db": "shop", "sequence": None, "ts_us": 1700000001000000, "ts_ns": 1700000001000000000,
         "table": "orders", "server_id": 223344, "gtid": GTID, "file": "mysql-bin.000042", "pos": 1234567,
         "row": 1, "thread": None, "query": None}
    s.update(over)
    return s


def envelope_payload(before: Any, after: Any, op: str, **src: Any) -> dict[str, Any]:
    return {"before": before, "after": after, "source": source(**src), "transaction": None, "op": op,
            "ts_ms": 1700000005123, "ts_us": 1700000005123456, "ts_ns": NOW_NS}


def orders_value_schema() -> str:
    return (
        '{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},{"type":"string","optional":true,'
        '"field":"name"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,'
        '"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},{"type":"string",'
        '"optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"paid_at"}],'
        '"optional":true,"name":"dbz.shop.orders.Value","field":"%s"}'
    )


ORDERS_ENVELOPE_SCHEMA = (
    '{"type":"struct","fields":[' + orders_value_schema() % "before" + "," + orders_value_schema() % "after" + ","
    + SOURCE_SCHEMA + "," + REAL_ENVELOPE_TAIL_3_0_7 + '],"optional":false,"name":"dbz.shop.orders.Envelope",'
    '"version":2}'
)
ORDERS_KEY = (b'{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],'
              b'"optional":false,"name":"dbz.shop.orders.Key"},"payload":{"id":42}}')


def change(op: Op, **kw: Any) -> Change:
    kw.setdefault("commit_time", COMMIT)
    kw.setdefault("txn", GTID)
    kw.setdefault("server_id", 223344)
    return Change(op, kw.pop("table", ORDERS), kw.pop("position", POS), **kw)


# ---------------------------------------------------------------------------------- golden, per operation


def test_insert_golden() -> None:
    records = encoder().encode(change(Op.INSERT, after=ROW1), "orders-topic")
    assert [(r.topic, r.key) for r in records] == [("orders-topic", ORDERS_KEY)]
    assert records[0].value == (
        b'{"schema":' + ORDERS_ENVELOPE_SCHEMA.encode() + b',"payload":'
        + dumps(envelope_payload(None, ROW1_PAYLOAD, "c")) + b"}"
    )
    assert "咖啡 ☕".encode() in records[0].value  # UTF-8 as is
    decoded = read_connect_json(records[0].value)
    assert decoded["after"] == {**ROW1, "paid_at": ROW1["paid_at"]}
    assert read_connect_json(records[0].key) == {"id": 42}


def test_update_golden() -> None:
    records = encoder().encode(change(Op.UPDATE, before=ROW1, after=ROW2), "orders-topic")
    assert [r.key for r in records] == [ORDERS_KEY]
    payload = json.loads(records[0].value)["payload"]
    assert payload == envelope_payload(ROW1_PAYLOAD, ROW2_PAYLOAD, "u")
    assert read_connect_json(records[0].value)["after"]["amount"] == Decimal("-1.00")


def test_delete_is_followed_by_a_tombstone() -> None:
    records = encoder().encode(change(Op.DELETE, before=ROW2), "orders-topic")
    assert [(r.topic, r.key) for r in records] == [("orders-topic", ORDERS_KEY)] * 2
    assert json.loads(records[0].value)["payload"] == envelope_payload(ROW2_PAYLOAD, None, "d")
    assert records[1].value is None


def test_tombstones_can_be_turned_off() -> None:
    records = encoder(tombstones_on_delete=False).encode(change(Op.DELETE, before=ROW2), "t")
    assert len(records) == 1 and json.loads(records[0].value)["payload"]["op"] == "d"


def test_snapshot_row_is_a_read_with_the_snapshot_flag_and_no_binlog_position() -> None:
    snap = Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1)
    records = encoder().encode(snap, "t")
    assert json.loads(records[0].value)["payload"] == envelope_payload(
        None, ROW1_PAYLOAD, "r", snapshot="true", server_id=0, gtid=None, file="", pos=0, row=0,
        ts_ms=1700000005123, ts_us=1700000005123456, ts_ns=1700000005123456000)


def test_without_gtids_the_gtid_is_null() -> None:
    c = change(Op.INSERT, after=ROW1, txn="mysql-bin.000042:1200")
    assert json.loads(encoder().encode(c, "t")[0].value)["payload"]["source"]["gtid"] is None
    mariadb = change(Op.INSERT, after=ROW1, txn="0-1-42")
    assert json.loads(encoder().encode(mariadb, "t")[0].value)["payload"]["source"]["gtid"] == "0-1-42"


def test_an_update_of_the_key_is_delete_tombstone_create() -> None:
    after = {**ROW2, "id": 43}
    records = encoder().encode(change(Op.UPDATE, before=ROW1, after=after), "t")
    keys = [json.loads(r.key)["payload"] for r in records]
    assert keys == [{"id": 42}, {"id": 42}, {"id": 43}]
    assert [json.loads(r.value)["payload"]["op"] if r.value else None for r in records] == ["d", None, "c"]
    assert json.loads(records[2].value)["payload"]["before"] is None


def test_a_key_change_split_by_the_router_gives_the_same_records() -> None:
    """The router turns a key-changing UPDATE into DELETE + INSERT (same position): Debezium's sequence."""
    after = {**ROW2, "id": 43}
    enc = encoder()
    split = [*enc.encode(change(Op.DELETE, before=ROW1), "t"), *enc.encode(change(Op.INSERT, after=after), "t")]
    whole = encoder().encode(change(Op.UPDATE, before=ROW1, after=after), "t")
    assert [(r.key, r.value) for r in split] == [(r.key, r.value) for r in whole]


def test_a_key_equal_once_rendered_stays_one_update() -> None:
    t = TableSchema("s", "t", (Column("k", "decimal", "decimal(5,2)", precision=5, scale=2),), primary_key=("k",))
    records = encoder().encode(change(Op.UPDATE, table=t, before={"k": Decimal("1.5")},
                                      after={"k": Decimal("1.50")}), "x")
    assert len(records) == 1 and json.loads(records[0].value)["payload"]["op"] == "u"


def test_table_without_key_has_null_keys_and_still_a_tombstone() -> None:
    logs = TableSchema("app", "logs", (Column("msg", "text", "text", charset="utf8mb4"),))
    records = encoder().encode(change(Op.DELETE, table=logs, before={"msg": "hi"}), "t")
    assert [(r.key, r.value is None) for r in records] == [(None, False), (None, True)]
    assert read_connect_json(records[0].value)["before"] == {"msg": "hi"}


def test_the_message_key_is_the_sharding_columns_when_set() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4", nullable=False),
                                      Column("site", "int", "int(11)", nullable=False),
                                      Column("qty", "int", "int(11)")),
                    primary_key=("sku", "site"), sharding_columns=("site",))
    records = encoder().encode(change(Op.INSERT, table=t, after={"sku": "a", "site": 7, "qty": 1}), "t")
    assert json.loads(records[0].key) == {
        "schema": {"type": "struct", "fields": [{"type": "int32", "optional": False, "field": "site"}],
                   "optional": False, "name": "dbz.shop.stock.Key"},
        "payload": {"site": 7}}
    composite = TableSchema("shop", "stock", t.columns, primary_key=("site", "sku"))
    records = encoder().encode(change(Op.INSERT, table=composite, after={"sku": "a", "site": 7, "qty": 1}), "t")
    assert json.loads(records[0].key)["payload"] == {"site": 7, "sku": "a"}  # key order, not table order
    assert list(json.loads(records[0].key)["payload"]) == ["site", "sku"]


def test_heartbeats_write_nothing() -> None:
    assert encoder().encode(Change(Op.HEARTBEAT, None, POS, commit_time=COMMIT), "t") == []


def test_schema_names_use_the_prefix_and_sanitize_like_topic_names() -> None:
    t = TableSchema("my-db", "the table$", (Column("a", "int", "int(11)"),))
    s = json.loads(encoder(topic_prefix="pre.fix").encode(change(Op.INSERT, table=t, after={"a": 1}), "x")[0].value)
    assert s["schema"]["name"] == "pre.fix.my-db.the_table_.Envelope"
    assert s["schema"]["fields"][0]["name"] == "pre.fix.my-db.the_table_.Value"


# ---------------------------------------------------------------------------------- golden, per column type

# column, canonical value, the field's Connect schema (without `field`), the JSON payload value
COLUMN_CASES = [
    (Column("c", "tinyint", "tinyint(4)"), -128, {"type": "int16", "optional": True}, -128),
    (Column("c", "tinyint", "tinyint(3) unsigned", unsigned=True), 255, {"type": "int16", "optional": True}, 255),
    (Column("c", "smallint", "smallint(6)"), -32768, {"type": "int16", "optional": True}, -32768),
    (Column("c", "smallint", "smallint(5) unsigned", unsigned=True), 65535, {"type": "int32", "optional": True},
     65535),
    (Column("c", "mediumint", "mediumint(8) unsigned", unsigned=True), 16777215,
     {"type": "int32", "optional": True}, 16777215),
    (Column("c", "int", "int(11)", nullable=False), -2147483648, {"type": "int32", "optional": False}, -2147483648),
    (Column("c", "int", "int(10) unsigned", unsigned=True), 4294967295, {"type": "int64", "optional": True},
     4294967295),
    (Column("c", "bigint", "bigint(20)"), -9223372036854775808, {"type": "int64", "optional": True},
     -9223372036854775808),
    # bigint.unsigned.handling.mode=long: the bits as a signed long, as Debezium delivers them
    (Column("c", "bigint", "bigint(20) unsigned", unsigned=True), 18446744073709551615,
     {"type": "int64", "optional": True}, -1),
    (Column("c", "bigint", "bigint(20) unsigned", unsigned=True), 9223372036854775807,
     {"type": "int64", "optional": True}, 9223372036854775807),
    (Column("c", "float", "float"), 1.2345677614212036, {"type": "float", "optional": True}, 1.2345678),
    (Column("c", "float", "float(10,2)"), 1.25, {"type": "double", "optional": True}, 1.25),
    (Column("c", "double", "double"), 0.30000000000000004, {"type": "double", "optional": True},
     0.30000000000000004),
    (Column("c", "decimal", "decimal(12,2)", precision=12, scale=2), Decimal("5"),
     {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
      "parameters": {"scale": "2", "connect.decimal.precision": "12"}}, "AfQ="),
    (Column("c", "decimal", "decimal(65,30)", precision=65, scale=30),
     Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
     {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
      "parameters": {"scale": "30", "connect.decimal.precision": "65"}}, "4f1D4Wh6dCOTRq+nDL2ygsWAE4T8HZlxwPUu"),
    (Column("c", "decimal", "decimal(10,0)", precision=10, scale=0), Decimal("0"),
     {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
      "parameters": {"scale": "0", "connect.decimal.precision": "10"}}, "AA=="),
    (Column("c", "bit", "bit(1)"), 1, {"type": "boolean", "optional": True}, True),
    (Column("c", "bit", "bit(1)"), 0, {"type": "boolean", "optional": True}, False),
    (Column("c", "bit", "bit(10)"), 0b1000000001,
     {"type": "bytes", "optional": True, "name": "io.debezium.data.Bits", "version": 1,
      "parameters": {"length": "10"}}, "AQI="),  # little-endian: 01 02
    (Column("c", "bit", "bit(64)"), 2**64 - 1,
     {"type": "bytes", "optional": True, "name": "io.debezium.data.Bits", "version": 1,
      "parameters": {"length": "64"}}, "//////////8="),
    (Column("c", "bit", "bit(16)"), 1,
     {"type": "bytes", "optional": True, "name": "io.debezium.data.Bits", "version": 1,
      "parameters": {"length": "16"}}, "AQA="),
    (Column("c", "char", "char(10)", charset="utf8mb4"), "a😀中", {"type": "string", "optional": True}, "a😀中"),
    (Column("c", "text", "text", charset="utf8mb4"), 'q"\\\n\x01', {"type": "string", "optional": True},
     'q"\\\n\x01'),
    (Column("c", "binary", "binary(4)", charset="binary", precision=4), b"\xff\x00\xfe",
     {"type": "bytes", "optional": True}, "/wD+AA=="),  # right-padded to 4 bytes (DBZ-254)
    (Column("c", "varbinary", "varbinary(10)", charset="binary", precision=10), b"\xff\x80",
     {"type": "bytes", "optional": True}, "/4A="),
    (Column("c", "blob", "blob", charset="binary"), b"\x00\xff\xc3", {"type": "bytes", "optional": True}, "AP/D"),
    (Column("c", "json", "json"), '{"b": [1, 2.5], "a": "x"}',
     {"type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1},
     '{"b": [1, 2.5], "a": "x"}'),
    (Column("c", "enum", "enum('a','B','c d','x,y')", values=("a", "B", "c d", "x,y")), "c d",
     {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
      "parameters": {"allowed": "a,B,c d,x\\,y"}}, "c d"),
    (Column("c", "set", "set('x','y','z')", values=("x", "y", "z")), "x,z",
     {"type": "string", "optional": True, "name": "io.debezium.data.EnumSet", "version": 1,
      "parameters": {"allowed": "x,y,z"}}, "x,z"),
    (Column("c", "date", "date"), dt.date(2024, 2, 29),
     {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1}, 19782),
    (Column("c", "date", "date"), dt.date(1969, 12, 31),
     {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1}, -1),
    (Column("c", "time", "time(6)", fsp=6), -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
     {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTime", "version": 1}, -3020398999999),
    (Column("c", "time", "time"), dt.timedelta(hours=838, minutes=59, seconds=59),
     {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTime", "version": 1}, 3020399000000),
    (Column("c", "datetime", "datetime(6)", fsp=6), dt.datetime(2024, 1, 2, 3, 4, 5, 6),
     {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "version": 1},
     1704164645000006),
    (Column("c", "datetime", "datetime(4)", fsp=4), dt.datetime(2024, 1, 2, 3, 4, 5, 100),
     {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "version": 1},
     1704164645000100),
    (Column("c", "datetime", "datetime"), dt.datetime(9999, 12, 31, 23, 59, 59),
     {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "version": 1}, 253402300799000),
    (Column("c", "datetime", "datetime(3)", fsp=3), dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
     {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "version": 1}, -1),
    (Column("c", "timestamp", "timestamp(6)", fsp=6), dt.datetime(2024, 1, 1, 22, 4, 5, 123456, tzinfo=UTC),
     {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
     "2024-01-01T22:04:05.123456Z"),
    (Column("c", "timestamp", "timestamp(3)", fsp=3), dt.datetime(2024, 1, 1, 22, 4, 5, 100000, tzinfo=UTC),
     {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
     "2024-01-01T22:04:05.100Z"),
    (Column("c", "timestamp", "timestamp(2)", fsp=2), dt.datetime(2024, 1, 1, 22, 4, 5, tzinfo=UTC),
     {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
     "2024-01-01T22:04:05.00Z"),
    (Column("c", "timestamp", "timestamp"), dt.datetime(2024, 1, 2, 0, 0, tzinfo=UTC),
     {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
     "2024-01-02T00:00:00Z"),
    (Column("c", "timestamp", "timestamp", nullable=False), "0000-00-00 00:00:00",
     {"type": "string", "optional": False, "name": "io.debezium.time.ZonedTimestamp", "version": 1},
     "1970-01-01T00:00:00Z"),
    (Column("c", "year", "year(4)"), 2024,
     {"type": "int32", "optional": True, "name": "io.debezium.time.Year", "version": 1}, 2024),
    # zero dates: null when the column is nullable, else the epoch (Debezium's fallback)
    (Column("c", "date", "date"), "0000-00-00",
     {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1}, None),
    (Column("c", "date", "date", nullable=False), "0000-00-00",
     {"type": "int32", "optional": False, "name": "io.debezium.time.Date", "version": 1}, 0),
    (Column("c", "datetime", "datetime", nullable=False), "0000-00-00 00:00:00",
     {"type": "int64", "optional": False, "name": "io.debezium.time.Timestamp", "version": 1}, 0),
    (Column("c", "int", "int(11)"), None, {"type": "int32", "optional": True}, None),
    (Column("c", "geometry", "geometry"), bytes(4) + b"\x01\x01\x00\x00\x00" + bytes(16),
     {"type": "struct", "fields": [{"type": "bytes", "optional": False, "field": "wkb"},
                                   {"type": "int32", "optional": True, "field": "srid"}],
      "optional": True, "name": "io.debezium.data.geometry.Geometry", "version": 1, "doc": "Geometry"},
     {"wkb": "AQEAAAAAAAAAAAAAAAAAAAAAAAAA", "srid": None}),
    (Column("c", "point", "point"), (4326).to_bytes(4, "little") + base64.b64decode("AQEAAAAAAAAAAAD4PwAAAAAAAADA"),
     {"type": "struct", "fields": [
         {"type": "double", "optional": False, "field": "x"}, {"type": "double", "optional": False, "field": "y"},
         {"type": "bytes", "optional": True, "field": "wkb"}, {"type": "int32", "optional": True, "field": "srid"}],
      "optional": True, "name": "io.debezium.data.geometry.Point", "version": 1, "doc": "Geometry (POINT)"},
     {"x": 1.5, "y": -2.0, "wkb": "AQEAAAAAAAAAAAD4PwAAAAAAAADA", "srid": 4326}),
]


@pytest.mark.parametrize(("column", "value", "field_schema", "payload"), COLUMN_CASES,
                         ids=[f"{c.column_type}={v!r:.30}" for c, v, _, _ in COLUMN_CASES])
def test_column_type(column: Column, value: Any, field_schema: dict[str, Any], payload: Any) -> None:
    t = TableSchema("db", "t", (Column("id", "int", "int(11)", nullable=False), column), primary_key=("id",))
    msg = json.loads(encoder().encode(change(Op.INSERT, table=t, after={"id": 1, "c": value}), "x")[0].value)
    after_schema = msg["schema"]["fields"][1]
    assert after_schema["field"] == "after"
    assert after_schema["fields"][1] == {**field_schema, "field": "c"}
    assert msg["payload"]["after"]["c"] == payload
    assert type(msg["payload"]["after"]["c"]) is type(payload)
    connect_value(msg["schema"], msg["payload"])  # every value matches its declared type


def test_decoded_values_equal_the_source_values() -> None:
    """What a consumer decodes from the Connect schema gives back the row's values."""
    for column, value, _, payload in COLUMN_CASES:
        if payload is None or isinstance(value, str) and column.data_type not in ("char", "text", "json", "enum",
                                                                                     "set"):
            continue
        t = TableSchema("db", "t", (column,))
        got = read_connect_json(encoder().encode(change(Op.INSERT, table=t, after={"c": value}), "x")[0].value)
        got = got["after"]["c"]
        if column.data_type == "bigint" and column.unsigned:
            assert got % 2**64 == value
        elif column.data_type == "float" and "," not in column.column_type:
            assert got == pytest.approx(value, rel=1e-7)
        elif column.data_type == "timestamp":
            assert got == value
        elif column.data_type == "binary":
            assert got == value.ljust(column.precision, b"\0")
        elif column.data_type in ("geometry", "point"):
            assert got["wkb"] == value[4:]
        else:
            assert got == value, column


# ---------------------------------------------------------------------------------- decimals


DECIMALS = [
    # column, value, precise (Base64), string, double
    (Column("c", "decimal", "decimal(12,2)", precision=12, scale=2), Decimal("5"), "AfQ=", "5.00", 5.0),
    (Column("c", "decimal", "decimal(12,2)", precision=12, scale=2), Decimal("-1.00"), "nA==", "-1.00", -1.0),
    (Column("c", "decimal", "decimal(20,10)", precision=20, scale=10), Decimal("0E-10"), "AA==", "0E-10", 0.0),
    (Column("c", "decimal", "decimal(20,10)", precision=20, scale=10), Decimal("0.0000001"), "A+g=", "1.000E-7",
     1e-07),
    (Column("c", "decimal", "decimal(65,30)", precision=65, scale=30), Decimal("1" + "0" * 34 + ".5"),
     "GE8D6T/59Nqnl+1uOO1rDwBtaSM6dvUgAAAA", "10000000000000000000000000000000000.500000000000000000000000000000",
     1e34),
]


@pytest.mark.parametrize(("column", "value", "precise", "string", "double"), DECIMALS)
def test_decimal_handling_modes(column: Column, value: Decimal, precise: str, string: str, double: float) -> None:
    t = TableSchema("db", "t", (column,))

    def one(mode: str) -> tuple[Any, Any]:
        msg = json.loads(encoder(decimal_handling_mode=mode).encode(change(Op.INSERT, table=t, after={"c": value}),
                                                                   "x")[0].value)
        connect_value(msg["schema"], msg["payload"])
        return msg["schema"]["fields"][1]["fields"][0], msg["payload"]["after"]["c"]

    schema, got = one("precise")
    assert (schema["type"], schema["name"], got) == ("bytes", "org.apache.kafka.connect.data.Decimal", precise)
    assert schema["parameters"] == {"scale": str(column.scale), "connect.decimal.precision": str(column.precision)}
    assert one("string") == ({"type": "string", "optional": True, "field": "c"}, string)
    assert one("double") == ({"type": "double", "optional": True, "field": "c"}, double)


def test_bigint_unsigned_precise_mode_is_a_decimal() -> None:
    t = TableSchema("db", "t", (Column("c", "bigint", "bigint(20) unsigned", unsigned=True),))
    msg = json.loads(encoder(bigint_unsigned_handling_mode="precise").encode(
        change(Op.INSERT, table=t, after={"c": 2**64 - 1}), "x")[0].value)
    assert msg["schema"]["fields"][1]["fields"][0] == {
        "type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
        "parameters": {"scale": "0", "connect.decimal.precision": "20"}, "field": "c"}
    assert msg["payload"]["after"]["c"] == "AP//////////"
    assert connect_value(msg["schema"], msg["payload"])["after"]["c"] == 2**64 - 1


def test_a_decimal_with_more_digits_than_its_scale_is_a_schema_mismatch() -> None:
    t = TableSchema("db", "t", (Column("c", "decimal", "decimal(5,1)", precision=5, scale=1),))
    with pytest.raises(SchemaMismatchError, match=r"db\.t\.c \(decimal\(5,1\)\)"):
        encoder().encode(change(Op.INSERT, table=t, after={"c": Decimal("1.25")}), "x")


def test_a_row_with_an_unknown_column_is_a_schema_mismatch() -> None:
    with pytest.raises(SchemaMismatchError, match="column 'nope'"):
        encoder().encode(change(Op.INSERT, after={**ROW1, "nope": 1}), "x")


# ---------------------------------------------------------------------------------- DDL and truncate


def ddl_change(statement: str, **kw: Any) -> Change:
    return Change(Op.DDL, kw.pop("table", ORDERS), LogPosition("mysql-bin.000042", 2000), commit_time=1700000002,
                  txn=GTID, server_id=223344, ddl=statement, ddl_db="shop",
                  ddl_tables=kw.pop("ddl_tables", (("shop", "orders"),)), **kw)


def _column(name: str, jdbc: int, type_name: str, position: int, optional: bool, length: int | None = None,
            scale: int | None = None) -> dict[str, Any]:
    return {"name": name, "jdbcType": jdbc, "nativeType": None, "typeName": type_name, "typeExpression": type_name,
            "charsetName": None, "length": length, "scale": scale, "position": position, "optional": optional,
            "autoIncremented": False, "generated": False, "comment": None, "defaultValueExpression": None,
            "enumValues": None}


# ORDERS as Debezium's tableChanges describe it (the fixture does not say the table's default charset)
ORDERS_TABLE_CHANGE = {"type": "ALTER", "id": '"shop"."orders"', "table": {
    "defaultCharsetName": None, "primaryKeyColumnNames": ["id"], "columns": [
        _column("id", -5, "BIGINT", 1, False, 20),
        {**_column("name", 12, "VARCHAR", 2, True, 32), "charsetName": "utf8mb4"},
        _column("amount", 3, "DECIMAL", 3, True, 12, 2),
        _column("paid_at", 2014, "TIMESTAMP", 4, True, 3)],
    "comment": None}}


def test_ddl_goes_once_to_the_schema_change_topic() -> None:
    enc = encoder()
    assert enc.extra_topics() == ["dbz"]
    c = ddl_change("ALTER TABLE orders ADD note TEXT")
    records = enc.encode(c, "orders-topic")
    assert [r.topic for r in records] == ["dbz"]
    assert records[0].key == (b'{"schema":{"type":"struct","fields":[{"type":"string","optional":false,'
                              b'"field":"databaseName"}],"optional":false,'
                              b'"name":"io.debezium.connector.mysql.SchemaChangeKey","version":1},'
                              b'"payload":{"databaseName":"shop"}}')
    msg = json.loads(records[0].value)
    assert msg["payload"] == {
        "source": source(ts_ms=1700000002000, ts_us=1700000002000000, ts_ns=1700000002000000000, pos=2000, row=0),
        "ts_ms": 1700000005123, "databaseName": "shop", "schemaName": None,
        "ddl": "ALTER TABLE orders ADD note TEXT", "tableChanges": [ORDERS_TABLE_CHANGE]}
    assert msg["schema"]["name"] == "io.debezium.connector.mysql.SchemaChangeValue"
    assert [f["field"] for f in msg["schema"]["fields"]] == ["source", "ts_ms", "databaseName", "schemaName", "ddl",
                                                             "tableChanges"]
    assert msg["schema"]["fields"][5]["items"]["name"] == "io.debezium.connector.schema.Change"
    connect_value(msg["schema"], msg["payload"])
    # the router asks again for each partition and each topic the DDL is delivered to: written once
    assert enc.encode(c, "orders-topic") == [] and enc.encode(c, "other-topic") == []
    assert len(enc.encode(ddl_change("ALTER TABLE orders DROP note"), "orders-topic")) == 1


def test_ddl_naming_several_tables_and_none() -> None:
    enc = encoder()
    # Debezium writes one event per renamed pair, naming the new tables in source.table
    rename = ddl_change("RENAME TABLE a TO b, other.c TO other.d", table=None,
                        ddl_tables=(("shop", "a"), ("shop", "b"), ("other", "c"), ("other", "d")))
    payloads = [json.loads(r.value)["payload"] for r in enc.encode(rename, "t")]
    assert [(p["databaseName"], p["source"]["table"], p["ddl"], p["tableChanges"]) for p in payloads] == [
        ("shop", "b", "RENAME TABLE `shop`.`a` TO `shop`.`b`", []),
        ("other", "d", "RENAME TABLE `other`.`c` TO `other`.`d`", [])]
    create_db = Change(Op.DDL, None, POS, commit_time=COMMIT, ddl="CREATE DATABASE x", ddl_db="x")
    record = enc.encode(create_db, "t")[0]
    assert json.loads(record.key)["payload"] == {"databaseName": "x"}
    assert json.loads(record.value)["payload"]["source"]["table"] is None


def test_truncate_events_are_off_by_default_and_on_by_option() -> None:
    c = ddl_change("TRUNCATE TABLE orders")
    assert encoder().encode(c, "orders-topic") == []  # no schema-change event either, as Debezium 3.2+
    with_schema_change = encoder(truncate_schema_changes=True).encode(c, "orders-topic")
    assert [r.topic for r in with_schema_change] == ["dbz"]
    assert json.loads(with_schema_change[0].value)["payload"]["tableChanges"] == []
    enc = encoder(truncate_events=True)
    records = enc.encode(c, "orders-topic")
    assert [(r.topic, r.key) for r in records] == [("orders-topic", None)]
    msg = json.loads(records[0].value)
    assert msg["payload"] == envelope_payload(None, None, "t", ts_ms=1700000002000, ts_us=1700000002000000,
                                              ts_ns=1700000002000000000, pos=2000, row=0)
    assert msg["schema"]["name"] == "dbz.shop.orders.Envelope"
    assert enc.encode(c, "orders-topic") == []  # once per topic


def test_schema_changes_can_be_turned_off() -> None:
    enc = encoder(include_schema_changes=False)
    assert enc.extra_topics() == [] and enc.encode(ddl_change("ALTER TABLE orders ADD x INT"), "t") == []


# ---------------------------------------------------------------------------------- flatten


def test_flatten_writes_bare_payloads() -> None:
    enc = encoder_for("debezium_flatten", EncoderContext("task1", "MYSQL"), {"topic_prefix": "dbz"})
    enc.builder.clock = lambda: NOW_NS
    records = enc.encode(change(Op.DELETE, before=ROW2), "t")
    assert [r.key for r in records] == [b'{"id":42}', b'{"id":42}']
    assert records[0].value == dumps(envelope_payload(ROW2_PAYLOAD, None, "d"))
    assert records[1].value is None
    ddl = enc.encode(ddl_change("ALTER TABLE orders ADD x INT"), "t")[0]
    assert ddl.key == b'{"databaseName":"shop"}' and json.loads(ddl.value)["ddl"] == "ALTER TABLE orders ADD x INT"


# ---------------------------------------------------------------------------------- smt


def smt_flat(row_payload: dict[str, Any], op: str, deleted: str | None = "false") -> dict[str, Any]:
    out = {**row_payload, "__op": op, "__table": "orders", "__db": "shop", "__source_ts_ms": 1700000001000}
    if deleted is not None:
        out["__deleted"] = deleted
    return out


def test_smt_rewrite_mode() -> None:
    enc = smt_encoder()
    ins = enc.encode(change(Op.INSERT, after=ROW1), "t")
    assert [(r.key, json.loads(r.value)) for r in ins] == [(b'{"id":42}', smt_flat(ROW1_PAYLOAD, "c"))]
    upd = enc.encode(change(Op.UPDATE, before=ROW1, after=ROW2), "t")
    assert [json.loads(r.value) for r in upd] == [smt_flat(ROW2_PAYLOAD, "u")]
    dele = enc.encode(change(Op.DELETE, before=ROW2), "t")
    assert [(r.key, r.value and json.loads(r.value)) for r in dele] == [
        (b'{"id":42}', smt_flat(ROW2_PAYLOAD, "d", "true")), (b'{"id":42}', None)]
    snap = enc.encode(Change(Op.READ, ORDERS, SnapshotPosition("c", (42,)), after=ROW1), "t")
    assert json.loads(snap[0].value)["__op"] == "r"
    # without tombstones: Debezium's plain `rewrite` mode
    assert len(smt_encoder(tombstones_on_delete=False).encode(change(Op.DELETE, before=ROW2), "t")) == 1


def test_smt_tombstone_and_drop_modes() -> None:
    enc = smt_encoder(delete_handling="tombstone")
    assert [(r.key, r.value) for r in enc.encode(change(Op.DELETE, before=ROW2), "t")] == [(b'{"id":42}', None)]
    assert json.loads(enc.encode(change(Op.INSERT, after=ROW1), "t")[0].value) == smt_flat(ROW1_PAYLOAD, "c", None)
    enc = smt_encoder(delete_handling="drop")
    assert enc.encode(change(Op.DELETE, before=ROW2), "t") == []
    key_change = enc.encode(change(Op.UPDATE, before=ROW1, after={**ROW1, "id": 43}), "t")
    assert [r.key for r in key_change] == [b'{"id":43}']


def test_smt_with_schemas_declares_the_added_fields() -> None:
    enc = DebeziumSmtEncoder(cfg(), clock=lambda: NOW_NS)  # schemas_enable true
    rec = enc.encode(change(Op.DELETE, before=ROW2), "t")[0]
    msg = json.loads(rec.value)
    assert msg["schema"] == {
        "type": "struct", "fields": [
            {"type": "int64", "optional": False, "field": "id"},
            {"type": "string", "optional": True, "field": "name"},
            {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
             "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "field": "amount"},
            {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1,
             "field": "paid_at"},
            {"type": "string", "optional": True, "field": "__deleted"},
            {"type": "string", "optional": True, "field": "__op"},
            {"type": "string", "optional": True, "field": "__table"},
            {"type": "string", "optional": True, "field": "__db"},
            {"type": "int64", "optional": True, "field": "__source_ts_ms"}],
        "optional": False, "name": "dbz.shop.orders.Value"}
    assert read_connect_json(rec.value)["amount"] == Decimal("-1.00")
    assert read_connect_json(rec.key) == {"id": 42}


def test_smt_passes_schema_changes_and_drops_truncates() -> None:
    enc = smt_encoder()
    records = enc.encode(ddl_change("ALTER TABLE orders ADD note TEXT"), "t")
    assert [r.topic for r in records] == ["dbz"]
    assert json.loads(records[0].value)["ddl"] == "ALTER TABLE orders ADD note TEXT"
    assert smt_encoder(truncate_schema_changes=True, truncate_events=False).encode(
        ddl_change("TRUNCATE TABLE orders"), "t")[0].topic == "dbz"
    assert enc.encode(ddl_change("TRUNCATE TABLE orders"), "t") == []


# ---------------------------------------------------------------------------------- options, registry


@pytest.mark.parametrize(("name", "cls"), [("debezium", DebeziumEncoder), ("debezium_flatten", DebeziumEncoder),
                                           ("debezium_smt", DebeziumSmtEncoder)])
def test_registered(name: str, cls: type) -> None:
    enc = encoder_for(name, EncoderContext("task-1", "OB_MYSQL"), {})
    assert isinstance(enc, cls) and enc.name == name
    assert enc.cfg.topic_prefix == "task-1" and enc.extra_topics() == ["task-1"]
    assert enc.cfg.schemas_enable is (name == "debezium")


@pytest.mark.parametrize(("name", "options", "message"), [
    ("debezium", {"colour": "red"}, r"`format_options.colour`: unknown option of format debezium; valid: "
                                    r"topic_prefix, decimal_handling_mode"),
    ("debezium", {"decimal_handling_mode": "float"}, r"`format_options.decimal_handling_mode`: 'float' is not "
                                                     r"valid; valid: precise, string, double"),
    ("debezium", {"tombstones_on_delete": "no"}, r"`format_options.tombstones_on_delete`: must be true or false"),
    ("debezium", {"topic_prefix": "a b"}, r"`format_options.topic_prefix`: 'a b' is not a valid Kafka topic"),
    ("debezium_flatten", {"schemas_enable": True}, r"`format_options.schemas_enable`: unknown option"),
    ("debezium_smt", {"truncate_events": True}, r"`format_options.truncate_events`: unknown option"),
    ("debezium_smt", {"delete_handling": "none"}, r"valid: rewrite, tombstone, drop"),
])
def test_bad_options_are_named(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        encoder_for(name, EncoderContext("task1", "MYSQL"), options)


def test_options_reach_the_encoder() -> None:
    enc = encoder_for("debezium", EncoderContext("task1", "MYSQL"), {
        "topic_prefix": "p", "decimal_handling_mode": "string", "schemas_enable": False,
        "tombstones_on_delete": False, "truncate_events": True, "include_schema_changes": False})
    assert enc.cfg == DebeziumConfig("p", "string", "long", False, False, True, False, "rewrite")


# ---------------------------------------------------------------------------------- Connect records (Avro)


def test_connect_records_carry_connect_values_and_schemas() -> None:
    c = cfg()
    records = connect_records(change(Op.DELETE, before=ROW1), c)
    assert [(r.topic, r.value is None) for r in records] == [(None, False), (None, True)]
    rec = records[0]
    assert rec.key == {"id": 42} and rec.key_schema == cs.key_schema(ORDERS, c)
    assert rec.value_schema == cs.envelope_schema(ORDERS, c)
    before = rec.value["before"]
    assert before["amount"] == Decimal("12.50") and before["amount"].as_tuple().exponent == -2
    assert before["paid_at"] == "2023-11-14T22:13:20.500Z"
    assert records[1].key_schema == rec.key_schema and records[1].value_schema is None
    bits = TableSchema("db", "t", (Column("b", "bit", "bit(10)"), Column("bin", "blob", "blob", charset="binary")))
    after = connect_records(change(Op.INSERT, table=bits, after={"b": 513, "bin": b"\x00"}), c)[0].value["after"]
    assert after == {"b": b"\x01\x02", "bin": b"\x00"}
    ddl = connect_records(ddl_change("ALTER TABLE orders ADD x INT"), c)
    assert [(r.topic, r.key) for r in ddl] == [("dbz", {"databaseName": "shop"})]
    assert ddl[0].value_schema == cs.schema_change_value_schema()
    with pytest.raises(ValueError):
        connect_records(ddl_change("ALTER TABLE orders ADD y INT"), c, builder=EventBuilder(c, json_values=True))


# ---------------------------------------------------------------------------------- bytes


def test_the_standard_library_writes_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [change(Op.INSERT, after=ROW1), change(Op.UPDATE, before=ROW1, after=ROW2),
               change(Op.DELETE, before=ROW2), ddl_change("ALTER TABLE orders ADD note TEXT")]
    fast = [(r.key, r.value) for c in samples for r in encoder().encode(c, "t")]
    monkeypatch.setattr(json_format_mod, "_dumps", json_format_mod._json_dumps)
    slow = [(r.key, r.value) for c in samples for r in encoder().encode(c, "t")]
    assert slow == fast


def test_timestamps_in_other_zones_and_naive_ones_are_written_in_utc() -> None:
    from obsync.formats.debezium.values import zoned_timestamp

    plus5 = dt.timezone(dt.timedelta(hours=5))
    assert zoned_timestamp(dt.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=plus5), 3) == "2024-01-01T22:04:05.120Z"
    assert zoned_timestamp(dt.datetime(2024, 1, 2, 3, 4, 5), 0) == "2024-01-02T03:04:05Z"
    assert zoned_timestamp(dt.datetime(2024, 1, 2, 3, 4, 5, 500, tzinfo=UTC), 0) == "2024-01-02T03:04:05.0005Z"
    assert zoned_timestamp("0000-00-00 00:00:00.000", 3) == "1970-01-01T00:00:00.000Z"


def test_literal_column_defaults_are_in_the_field_schemas() -> None:
    """As Debezium's TableSchemaBuilder: the default, converted as values are, in key and value fields, optional
    columns included; none for columns without a literal default."""
    table = TableSchema("db", "t", (
        Column("id", "int", "int", nullable=False, default="5"),
        Column("n", "int", "int", nullable=False, default="0"),
        Column("price", "decimal", "decimal(10,2)", precision=10, scale=2, default="1.50"),
        Column("s", "varchar", "varchar(9)", charset="utf8mb4", default="it's"),
        Column("d", "date", "date", default="2020-01-02"),
        Column("ts", "timestamp", "timestamp(3)", fsp=3, default="10.5"),
        Column("b", "bit", "bit(1)", default="AQ=="),
        Column("zero", "date", "date", default="0000-00-00"),  # converts to null in a nullable column
        Column("none", "int", "int"),
    ), primary_key=("id",))
    c = cfg()
    value = {f["field"]: f for f in cs.value_schema(table, c)["fields"]}
    assert value["n"] == {"type": "int32", "optional": False, "default": 0, "field": "n"}
    assert value["price"]["default"] == base64.b64encode(b"\x00\x96").decode()  # 150 at scale 2
    assert value["s"] == {"type": "string", "optional": True, "default": "it's", "field": "s"}
    assert value["d"]["default"] == 18263
    assert value["ts"]["default"] == "1970-01-01T00:00:10.500Z"
    assert value["b"]["default"] is True
    assert "default" not in value["zero"] and "default" not in value["none"]
    assert cs.key_schema(table, c)["fields"][0]["default"] == 5
    assert {f["field"]: f.get("default") for f in cs.smt_value_schema(table, c)["fields"]}["n"] == 0
    assert cs.connect_schema_of(table.column("price"), cfg(decimal_handling_mode="string"))["default"] == "1.50"


def test_unscaled_is_the_decimal_context_integer() -> None:
    """`unscaled` (exact ratio) gives the integer, or the error, of scaling in a 200-digit context that traps
    inexact results, for random decimals of up to 210 digits, zeros, signs and non-numbers."""
    import random
    from decimal import Context, Inexact

    from obsync.formats.debezium.values import unscaled

    wide = Context(prec=200, traps=[Inexact])

    def reference(v: Decimal, scale: int) -> int:
        try:
            return int(v.scaleb(scale, wide).to_integral_exact(context=wide))
        except Inexact:
            raise ValueError(f"{v} has more than {scale} fraction digits") from None

    r = random.Random(11)
    values = [Decimal(x) for x in ("0", "-0", "0.00", "-0.00", "1E+5", "1E-5", "NaN", "sNaN", "-Infinity", "1E+300",
                                   "1" + "0" * 250 + "E-250", "1" + "0" * 250 + "1E-251", "9" * 201, "9" * 199)]
    for _ in range(3000):
        digits = r.randrange(10 ** r.randrange(1, 210))
        values.append(Decimal(f"{'-' if r.random() < 0.5 else ''}{digits}E{r.randrange(-60, 30)}"))
    for v in values:
        for scale in (0, 1, 2, 5, 10, 30):
            try:
                expected: Any = reference(v, scale)
            except (ValueError, OverflowError) as e:
                expected = (type(e), str(e))
            try:
                got: Any = unscaled(v, scale)
            except (ValueError, OverflowError) as e:
                got = (type(e), str(e))
            assert got == expected, (v, scale)


@pytest.mark.parametrize("json_values", [False, True])
def test_row_struct_is_each_column_converted_in_table_order(json_values: bool) -> None:
    """The generated row builder: every column of every type in table order, converted unless null; absent
    columns null; odd column names as they are."""
    import dataclasses

    from obsync.formats.debezium.envelope import TablePlan

    columns = [Column("id", "bigint", "bigint(20)", nullable=False), Column("it's \"odd\"\n", "int", "int(11)")]
    row: dict[str, Any] = {"id": 7, "it's \"odd\"\n": 3}
    for i, (col, value, _, _) in enumerate(COLUMN_CASES):
        columns.append(dataclasses.replace(col, name=f"c{i}"))
        row[f"c{i}"] = value
    table = TableSchema("shop", "everything", tuple(columns), primary_key=("id",))
    for options in ({}, {"decimal_handling_mode": "string"}, {"bigint_unsigned_handling_mode": "precise"}):
        plan = TablePlan(table, cfg(**options))
        convs = plan._json if json_values else plan._connect
        expected = {n: None if row.get(n) is None else row[n] if f is None else f(row[n]) for n, f in convs}
        got = plan.row(row, json_values)
        assert list(got.items()) == list(expected.items())
        assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
        sparse = {"id": 7, "c3": row["c3"]}
        assert plan.row(sparse, json_values) == {n: None if n not in sparse else expected[n] for n, _ in convs}


# ---------------------------------------------------------------- the compiled JSON row writer against orjson


def _every_kind_table() -> TableSchema:
    cols = [Column("id", "int", "int(11)", nullable=False), Column("ti", "tinyint", "tinyint(4)"),
            Column("ub", "bigint", "bigint(20) unsigned", unsigned=True), Column("fl", "float", "float"),
            Column("db", "double", "double"), Column("d2", "decimal", "decimal(12,2)", precision=12, scale=2),
            Column("d0", "decimal", "decimal(30,0)", precision=30, scale=0),
            Column("d9", "decimal", "decimal(20,9)", precision=20, scale=9),
            Column("b1", "bit", "bit(1)"), Column("b9", "bit", "bit(9)"),
            Column("bin", "binary", "binary(3)", precision=3),
            Column("vb", "varbinary", "varbinary(9)"), Column("s \"q\"", "varchar", "varchar(9)", charset="utf8mb4"),
            Column("j", "json", "json"), Column("e", "enum", "enum('a','b')"), Column("day", "date", "date"),
            Column("nday", "date", "date", nullable=False), Column("tm", "time", "time(3)", fsp=3),
            Column("y", "year", "year")]
    for fsp in range(7):
        cols.append(Column(f"dt{fsp}", "datetime", f"datetime({fsp})", fsp=fsp))
        cols.append(Column(f"ts{fsp}", "timestamp", f"timestamp({fsp})", fsp=fsp))
    return TableSchema("shop", "every", tuple(cols), primary_key=("id",))


_PLUS2 = dt.timezone(dt.timedelta(hours=2))
_DEBEZIUM_EDGES: dict[str, list[Any]] = {
    "ti": [0, -128, 127, True, 2**70], "ub": [0, 2**63, 2**64 - 1], "fl": [0.1, 1e-45, 3.4e38, -0.0],
    "db": [0.1, 1e16, 1e-7, -0.0, float("inf"), 5e-324, 3],
    "d2": [Decimal("0"), Decimal("-0.00"), Decimal("0.05"), Decimal("-0.05"), Decimal("1.5"), Decimal("-128"),
           Decimal("127"), Decimal("128"), Decimal("-129"), Decimal("9999999999.99"), Decimal("1E+3"),
           Decimal("1.500"), Decimal("1.505"), Decimal("NaN"), "12.5", 7, Decimal("12.50"), Decimal("-12.50"),
           Decimal("0.00"), Decimal("-0.01"), Decimal("99999999999999999999.99")],
    "d0": [Decimal("123456789012345678"), Decimal("1234567890123456789"), Decimal("-999999999999999999999999999999"),
           Decimal("0E+2"), Decimal("0"), Decimal("-0"), Decimal("-7"), Decimal("7.0")],
    "d9": [Decimal("0.000000001"), Decimal("-0.000000001"), Decimal("12.3"), Decimal("999999999.999999999"),
           Decimal("1E-9"), Decimal("-0.000000000"), Decimal("1.000000000"), Decimal("0.1234567890")],
    "b1": [0, 1, b"\x01"], "b9": [0, 511, b"\x01\xff"], "bin": [b"a", b"abc"], "vb": [b"", b"\x00\xff"],
    "s \"q\"": ["", "é\u2028\U0001f600", "".join(map(chr, range(32))), "\ud800"], "j": ['{"a": 1}'], "e": ["a"],
    "day": [dt.date(1970, 1, 1), dt.date(1, 1, 1), dt.date(1969, 12, 31), dt.date(9999, 12, 31), "0000-00-00",
            dt.datetime(2024, 1, 2, 3)],
    "nday": [dt.date(2024, 2, 29), "0000-00-00"], "tm": [dt.timedelta(hours=-838), dt.timedelta(microseconds=1)],
    "y": [1901, 2155],
}
for _fsp in range(7):
    _DEBEZIUM_EDGES[f"dt{_fsp}"] = [dt.datetime(1970, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                                    dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
                                    dt.datetime(2024, 5, 6, 7, 8, 9, 120000), dt.datetime(2024, 1, 1, tzinfo=_PLUS2),
                                    dt.date(2024, 1, 2), "0000-00-00 00:00:00"]
    _DEBEZIUM_EDGES[f"ts{_fsp}"] = [dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(2024, 5, 6, 7, 8, 9, 120000),
                                    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
                                    dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 1, 1, tzinfo=_PLUS2),
                                    "0000-00-00 00:00:00"]


@pytest.mark.parametrize("mode", ["precise", "string", "double"])
def test_the_compiled_json_row_writes_what_orjson_writes_of_the_struct(mode: str) -> None:
    import orjson

    from obsync.formats.debezium import envelope

    if envelope._JsonRow is None:
        pytest.skip("installed without a C compiler: the struct and orjson are the only path")
    table = _every_kind_table()
    plan = envelope.TablePlan(table, cfg(decimal_handling_mode=mode, bigint_unsigned_handling_mode="precise"
                                         if mode == "string" else "long"))
    assert plan._json_row is not None
    base = {c.name: None for c in table.columns} | {"id": 1}
    rows = [base, {"id": 2}, {}]  # absent columns are null
    rows += [{**base, name: v} for name, values in _DEBEZIUM_EDGES.items() for v in values]
    compared = failed = 0
    for row in rows:
        try:
            want: Any = orjson.dumps(plan.row(row, True))
        except Exception as exc:  # noqa: BLE001 - both must fail
            with pytest.raises(Exception):  # noqa: B017, PT011 - the writer's own error; row_json then raises exc
                plan._json_row(row)
            with pytest.raises(type(exc)):  # the struct comes back, and orjson refuses it alike
                orjson.dumps({"after": plan.row_json(row)})
            failed += 1
            continue
        assert plan._json_row(row) == want, row
        assert orjson.dumps({"after": plan.row_json(row)}) == b'{"after":' + want + b"}"
        compared += 1
    assert compared > 100 and failed > 0
    with pytest.raises(SchemaMismatchError, match="has column 'nope'"):  # as `row` says
        plan.row_json({**base, "nope": 1})


def test_debezium_messages_are_the_same_bytes_with_the_compiled_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from obsync.formats.debezium import envelope

    if envelope._JsonRow is None:
        pytest.skip("installed without a C compiler")
    table = _every_kind_table()
    rng = random.Random(11)
    changes = []
    for i in range(300):
        row = {c.name: None for c in table.columns} | {"id": i}
        for name, values in _DEBEZIUM_EDGES.items():
            v = rng.choice(values)
            if not (isinstance(v, str) and "\ud800" in v) and not (isinstance(v, int) and v > 2**64) \
                    and not (isinstance(v, float) and v in (float("inf"), float("-inf"))) \
                    and not (isinstance(v, Decimal) and (v.is_nan() or v == Decimal("1.505"))):
                row[name] = v
        other = {**row, "y": 1999}
        op = rng.choice([Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE])
        images = {"before": row} if op is Op.DELETE else {"after": row, "before": other} if op is Op.UPDATE \
            else {"after": row}
        if op is Op.UPDATE and i % 7 == 0:
            images["before"] = {**other, "id": -i}  # the key changed: delete, tombstone, create
        if i % 11 == 0:  # the key written by the key's template (`_table_templates`): its edges, and a bool
            edge = rng.choice([2**63 - 1, -(2**63), 2**64 - 1, True])
            images = {k: {**img, "id": edge} for k, img in images.items()}
        log = op is not Op.READ
        changes.append(Change(op, table, POS if log else SnapshotPosition("shop.every/1", (i,)),
                              commit_time=rng.choice([COMMIT, 1700000001.0000007, None]) if log else None,
                              txn=rng.choice([GTID, "mysql-bin.000001.7:4", None]),
                              server_id=rng.choice([None, 0, 7, 2**40]), **images))
    for schemas, tombstones in ((True, True), (False, True), (True, False)):
        c = cfg(schemas_enable=schemas, tombstones_on_delete=tombstones)
        fast = DebeziumEncoder(c, clock=lambda: NOW_NS)
        assert fast.builder.fragments and fast._template is not None
        assert fast._templates.get(table)[1] == "id"  # the key by its template
        rows_only = DebeziumEncoder(c, clock=lambda: NOW_NS)  # the compiled rows in the general path
        rows_only._template = None
        slow = DebeziumEncoder(c, clock=lambda: NOW_NS)  # neither
        slow.builder.fragments, slow._template = False, None
        want = [slow.encode(c, "T") for c in changes]
        assert [fast.encode(c, "T") for c in changes] == want
        assert [rows_only.encode(c, "T") for c in changes] == want
        assert sum(len(r) for r in want) > len(changes)  # tombstones and key-changing updates among them
        full = {c.name: None for c in table.columns}
        no_key = {k: v for k, v in full.items() if k != "id"} | {"nope": 1}  # as many columns, the key's renamed
        for after in (full | {"id": 2**64}, full | {"id": -(2**63) - 1}, no_key):  # the same error from every path
            bad = Change(Op.INSERT, table, POS, after=after)
            errors = []
            for enc in (fast, rows_only, slow):
                with pytest.raises(Exception) as caught:  # noqa: PT011 - compared below
                    enc.encode(bad, "T")
                errors.append((type(caught.value), str(caught.value)))
            assert errors[0] == errors[1] == errors[2], after
        assert errors[0][0] is SchemaMismatchError and "has column 'nope'" in errors[0][1]
    assert not DebeziumSmtEncoder(cfg()).builder.fragments  # its rows are read, not only written


@pytest.mark.parametrize("mode", ["precise", "string", "double"])
def test_the_compiled_connect_values_are_the_generated_builders(mode: str) -> None:
    # the Avro format's rows (Connect values) come from `JsonRow.values` when it was built
    from obsync.formats.debezium import envelope

    if envelope._JsonRow is None:
        pytest.skip("installed without a C compiler")
    table = _every_kind_table()
    plan = envelope.TablePlan(table, cfg(decimal_handling_mode=mode))
    assert plan._connect_row is not None
    base = {c.name: None for c in table.columns} | {"id": 1}
    rows = [base, {"id": 2}, {}] + [{**base, name: v} for name, values in _DEBEZIUM_EDGES.items() for v in values]
    compared = failed = 0
    for row in rows:
        try:
            want = plan._rows[False](row.get)  # the generated Python builder
        except Exception as exc:  # noqa: BLE001 - both must fail, and `row` must name the column
            with pytest.raises(type(exc)):
                plan._connect_row(row)
            with pytest.raises(SchemaMismatchError):
                plan.row(row, False)
            failed += 1
            continue
        got = plan.row(row, False)
        assert repr(list(got.items())) == repr(list(want.items())), row  # repr: NaN equals itself there
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()], row
        compared += 1
    assert compared > 100 and (failed > 0 or mode == "double")  # in double mode every edge value converts


@pytest.mark.parametrize("logical_types", ["connect", "all"])
def test_avro_messages_are_the_same_bytes_with_the_row_fast_path(logical_types: str) -> None:
    """`AvroEncoder._encode_row` (a row change's records without the events between) against the general path:
    the same records in the same order (the schema topic's records first, once), the same errors."""
    import random

    from obsync.formats.avro.encoder import AvroEncoder

    table = _every_kind_table()
    other = TableSchema("shop", "small", (Column("k", "int", "int(11)", nullable=False),
                                          Column("d", "decimal", "decimal(5,2)", precision=5, scale=2)),
                        primary_key=("k",))
    rng = random.Random(5)
    changes = []
    for i in range(400):
        if i % 5 == 0:
            row = {"k": i, "d": rng.choice([Decimal("1.50"), Decimal("-0.00"), Decimal("1.505"), None])}
            t = other
        else:
            row = {c.name: None for c in table.columns} | {"id": i}
            for name, values in _DEBEZIUM_EDGES.items():
                if rng.random() < 0.3:
                    row[name] = rng.choice(values)  # some of them refused: the same error both ways
            t = table
        key = "k" if t is other else "id"
        op = rng.choice([Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE])
        changed = {**row, key: -i} if i % 7 == 0 else dict(row)  # every 7th update changes the message key
        images = {"before": row} if op is Op.DELETE else {"after": row, "before": changed} if op is Op.UPDATE \
            else {"after": row}
        log = op is not Op.READ
        changes.append(Change(op, t, POS if log else SnapshotPosition(f"{t.full_name}/1", (i,)),
                              commit_time=rng.choice([COMMIT, None]) if log else None,
                              txn=rng.choice([GTID, None]), server_id=rng.choice([None, 7]), **images))

    def outcome(enc: AvroEncoder, c: Change, topic: str, on_lane: bool) -> Any:
        try:
            return (enc.encode_on_lane if on_lane else enc.encode)(c, topic)
        except Exception as exc:  # noqa: BLE001 - compared: both must fail alike
            return type(exc), str(exc)

    for tombstones in (True, False):
        c = cfg(tombstones_on_delete=tombstones)
        fast = AvroEncoder(c, logical_types=logical_types, clock=lambda: NOW_NS)
        slow = AvroEncoder(c, logical_types=logical_types, clock=lambda: NOW_NS)
        slow._encode_row = lambda *args: False  # type: ignore[method-assign]  # the general path alone
        want = [outcome(slow, ch, f"T{i % 3}", i % 4 == 0) for i, ch in enumerate(changes)]
        got = [outcome(fast, ch, f"T{i % 3}", i % 4 == 0) for i, ch in enumerate(changes)]
        for ch, g, w in zip(changes, got, want, strict=True):
            assert g == w, ch
        from obsync.formats.avro import plan as avro_plan
        if avro_plan._AvroWriter is not None:  # the compiled writer took the envelopes as tuples
            # (`every` has column names Avro renames: no compiled writer, the struct's way alone)
            values = [w for (_, part, _), w in fast._writers.items() if part == "value" and w.direct is not None]
            assert values and all(w.tuples for w in values)
        records = [r for w in want if isinstance(w, list) for r in w]
        assert sum(isinstance(w, tuple) for w in want) > 10  # refused rows among them
        assert sum(r.value is None for r in records) > (10 if tombstones else -1)
        assert sum(r.topic == "dbz.schemas" for r in records) == 4  # key and value schemas of 2 tables, once each


def test_the_envelope_tuple_is_the_envelope_in_order() -> None:
    from obsync.formats.debezium.envelope import ENVELOPE_FIELDS, SOURCE_FIELDS, TablePlan

    b = EventBuilder(cfg(), json_values=False)
    table = TableSchema("shop", "t", (Column("id", "int", "int(11)", nullable=False),), primary_key=("id",))
    plan = TablePlan(table, cfg())
    for change in (Change(Op.INSERT, table, POS, after={"id": 1}, commit_time=COMMIT, txn=GTID, server_id=7),
                   Change(Op.READ, table, SnapshotPosition("shop.t/1", (1,)), after={"id": 1})):
        want = b.envelope(change, plan, None, {"id": 1}, "c", NOW_NS)
        got = b.envelope_tuple(change, plan, None, {"id": 1}, "c", NOW_NS)
        source = dict(zip(SOURCE_FIELDS, got[2], strict=True))
        assert {**dict(zip(ENVELOPE_FIELDS, got, strict=True)), "source": source} == want
        assert list(want) == list(ENVELOPE_FIELDS) and list(want["source"]) == list(SOURCE_FIELDS)

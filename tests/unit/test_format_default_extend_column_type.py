"""The `default_extend_column_type` format: the Default format's bytes plus `postStruct.__light_type`."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.default import DefaultEncoder
from obsync.formats.default_extend_column_type import DefaultExtendColumnTypeEncoder
from obsync.formats.registry import encoder_for
from tests.helpers.format_rows import GTID, POS, ROW1, ROW2

ORDERS = TableSchema(
    "shop",
    "orders",
    (
        Column("id", "bigint", "bigint(20) unsigned", nullable=False, unsigned=True),
        Column("name", "varchar", "varchar(32)", charset="utf8mb4", precision=32),
        Column("amount", "decimal", "decimal(12,2)", precision=12, scale=2),
        Column("paid_at", "timestamp", "timestamp(3)", fsp=3),
    ),
    primary_key=("id",),
)

ROW1_JSON = '"id":"42","name":"咖啡 ☕","amount":"12.50","paid_at":"1700000000.500"'
LIGHT = (
    '"__light_type":{"id":{"schemaType":"BIGINT","columnType":"bigint(20) unsigned"},'
    '"name":{"schemaType":"VARCHAR","columnType":"varchar(32)"},'
    '"amount":{"schemaType":"DECIMAL","columnType":"decimal(12,2)"},'
    '"paid_at":{"schemaType":"TIMESTAMP","columnType":"timestamp(3)"}}'
)


def encode(change: Change, enc: DefaultEncoder | None = None) -> list[tuple[bytes | None, bytes]]:
    records = (enc or DefaultExtendColumnTypeEncoder("task1")).encode(change, "t")
    return [(r.key, r.value) for r in records]  # type: ignore[misc]  # no tombstones here: every value is set


def default(change: Change) -> list[tuple[bytes | None, bytes]]:
    return [(r.key, r.value) for r in DefaultEncoder("task1").encode(change, "t")]  # type: ignore[misc]  # no tombstones here: every value is set


def with_types(message: bytes) -> bytes:
    """A Default message with `__light_type` added at the end of its `postStruct`."""
    head, tail = message.split(b'},"allMetaData":', 1)
    return head + b"," + LIGHT.encode() + b'},"allMetaData":' + tail


# ------------------------------------------------------------------------------------------- golden


def test_insert() -> None:
    [(key, value)] = encode(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001, txn=GTID))
    assert key == b"[42]"
    assert value == (
        '{"prevStruct":null,"postStruct":{' + ROW1_JSON + "," + LIGHT + '},"allMetaData":{"checkpoint":"1700000001",'
        '"record_primary_key":"id","record_primary_value":"42","source_identity":"task1","dbType":"MYSQL",'
        '"storeDataSequence":1700000001001234567,"table_name":"orders","db":"shop","timestamp":"1700000001",'
        f'"uniqueId":"{GTID}"}},"recordType":"INSERT"}}'
    ).encode()


@pytest.mark.parametrize(
    "change",
    [
        Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=ROW2, commit_time=1700000001, txn=GTID),
        Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1),
    ],
    ids=["update", "snapshot row"],
)
def test_row_messages_are_default_plus_types(change: Change) -> None:
    [(key, value)] = encode(change)
    [(default_key, default_value)] = default(change)
    assert key == default_key
    assert value == with_types(default_value)


@pytest.mark.parametrize(
    "change",
    [
        Change(Op.DELETE, ORDERS, POS, before=ROW2, commit_time=1700000001, txn=GTID),
        Change(Op.DDL, ORDERS, POS, commit_time=1700000002, txn=GTID, ddl="ALTER TABLE orders ADD c INT",
               ddl_db="shop", ddl_tables=(("shop", "orders"),)),
        Change(Op.DDL, None, POS, commit_time=1700000002, ddl="DROP INDEX i ON t", ddl_db="shop"),
        Change(Op.HEARTBEAT, None, POS, commit_time=1700000003),
    ],
    ids=["delete", "ddl", "ddl on untracked tables", "heartbeat"],
)
def test_messages_without_a_row_after_are_the_default_ones(change: Change) -> None:
    assert encode(change) == default(change)


def test_an_update_of_the_key_keeps_the_types_on_the_insert_only() -> None:
    change = Change(Op.UPDATE, ORDERS, POS, before=ROW1, after={**ROW2, "id": 43}, commit_time=1700000001)
    records = encode(change)
    defaults = default(change)
    assert [k for k, _ in records] == [b"[42]", b"[43]"]
    assert records[0][1] == defaults[0][1]  # the DELETE
    assert records[1][1] == with_types(defaults[1][1])  # the INSERT


def test_table_without_a_key_and_composite_key() -> None:
    logs = TableSchema("app", "logs", (Column("msg", "text", "text", charset="utf8mb4"),))
    [(key, value)] = encode(Change(Op.INSERT, logs, POS, after={"msg": "hi"}, commit_time=1))
    assert key is None
    assert json.loads(value)["postStruct"]["__light_type"] == {"msg": {"schemaType": "TEXT", "columnType": "text"}}
    stock = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)"), Column("site", "int", "int(11)")),
                        primary_key=("sku", "site"))
    [(key, value)] = encode(Change(Op.INSERT, stock, POS, after={"sku": "a", "site": 7}, commit_time=1))
    assert key == b'["a",7]'
    assert list(json.loads(value)["postStruct"]) == ["sku", "site", "__light_type"]


def test_a_column_named_like_the_metadata_does_not_mislead_the_splice() -> None:
    t = TableSchema("s", "t", (Column("allMetaData", "varchar", "varchar(40)"),))
    row = {"allMetaData": '},"allMetaData":{'}
    [(_, value)] = encode(Change(Op.INSERT, t, POS, after=row, commit_time=1))
    msg = json.loads(value)
    assert msg["postStruct"] == {**row, "__light_type": {"allMetaData": {"schemaType": "VARCHAR",
                                                                         "columnType": "varchar(40)"}}}
    assert msg["allMetaData"]["table_name"] == "t"


def test_every_column_type_is_typed() -> None:
    cols = (
        Column("i", "int", "int(11)"), Column("e", "enum", "enum('a','b')", values=("a", "b")),
        Column("b", "bit", "bit(3)"), Column("j", "json", "json"), Column("bl", "longblob", "longblob"),
        Column("t", "time", "time(6)", fsp=6), Column("y", "year", "year(4)"), Column("f", "float", "float"),
    )
    t = TableSchema("s", "t", cols, primary_key=("i",))
    row = {"i": 1, "e": "b", "b": 5, "j": "[]", "bl": b"\x00", "t": dt.timedelta(seconds=1), "y": 2024, "f": 0.5}
    [(_, value)] = encode(Change(Op.READ, t, SnapshotPosition("c", (1,)), after=row))
    post = json.loads(value)["postStruct"]
    assert post["__light_type"] == {c.name: {"schemaType": c.data_type.upper(), "columnType": c.column_type}
                                    for c in cols}
    assert {k: v for k, v in post.items() if k != "__light_type"} == json.loads(default(
        Change(Op.READ, t, SnapshotPosition("c", (1,)), after=row))[0][1])["postStruct"]


def test_replays_give_identical_bytes() -> None:
    change = Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001, txn=GTID)
    enc = DefaultExtendColumnTypeEncoder("task1")
    first = encode(change, enc)
    copy = TableSchema.from_dict(ORDERS.to_dict())
    assert encode(Change(Op.INSERT, copy, POS, after=dict(ROW1), commit_time=1700000001, txn=GTID), enc) == first
    assert encode(change) == first


# ------------------------------------------------------------------------------------- registry, options


def test_registered_with_the_default_options() -> None:
    enc = encoder_for("default_extend_column_type", EncoderContext("task1", "OB_MYSQL"),
                      {"tenant": "t1", "source_identity": "sub-7"})
    assert isinstance(enc, DefaultExtendColumnTypeEncoder) and enc.name == "default_extend_column_type"
    meta = json.loads(encode(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1), enc)[0][1])["allMetaData"]
    assert (meta["db"], meta["dbType"], meta["source_identity"]) == ("t1.shop", "OB_MYSQL", "sub-7")


def test_unknown_format_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"`format_options.colour`.*default_extend_column_type; "
                                          r"valid: source_identity, tenant"):
        encoder_for("default_extend_column_type", EncoderContext("task1", "MYSQL"), {"colour": "red"})

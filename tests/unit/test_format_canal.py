"""The `canal` format (Canal's flat message): exact message bytes per kind of change, DDL kinds, keys, options."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.canal import CanalEncoder, ddl_kind, gtid_of, sql_type
from obsync.formats.registry import encoder_for
from tests.helpers.format_rows import GTID, ORDERS, POS, ROW1, ROW2, UTC

TS = 1700000009.123  # the encoder's clock: `ts` is 1700000009123


ROW1_JSON = '{"id":"42","name":"咖啡 ☕","amount":"12.50","paid_at":"2023-11-14 22:13:20.500"}'
ROW2_JSON = '{"id":"42","name":"咖啡 ☕","amount":"13.00","paid_at":null}'
TYPES_JSON = ('"mysqlType":{"id":"bigint(20)","name":"varchar(32)","amount":"decimal(12,2)",'
              '"paid_at":"timestamp(3)"},'
              '"old":%s,"pkNames":["id"],"sql":"","sqlType":{"id":-5,"name":12,"amount":3,"paid_at":93}')


def encoder(**options: object) -> CanalEncoder:
    return CanalEncoder(clock=lambda: TS, **options)  # type: ignore[arg-type]  # options: loosely typed test keyword arguments


def encode_one(change: Change, enc: CanalEncoder | None = None) -> tuple[bytes | None, bytes]:
    records = (enc or encoder()).encode(change, "orders-topic")
    assert len(records) == 1 and records[0].topic == "orders-topic"
    assert records[0].value is not None
    return records[0].key, records[0].value


def row_message(data: str, kind: str, old: str = "null", es: str = "1700000001000", gtid: str = GTID,
                ident: str = "42000001234567") -> bytes:
    return (
        f'{{"data":[{data}],"database":"shop","es":{es},"gtid":"{gtid}","id":{ident},"isDdl":false,'
        + TYPES_JSON % old
        + f',"table":"orders","ts":1700000009123,"type":"{kind}"}}'
    ).encode()


# ------------------------------------------------------------------------------------------- golden


def test_insert() -> None:
    key, value = encode_one(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001.0, txn=GTID))
    assert key == b"[42]"
    assert value == row_message(ROW1_JSON, "INSERT")
    assert "咖啡 ☕".encode() in value  # UTF-8 as is, not \u escapes


def test_update_has_the_old_values_of_the_changed_columns_only() -> None:
    key, value = encode_one(Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=ROW2, commit_time=1700000001,
                                   txn=GTID))
    assert key == b"[42]"
    assert value == row_message(ROW2_JSON, "UPDATE", old='[{"amount":"12.50","paid_at":"2023-11-14 22:13:20.500"}]')


def test_update_from_null_writes_the_null_old_value_as_canal_does() -> None:
    _, value = encode_one(Change(Op.UPDATE, ORDERS, POS, before=ROW2, after=ROW1, commit_time=1700000001,
                                 txn=GTID))
    assert json.loads(value)["old"] == [{"amount": "13.00", "paid_at": None}]


def test_update_that_changes_nothing_has_one_empty_old_row() -> None:
    _, value = encode_one(Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=dict(ROW1), commit_time=1700000001))
    assert json.loads(value)["old"] == [{}]


def test_delete_carries_the_before_image_in_data() -> None:
    key, value = encode_one(Change(Op.DELETE, ORDERS, POS, before=ROW2, commit_time=1700000001, txn=GTID))
    assert key == b"[42]"
    assert value == row_message(ROW2_JSON, "DELETE")


def test_snapshot_row_is_an_insert_with_no_commit_time_batch_or_gtid() -> None:
    change = Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1)
    key, value = encode_one(change)
    assert key == b"[42]"
    assert value == row_message(ROW1_JSON, "INSERT", es="0", gtid="", ident="0")


def test_ddl() -> None:
    change = Change(Op.DDL, ORDERS, LogPosition("mysql-bin.000042", 2000), commit_time=1700000002, txn=GTID,
                    ddl="ALTER TABLE `orders` ADD COLUMN note TEXT", ddl_db="shop",
                    ddl_tables=(("shop", "orders"),))
    key, value = encode_one(change)
    assert key is None
    assert value == (
        '{"data":null,"database":"shop","es":1700000002000,"gtid":"' + GTID + '","id":42000000002000,'
        '"isDdl":true,"mysqlType":null,"old":null,"pkNames":null,'
        '"sql":"ALTER TABLE `orders` ADD COLUMN note TEXT","sqlType":null,"table":"orders",'
        '"ts":1700000009123,"type":"ALTER"}'
    ).encode()


@pytest.mark.parametrize(
    ("statement", "tables", "kind", "where"),
    [
        ("CREATE TABLE t2 (a INT)", (("shop", "t2"),), "CREATE", ("shop", "t2")),
        ("DROP TABLE IF EXISTS t2", (("shop", "t2"),), "ERASE", ("shop", "t2")),
        ("TRUNCATE TABLE orders", (("shop", "orders"),), "TRUNCATE", ("shop", "orders")),
        ("RENAME TABLE a TO b, c TO d", (("shop", "a"), ("shop", "b"), ("shop", "c"), ("shop", "d")), "RENAME",
         ("shop", "b")),
        ("ALTER TABLE a RENAME TO b", (("shop", "a"), ("shop", "b")), "RENAME", ("shop", "b")),
        ("CREATE UNIQUE INDEX i ON orders (name)", (("shop", "orders"),), "CINDEX", ("shop", "orders")),
        ("DROP INDEX i ON orders", (("shop", "orders"),), "DINDEX", ("shop", "orders")),
        ("CREATE DATABASE other", (), "QUERY", ("shop", "")),
    ],
)
def test_ddl_kinds_and_the_table_they_name(statement: str, tables: tuple, kind: str, where: tuple) -> None:
    change = Change(Op.DDL, None, POS, commit_time=1700000002, txn="mysql-bin.000042:100", ddl=statement,
                    ddl_db="shop", ddl_tables=tables)
    msg = json.loads(encode_one(change)[1])
    assert (msg["type"], msg["isDdl"], msg["sql"], msg["data"]) == (kind, True, statement, None)
    assert (msg["database"], msg["table"]) == where
    assert msg["gtid"] == ""  # a file:pos transaction identity is no GTID


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("create temporary table x (a int)", "CREATE"),
        ("CREATE OR REPLACE TABLE x (a int)", "CREATE"),
        ("/* c */ DROP TABLE a, b", "ERASE"),
        ("TRUNCATE `user`", "TRUNCATE"),
        ("CREATE FULLTEXT INDEX i ON t (a)", "CINDEX"),
        ("ALTER TABLE t ADD INDEX i (a), ADD COLUMN c INT", "CINDEX"),  # the first alteration decides
        ("ALTER TABLE `db`.`t` ADD COLUMN c INT, ADD INDEX i (c)", "ALTER"),
        ("alter table t add unique key u (a)", "CINDEX"),
        ("ALTER TABLE t ADD PRIMARY KEY (a)", "CINDEX"),
        ("ALTER TABLE t ADD CONSTRAINT `u` UNIQUE (a)", "CINDEX"),
        ("ALTER TABLE t DROP INDEX i", "DINDEX"),
        ("ALTER TABLE t DROP KEY i", "DINDEX"),
        ("ALTER TABLE t RENAME COLUMN a TO b", "ALTER"),
        ("ALTER TABLE t RENAME INDEX a TO b", "ALTER"),
        ("ALTER TABLE t RENAME AS u", "RENAME"),
        ("ALTER TABLE t TRUNCATE PARTITION p0", "ALTER"),
        ("ALTER ONLINE TABLE t ENGINE=InnoDB", "ALTER"),
        ("/*!40000 ALTER TABLE `t` DISABLE KEYS */", "ALTER"),
        ("CREATE VIEW v AS SELECT 1", "QUERY"),
        ("DROP DATABASE d", "QUERY"),
        ("GRANT ALL ON *.* TO u", "QUERY"),
        ("", "QUERY"),
    ],
)
def test_ddl_kind(statement: str, kind: str) -> None:
    assert ddl_kind(statement) == kind


def test_heartbeats_are_not_sent() -> None:
    assert encoder().encode(Change(Op.HEARTBEAT, None, POS, commit_time=1700000003), "t") == []


def test_table_without_a_key() -> None:
    logs = TableSchema("app", "logs", (Column("msg", "text", "text", charset="utf8mb4"),))
    key, value = encode_one(Change(Op.INSERT, logs, POS, after={"msg": "hi"}, commit_time=1700000001, txn=GTID))
    assert key is None
    assert value == (
        '{"data":[{"msg":"hi"}],"database":"app","es":1700000001000,"gtid":"' + GTID + '","id":42000001234567,'
        '"isDdl":false,"mysqlType":{"msg":"text"},"old":null,"pkNames":null,"sql":"","sqlType":{"msg":2005},'
        '"table":"logs","ts":1700000009123,"type":"INSERT"}'
    ).encode()


def test_composite_key() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)"), Column("qty", "int", "int(11)")),
                    primary_key=("sku", "site"))
    key, value = encode_one(Change(Op.INSERT, t, POS, after={"sku": "a", "site": 7, "qty": 1},
                                   commit_time=1700000001, txn=GTID))
    assert key == b'["a",7]'
    msg = json.loads(value)
    assert (msg["pkNames"], msg["data"]) == (["sku", "site"], [{"sku": "a", "site": "7", "qty": "1"}])


def test_message_key_follows_the_sharding_columns() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)")),
                    primary_key=("sku",), sharding_columns=("site",))
    key, value = encode_one(Change(Op.INSERT, t, POS, after={"sku": "a", "site": 7}, commit_time=1))
    assert key == b"[7]" and json.loads(value)["pkNames"] == ["sku"]


# ------------------------------------------------------------------------------------------- types

ALL_TYPES = TableSchema(
    "types",
    "every",
    (
        Column("i", "bigint", "bigint(20) unsigned", nullable=False, unsigned=True),
        Column("ti", "tinyint", "tinyint(4)"),
        Column("tiu", "tinyint", "tinyint(3) unsigned", unsigned=True),
        Column("si", "smallint", "smallint(6)"),
        Column("mi", "mediumint", "mediumint(9)"),
        Column("n", "int", "int(11)"),
        Column("iu", "int", "int(10) unsigned", unsigned=True),
        Column("s", "bigint", "bigint(20)"),
        Column("d", "decimal", "decimal(65,30)", precision=65, scale=30),
        Column("f", "float", "float"),
        Column("g", "double", "double"),
        Column("b", "bit", "bit(10)"),
        Column("b1", "bit", "bit(1)"),
        Column("ch", "char", "char(4)", charset="utf8mb4"),
        Column("bin", "varbinary", "varbinary(8)", charset="binary"),
        Column("blob", "blob", "blob", charset="binary"),
        Column("chb", "char", "char(2)", charset="binary"),
        Column("txt", "text", "text", charset="utf8mb4"),
        Column("ts", "timestamp", "timestamp(6)", fsp=6),
        Column("ts0", "timestamp", "timestamp"),
        Column("dt", "datetime", "datetime(6)", fsp=6),
        Column("da", "date", "date"),
        Column("ti2", "time", "time(2)", fsp=2),
        Column("y", "year", "year(4)"),
        Column("j", "json", "json"),
        Column("e", "enum", "enum('x','y')", values=("x", "y")),
        Column("st", "set", "set('p','q')", values=("p", "q")),
        Column("nul", "int", "int(11)"),
    ),
    primary_key=("i",),
)
ALL_ROW = {
    "i": 18446744073709551615, "ti": -128, "tiu": 255, "si": -32768, "mi": -8388608, "n": -2147483648,
    "iu": 4294967295, "s": -9223372036854775808, "d": Decimal("9" * 35 + "." + "9" * 30),
    "f": 1.100000023841858, "g": 1e20, "b": 513, "b1": 1, "ch": "a😀", "bin": b"\xff\x00", "blob": b"\x80\x81",
    "chb": b"\x01\x02", "txt": 'q"\\\n\x01😀', "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
    "ts0": "0000-00-00 00:00:00", "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 120000), "da": "0000-00-00",
    "ti2": -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=990000), "y": 2024,
    "j": '{"k": [1, "v"]}', "e": "y", "st": "p,q", "nul": None,
}


def test_every_column_type() -> None:
    key, value = encode_one(Change(Op.INSERT, ALL_TYPES, POS, after=ALL_ROW, commit_time=1700000001, txn=GTID))
    assert key == b"[18446744073709551615]"
    data = (
        '{"i":"18446744073709551615","ti":"-128","tiu":"255","si":"-32768","mi":"-8388608","n":"-2147483648",'
        '"iu":"4294967295","s":"-9223372036854775808","d":"' + "9" * 35 + "." + "9" * 30 + '","f":"1.1",'
        '"g":"100000000000000000000","b":"513","b1":"1","ch":"a😀","bin":"ÿ\\u0000","blob":"\x80\x81",'
        '"chb":"\\u0001\\u0002","txt":"q\\"\\\\\\n\\u0001😀","ts":"2023-11-14 22:13:20.123456",'
        '"ts0":"0000-00-00 00:00:00","dt":"2024-01-02 03:04:05.120000","da":"0000-00-00","ti2":"-838:59:58.99",'
        '"y":"2024","j":"{\\"k\\": [1, \\"v\\"]}","e":"y","st":"p,q","nul":null}'
    )
    sql_types = (
        '{"i":3,"ti":-6,"tiu":5,"si":5,"mi":4,"n":4,"iu":-5,"s":-5,"d":3,"f":7,"g":8,"b":-7,"b1":-7,"ch":1,'
        '"bin":2004,"blob":2004,"chb":2004,"txt":2005,"ts":93,"ts0":93,"dt":93,"da":91,"ti2":92,"y":12,"j":12,'
        '"e":12,"st":12,"nul":4}'
    )
    assert value.decode().startswith('{"data":[' + data + "]")
    msg = json.loads(value)
    assert json.dumps(msg["sqlType"], separators=(",", ":")) == sql_types
    assert msg["mysqlType"] == {c.name: c.column_type for c in ALL_TYPES.columns}
    assert msg["data"][0]["bin"].encode("latin-1") == b"\xff\x00"  # Canal's ISO-8859-1: bytes come back
    assert msg["data"][0]["txt"] == 'q"\\\n\x01😀'


def test_binary_as_base64_when_asked() -> None:
    _, value = encode_one(Change(Op.INSERT, ALL_TYPES, POS, after=ALL_ROW, commit_time=1),
                          encoder(binary_encoding="base64"))
    data = json.loads(value)["data"][0]
    assert (data["bin"], data["blob"], data["chb"], data["b"]) == ("/wA=", "gIE=", "AQI=", "513")


def test_snapshot_and_log_render_every_type_identically() -> None:
    enc = encoder()
    snap = json.loads(encode_one(Change(Op.READ, ALL_TYPES, SnapshotPosition("c", (1,)), after=ALL_ROW), enc)[1])
    log = json.loads(encode_one(Change(Op.INSERT, ALL_TYPES, POS, after=dict(ALL_ROW), commit_time=5), enc)[1])
    assert snap["data"] == log["data"] and snap["sqlType"] == log["sqlType"]


def test_timestamps_are_written_in_utc() -> None:
    t = TableSchema("s", "t", (Column("ts", "timestamp", "timestamp(2)", fsp=2),))
    plus5 = dt.timezone(dt.timedelta(hours=5))
    _, value = encode_one(Change(Op.INSERT, t, POS, after={"ts": dt.datetime(2024, 1, 2, 3, 4, 5, 129000, plus5)},
                                 commit_time=1))
    assert json.loads(value)["data"] == [{"ts": "2024-01-01 22:04:05.12"}]


def test_sql_type_of_unknown_types_is_other() -> None:
    assert sql_type(Column("g", "geometry", "geometry")) == 2004
    assert sql_type(Column("x", "vector", "vector(3)")) == 1111


# ------------------------------------------------------------------------------------------- meta


def test_gtid_of_a_transaction_identity() -> None:
    assert gtid_of(GTID) == GTID
    assert gtid_of("0-1-23") == "0-1-23"  # MariaDB
    assert gtid_of("mysql-bin.000042:1234") == ""
    assert gtid_of(None) == ""


def test_id_is_the_binlog_event_shared_by_its_rows_and_growing_along_the_log() -> None:
    enc = encoder()
    ids = [json.loads(encode_one(Change(Op.INSERT, ORDERS, p, after=ROW1, commit_time=1), enc)[1])["id"]
           for p in (LogPosition("mysql-bin.000042", 500, 0), LogPosition("mysql-bin.000042", 500, 3),
                     LogPosition("mysql-bin.000042", 900, 0), LogPosition("mysql-bin.000043", 4, 0))]
    assert ids[0] == ids[1] < ids[2] < ids[3] < 2**63


def test_replays_give_identical_bytes() -> None:
    changes = [
        Change(Op.INSERT, ORDERS, POS, after=dict(ROW1), commit_time=1700000001, txn=GTID),
        Change(Op.UPDATE, ORDERS, POS, before=dict(ROW1), after=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.DELETE, ORDERS, POS, before=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=dict(ROW1)),
        Change(Op.DDL, None, POS, commit_time=1700000001, ddl="CREATE TABLE x (a int)", ddl_db="shop"),
    ]
    first = [r.value for c in changes for r in encoder().encode(c, "t")]
    copy = TableSchema.from_dict(ORDERS.to_dict())  # an equal schema read back from saved state
    enc = encoder()
    again = [r.value for c in changes for r in enc.encode(
        Change(c.op, copy if c.table else None, c.position, c.before, c.after, c.commit_time, c.txn, ddl=c.ddl,
               ddl_db=c.ddl_db), "t")]
    assert again == first
    later = [r.value for c in changes for r in CanalEncoder(clock=lambda: TS + 1).encode(c, "t")]
    assert [v.replace(b'"ts":1700000010123', b'"ts":1700000009123') for v in later] == first  # only `ts` moves


# ------------------------------------------------------------------------------------- registry, options


def test_registered_as_canal() -> None:
    enc = encoder_for("canal", EncoderContext("task1", "OB_MYSQL"), {"binary_encoding": "base64"})
    assert isinstance(enc, CanalEncoder) and enc.name == "canal" and enc.binary_encoding == "base64"


def test_unknown_format_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"`format_options.colour`.*valid: binary_encoding"):
        encoder_for("canal", EncoderContext("task1", "MYSQL"), {"colour": "red"})


def test_bad_binary_encoding_is_named() -> None:
    with pytest.raises(ConfigError, match=r"`format_options.binary_encoding`.*valid: iso-8859-1, base64"):
        encoder_for("canal", EncoderContext("task1", "MYSQL"), {"binary_encoding": "hex"})

"""The `dataworks` format (DataWorks 2.0): exact message bytes per kind of change, types, options."""

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
from obsync.formats.dataworks import DataWorksEncoder, column_type, is_sent
from obsync.formats.registry import encoder_for
from tests.helpers.format_rows import GTID, ORDERS, ROW1, ROW2, UTC

POS = LogPosition("mysql-bin.000042", 1234567, 3)
CLOCK = 1700000009.123  # the encoder's clock: `systemTime` is 1700000009123


SCHEMA_JSON = (
    '{"dataColumn":[{"name":"id","type":"LONG"},{"name":"name","type":"STRING"},{"name":"amount","type":"DOUBLE"},'
    '{"name":"paid_at","type":"DATE"}],"primaryKey":["id"],"source":{"dbType":"mysql","dbVersion":null,'
    '"dbName":"shop","schemaName":"shop","tableName":"orders"}}'
)
ROW1_JSON = '{"dataColumn":{"id":42,"name":"咖啡 ☕","amount":12.50,"paid_at":1700000000500}}'
ROW2_JSON = '{"dataColumn":{"id":42,"name":"咖啡 ☕","amount":13.00,"paid_at":null}}'
SEQ = "0000042000001234567000030"  # file 42, offset 1234567, row 3, part 0


def encoder(**options: object) -> DataWorksEncoder:
    return DataWorksEncoder(clock=lambda: CLOCK, **options)  # type: ignore[arg-type]  # options: loosely typed test keyword arguments


def encode(change: Change, enc: DataWorksEncoder | None = None) -> list[tuple[bytes | None, bytes]]:
    records = (enc or encoder()).encode(change, "orders-topic")
    assert all(r.topic == "orders-topic" and r.value is not None for r in records)
    return [(r.key, r.value) for r in records]  # type: ignore[misc]  # no tombstones here: every value is set


def message(schema: str, before: str, after: str, seq: str, op: str, event: str = "1700000001000",
            ddl: str = "null") -> bytes:
    return (
        f'{{"schema":{schema},"payload":{{"before":{before},"after":{after},"sequenceId":{seq},'
        f'"timestamp":{{"eventTime":{event},"systemTime":1700000009123,"checkpointTime":{event}}},'
        f'"op":"{op}","ddl":{ddl}}},"version":"2.0"}}'
    ).encode()


# ------------------------------------------------------------------------------------------- golden


def test_insert() -> None:
    [(key, value)] = encode(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001.0, txn=GTID))
    assert key == b"[42]"
    assert value == message(SCHEMA_JSON, "null", ROW1_JSON, f'"{SEQ}"', "INSERT")
    assert "咖啡 ☕".encode() in value  # UTF-8 as is, not \u escapes


def test_update_is_two_messages_before_then_after() -> None:
    records = encode(Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=ROW2, commit_time=1700000001, txn=GTID))
    assert [k for k, _ in records] == [b"[42]", b"[42]"]
    assert records[0][1] == message(SCHEMA_JSON, ROW1_JSON, "null", f'"{SEQ}"', "UPDATE_BEFORE")
    assert records[1][1] == message(SCHEMA_JSON, "null", ROW2_JSON, f'"{SEQ[:-1]}1"', "UPDATE_AFTER")


def test_delete() -> None:
    [(key, value)] = encode(Change(Op.DELETE, ORDERS, POS, before=ROW2, commit_time=1700000001, txn=GTID))
    assert key == b"[42]"
    assert value == message(SCHEMA_JSON, ROW2_JSON, "null", f'"{SEQ}"', "DELETE")


def test_snapshot_row_is_an_insert_that_sorts_before_every_change() -> None:
    [(key, value)] = encode(Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1))
    assert key == b"[42]"
    assert value == message(SCHEMA_JSON, "null", ROW1_JSON, '"' + "0" * 25 + '"', "INSERT", event="null")


def test_ddl() -> None:
    change = Change(Op.DDL, ORDERS, LogPosition("mysql-bin.000042", 2000), commit_time=1700000002, txn=GTID,
                    ddl="ALTER TABLE `orders` ADD COLUMN note TEXT", ddl_db="shop",
                    ddl_tables=(("shop", "orders"),))
    [(key, value)] = encode(change)
    assert key is None
    assert value == message(SCHEMA_JSON, "null", "null", '"0000042000000002000000000"', "ALTER",
                            event="1700000002000", ddl='"ALTER TABLE `orders` ADD COLUMN note TEXT"')


@pytest.mark.parametrize(
    ("statement", "tables", "op"),
    [
        ("CREATE TABLE t2 (a INT)", (("shop", "t2"),), "CREATE"),
        ("DROP TABLE t2", (("shop", "t2"),), "ERASE"),
        ("TRUNCATE TABLE t2", (("shop", "t2"),), "TRUNCATE"),
        ("RENAME TABLE t2 TO t3", (("shop", "t2"), ("shop", "t3")), "RENAME"),
        ("CREATE INDEX i ON t2 (a)", (("shop", "t2"),), "CINDEX"),
        ("DROP INDEX i ON t2", (("shop", "t2"),), "DINDEX"),
        ("CREATE DATABASE d", (), "QUERY"),
    ],
)
def test_ddl_on_tables_the_task_does_not_track(statement: str, tables: tuple, op: str) -> None:
    change = Change(Op.DDL, None, POS, commit_time=1700000002, ddl=statement, ddl_db="shop", ddl_tables=tables)
    msg = json.loads(encode(change)[0][1])
    assert (msg["payload"]["op"], msg["payload"]["ddl"], msg["payload"]["before"]) == (op, statement, None)
    assert msg["schema"]["dataColumn"] is None and msg["schema"]["primaryKey"] is None
    name = (tables[1] if op == "RENAME" else tables[0])[1] if tables else None
    assert (msg["schema"]["source"]["dbName"], msg["schema"]["source"]["tableName"]) == ("shop", name)


@pytest.mark.parametrize(
    "statement",
    ["COMMENT ON TABLE t IS 'x'", "comment on column t.a is 'x'", "ALTER TABLE t TRUNCATE PARTITION p0",
     "/* x */ alter table `t` truncate partition p0, p1"],
)
def test_comment_and_truncate_partition_are_not_sent(statement: str) -> None:
    assert not is_sent(statement)
    assert encode(Change(Op.DDL, ORDERS, POS, commit_time=1, ddl=statement, ddl_db="shop")) == []


@pytest.mark.parametrize("statement", ["ALTER TABLE t COMMENT 'truncate partition'", "TRUNCATE TABLE t",
                                       "ALTER TABLE t DROP PARTITION p0", "ALTER TABLE t ADD COLUMN c INT"])
def test_other_ddl_is_sent(statement: str) -> None:
    assert is_sent(statement)


def test_heartbeat() -> None:
    [(key, value)] = encode(Change(Op.HEARTBEAT, None, LogPosition("mysql-bin.000042", 3000),
                                   commit_time=1700000003))
    assert key is None
    assert value == message(
        '{"dataColumn":null,"primaryKey":null,"source":{"dbType":"mysql","dbVersion":null,"dbName":null,'
        '"schemaName":null,"tableName":null}}', "null", "null", "null", "MHEARTBEAT", event="1700000003000")


def test_table_without_a_key() -> None:
    logs = TableSchema("app", "logs", (Column("msg", "text", "text", charset="utf8mb4"),))
    [(key, value)] = encode(Change(Op.INSERT, logs, POS, after={"msg": "hi"}, commit_time=1700000001, txn=GTID))
    assert key is None
    assert value == message(
        '{"dataColumn":[{"name":"msg","type":"STRING"}],"primaryKey":null,"source":{"dbType":"mysql",'
        '"dbVersion":null,"dbName":"app","schemaName":"app","tableName":"logs"}}',
        "null", '{"dataColumn":{"msg":"hi"}}', f'"{SEQ}"', "INSERT")


def test_composite_key() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)"), Column("qty", "int", "int(11)")),
                    primary_key=("sku", "site"))
    [(key, value)] = encode(Change(Op.INSERT, t, POS, after={"sku": "a", "site": 7, "qty": 1},
                                   commit_time=1700000001, txn=GTID))
    assert key == b'["a",7]'
    msg = json.loads(value)
    assert msg["schema"]["primaryKey"] == ["sku", "site"]
    assert msg["payload"]["after"] == {"dataColumn": {"sku": "a", "site": 7, "qty": 1}}


def test_message_key_follows_the_sharding_columns() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)")),
                    primary_key=("sku",), sharding_columns=("site",))
    [(key, _)] = encode(Change(Op.INSERT, t, POS, after={"sku": "a", "site": 7}, commit_time=1))
    assert key == b"[7]"


# ------------------------------------------------------------------------------------------- types

ALL_TYPES = TableSchema(
    "types",
    "every",
    (
        Column("i", "bigint", "bigint(20) unsigned", nullable=False, unsigned=True),
        Column("s", "bigint", "bigint(20)"),
        Column("ti", "tinyint", "tinyint(1)"),
        Column("d", "decimal", "decimal(65,30)", precision=65, scale=30),
        Column("d2", "decimal", "decimal(5,2)", precision=5, scale=2),
        Column("f", "float", "float"),
        Column("g", "double", "double"),
        Column("g2", "double", "double"),
        Column("b", "bit", "bit(10)"),
        Column("b1", "bit", "bit(1)"),
        Column("ch", "char", "char(4)", charset="utf8mb4"),
        Column("bin", "varbinary", "varbinary(8)", charset="binary"),
        Column("blob", "blob", "blob", charset="binary"),
        Column("chb", "char", "char(2)", charset="binary"),
        Column("txt", "text", "text", charset="utf8mb4"),
        Column("ts", "timestamp", "timestamp(6)", fsp=6),
        Column("dt", "datetime", "datetime(6)", fsp=6),
        Column("dt0", "datetime", "datetime"),
        Column("old", "datetime", "datetime"),
        Column("da", "date", "date"),
        Column("zd", "date", "date"),
        Column("ti2", "time", "time(2)", fsp=2),
        Column("y", "year", "year(4)"),
        Column("j", "json", "json"),
        Column("e", "enum", "enum('x','y')", values=("x", "y")),
        Column("st", "set", "set('p','q')", values=("p", "q")),
        Column("geo", "point", "point"),
        Column("nul", "int", "int(11)"),
    ),
    primary_key=("i",),
)
ALL_ROW = {
    "i": 18446744073709551615, "s": -9223372036854775808, "ti": 1, "d": Decimal("-" + "9" * 35 + "." + "9" * 30),
    "d2": Decimal("5"), "f": 1.100000023841858, "g": 1e20, "g2": -1e-7, "b": 513, "b1": 1, "ch": "a😀",
    "bin": b"\xff\x00", "blob": b"\x80\x81", "chb": b"\x01\x02", "txt": 'q"\\\n\x01😀',
    "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123999, tzinfo=UTC), "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 120000),
    "dt0": "0000-00-00 00:00:00", "old": dt.datetime(1969, 12, 31, 23, 59, 59, 999500),
    "da": dt.date(2024, 2, 29), "zd": "0000-00-00",
    "ti2": -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=990000), "y": 2024,
    "j": '{"k": [1, "v"]}', "e": "y", "st": "p,q", "geo": b"\x00\x00\x00\x00\x01", "nul": None,
}


def test_every_column_type() -> None:
    [(key, value)] = encode(Change(Op.INSERT, ALL_TYPES, POS, after=ALL_ROW, commit_time=1700000001, txn=GTID))
    assert key == b"[18446744073709551615]"
    after = (
        '{"dataColumn":{"i":18446744073709551615,"s":-9223372036854775808,"ti":1,'
        '"d":-' + "9" * 35 + "." + "9" * 30 + ',"d2":5.00,"f":1.1,"g":100000000000000000000,"g2":-0.0000001,'
        '"b":513,"b1":true,"ch":"a😀","bin":"/wA=","blob":"gIE=","chb":"AQI=","txt":"q\\"\\\\\\n\\u0001😀",'
        '"ts":1700000000123,"dt":1704164645120,"dt0":null,"old":-1,"da":1709164800000,"zd":null,'
        '"ti2":-3020398990,"y":2024,"j":"{\\"k\\": [1, \\"v\\"]}","e":"y","st":"p,q","geo":"AAAAAAE=","nul":null}}'
    )
    msg = json.loads(value)
    assert value.decode().split('"after":')[1].startswith(after + ',"sequenceId"')
    assert {c["name"]: c["type"] for c in msg["schema"]["dataColumn"]} == {
        "i": "LONG", "s": "LONG", "ti": "LONG", "d": "DOUBLE", "d2": "DOUBLE", "f": "DOUBLE", "g": "DOUBLE",
        "g2": "DOUBLE", "b": "LONG", "b1": "BOOLEAN", "ch": "STRING", "bin": "BYTES", "blob": "BYTES",
        "chb": "BYTES", "txt": "STRING", "ts": "DATE", "dt": "DATE", "dt0": "DATE", "old": "DATE", "da": "DATE",
        "zd": "DATE", "ti2": "DATE", "y": "LONG", "j": "STRING", "e": "STRING", "st": "STRING", "geo": "BYTES",
        "nul": "LONG",
    }
    assert msg["payload"]["after"]["dataColumn"]["txt"] == 'q"\\\n\x01😀'


def test_dates_are_13_digit_epoch_milliseconds() -> None:
    [(_, value)] = encode(Change(Op.INSERT, ALL_TYPES, POS, after=ALL_ROW, commit_time=1))
    data = json.loads(value)["payload"]["after"]["dataColumn"]
    assert data["ts"] == 1700000000123 and len(str(data["ts"])) == 13
    assert dt.datetime.fromtimestamp(data["dt"] / 1000, UTC) == dt.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert dt.datetime.fromtimestamp(data["da"] / 1000, UTC) == dt.datetime(2024, 2, 29, tzinfo=UTC)


def test_snapshot_and_log_render_every_type_identically() -> None:
    enc = encoder()
    [(_, snap)] = encode(Change(Op.READ, ALL_TYPES, SnapshotPosition("c", (1,)), after=ALL_ROW), enc)
    [(_, log)] = encode(Change(Op.INSERT, ALL_TYPES, POS, after=dict(ALL_ROW), commit_time=5), enc)
    assert json.loads(snap)["payload"]["after"] == json.loads(log)["payload"]["after"]
    assert json.loads(snap)["schema"] == json.loads(log)["schema"]


def test_column_types() -> None:
    assert column_type(Column("b", "bit", "bit(1)", precision=1)) == "BOOLEAN"
    assert column_type(Column("b", "bit", "bit(2)")) == "LONG"
    assert column_type(Column("v", "vector", "vector(3)")) == "STRING"


# ------------------------------------------------------------------------------------------- meta


def test_sequence_ids_grow_along_the_log_and_are_unique_per_message() -> None:
    enc = encoder()
    ids = []
    for p in (LogPosition("mysql-bin.000042", 500, 0), LogPosition("mysql-bin.000042", 500, 1),
              LogPosition("mysql-bin.000042", 900, 0), LogPosition("mysql-bin.000043", 4, 0)):
        for _, v in encode(Change(Op.UPDATE, ORDERS, p, before=ROW1, after=ROW2, commit_time=1), enc):
            ids.append(json.loads(v)["payload"]["sequenceId"])
    assert ids == sorted(ids) == sorted(ids, key=int) and len(set(ids)) == len(ids)
    assert all(len(i) == 25 for i in ids)


def test_replays_give_identical_bytes_but_for_system_time() -> None:
    changes = [
        Change(Op.INSERT, ORDERS, POS, after=dict(ROW1), commit_time=1700000001, txn=GTID),
        Change(Op.UPDATE, ORDERS, POS, before=dict(ROW1), after=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.DELETE, ORDERS, POS, before=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=dict(ROW1)),
        Change(Op.DDL, None, POS, commit_time=1700000001, ddl="CREATE TABLE x (a int)", ddl_db="shop"),
        Change(Op.HEARTBEAT, None, POS, commit_time=1700000001),
    ]
    first = [r.value for c in changes for r in encoder().encode(c, "t")]
    copy = TableSchema.from_dict(ORDERS.to_dict())
    enc = encoder()
    again = [r.value for c in changes for r in enc.encode(
        Change(c.op, copy if c.table else None, c.position, c.before, c.after, c.commit_time, c.txn, ddl=c.ddl,
               ddl_db=c.ddl_db), "t")]
    assert again == first
    later = [r.value for c in changes for r in DataWorksEncoder(clock=lambda: CLOCK + 1).encode(c, "t")]
    assert [v.replace(b"1700000010123", b"1700000009123") for v in later] == first


# ------------------------------------------------------------------------------------- registry, options


def test_registered_as_dataworks_with_the_business_system() -> None:
    enc = encoder_for("dataworks", EncoderContext("task1", "OB_MYSQL"), {"business_system": "crm-01"})
    assert isinstance(enc, DataWorksEncoder) and enc.name == "dataworks"
    [(_, value)] = encode(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1), enc)
    assert json.loads(value)["schema"]["source"] == {
        "dbType": "oceanbase", "dbVersion": None, "dbName": "shop", "schemaName": "shop", "tableName": "orders",
        "businessSystem": "crm-01"}
    [(_, beat)] = encode(Change(Op.HEARTBEAT, None, POS, commit_time=1), enc)
    assert json.loads(beat)["schema"]["source"]["businessSystem"] == "crm-01"


@pytest.mark.parametrize("bad", ["", "x" * 21, 42])
def test_business_system_is_1_to_20_characters(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"`format_options.business_system`.*1 to 20 characters"):
        encoder_for("dataworks", EncoderContext("task1", "MYSQL"), {"business_system": bad})
    assert encoder_for("dataworks", EncoderContext("t", "MYSQL"), {"business_system": "x" * 20})


def test_unknown_format_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"`format_options.colour`.*valid: business_system"):
        encoder_for("dataworks", EncoderContext("task1", "MYSQL"), {"colour": "red"})

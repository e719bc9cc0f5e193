"""The `shareplex` format (SharePlex JSON): exact message bytes per kind of change, keys, meta members."""

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
from obsync.formats.registry import encoder_for
from obsync.formats.shareplex import SharePlexEncoder, utc_text
from tests.helpers.format_rows import GTID, ORDERS, ROW1, ROW2, UTC

POS = LogPosition("mysql-bin.000042", 1234567, 3)
CLOCK = 1700000009.9  # the encoder's clock: `posttime` is 2023-11-14T22:13:29Z


ROW1_JSON = '{"id":"42","name":"咖啡 ☕","amount":"12.50","paid_at":"1700000000.500"}'
ROW2_JSON = '{"id":"42","name":"咖啡 ☕","amount":"13.00","paid_at":null}'


def encoder() -> SharePlexEncoder:
    return SharePlexEncoder(clock=lambda: CLOCK)


def encode(change: Change, enc: SharePlexEncoder | None = None) -> list[tuple[bytes | None, bytes]]:
    records = (enc or encoder()).encode(change, "orders-topic")
    assert all(r.topic == "orders-topic" and r.value is not None for r in records)
    return [(r.key, r.value) for r in records]  # type: ignore[misc]  # no tombstones here: every value is set


def message(op: str, data: str, key: str = "null", *, time: str = '"2023-11-14T22:13:21Z"',
            scn: str = '"42000001234567"', trans: str = f'"{GTID}"', seq: str = "4", size: str = "null",
            table: str = '"shop.orders"', idx: str = "null") -> bytes:
    return (
        f'{{"meta":{{"time":{time},"userid":null,"op":"{op}","scn":{scn},"rowid":null,"trans":{trans},'
        f'"seq":{seq},"size":{size},"table":{table},"idx":{idx},"posttime":"2023-11-14T22:13:29Z"}},'
        f'"data":{data},"key":{key}}}'
    ).encode()


# ------------------------------------------------------------------------------------------- golden


def test_insert() -> None:
    [(key, value)] = encode(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001.0, txn=GTID))
    assert key == b"[42]"
    assert value == message("INSERT", ROW1_JSON)
    assert "咖啡 ☕".encode() in value  # UTF-8 as is, not \u escapes


def test_update_is_two_messages_with_the_before_key() -> None:
    records = encode(Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=ROW2, commit_time=1700000001, txn=GTID))
    assert [k for k, _ in records] == [b"[42]", b"[42]"]
    assert [v for _, v in records] == [message("UPDATE BEFORE", ROW1_JSON, '{"id":"42"}'),
                                       message("UPDATE AFTER", ROW2_JSON, '{"id":"42"}')]


def test_delete() -> None:
    [(key, value)] = encode(Change(Op.DELETE, ORDERS, POS, before=ROW2, commit_time=1700000001, txn=GTID))
    assert key == b"[42]"
    assert value == message("DELETE", ROW2_JSON, '{"id":"42"}')


def test_snapshot_row_is_an_insert_and_a_transaction_of_its_own() -> None:
    [(key, value)] = encode(Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1))
    assert key == b"[42]"
    assert value == message("INSERT", ROW1_JSON, time="null", scn="null", trans="null", seq="1", size="1",
                            idx='"1/1"')


def test_ddl() -> None:
    change = Change(Op.DDL, ORDERS, LogPosition("mysql-bin.000042", 2000), commit_time=1700000002, txn=GTID,
                    ddl="ALTER TABLE `orders` ADD COLUMN note TEXT", ddl_db="shop",
                    ddl_tables=(("shop", "orders"),))
    [(key, value)] = encode(change)
    assert key is None
    assert value == message("ALTER TABLE", '{"ddl":"ALTER TABLE `orders` ADD COLUMN note TEXT"}',
                            time='"2023-11-14T22:13:22Z"', scn='"42000000002000"', seq="1", size="1", idx='"1/1"')


@pytest.mark.parametrize(
    ("statement", "tables", "op", "table"),
    [
        ("TRUNCATE TABLE t2", (("shop", "t2"),), "TRUNCATE", "shop.t2"),
        ("truncate `t2`", (("shop", "t2"),), "TRUNCATE", "shop.t2"),
        ("CREATE TABLE t2 (a INT)", (("shop", "t2"),), "CREATE TABLE", "shop.t2"),
        ("DROP TABLE t2", (("shop", "t2"),), "DROP TABLE", "shop.t2"),
        ("RENAME TABLE t2 TO t3", (("shop", "t2"), ("shop", "t3")), "RENAME TABLE", "shop.t2"),
        ("CREATE INDEX i ON t2 (a)", (("shop", "t2"),), "CREATE INDEX", "shop.t2"),
        ("CREATE DATABASE d", (), "CREATE DATABASE", None),
    ],
)
def test_ddl_kinds(statement: str, tables: tuple, op: str, table: str | None) -> None:
    change = Change(Op.DDL, None, POS, commit_time=1700000002, ddl=statement, ddl_db="shop", ddl_tables=tables)
    meta = json.loads(encode(change)[0][1])["meta"]
    assert (meta["op"], meta["table"], meta["idx"]) == (op, table, "1/1")


def test_heartbeats_are_not_sent() -> None:
    assert encoder().encode(Change(Op.HEARTBEAT, None, POS, commit_time=1700000003), "t") == []


def test_table_without_a_key_uses_the_whole_before_image_as_key() -> None:
    logs = TableSchema("app", "logs", (Column("msg", "text", "text", charset="utf8mb4"),
                                       Column("n", "int", "int(11)")))
    [(key, value)] = encode(Change(Op.INSERT, logs, POS, after={"msg": "hi", "n": 1}, commit_time=1700000001,
                                   txn=GTID))
    assert key is None
    assert value == message("INSERT", '{"msg":"hi","n":"1"}', table='"app.logs"')
    [(key, value)] = encode(Change(Op.DELETE, logs, POS, before={"msg": "hi", "n": 1}, commit_time=1700000001,
                                   txn=GTID))
    assert key is None
    assert value == message("DELETE", '{"msg":"hi","n":"1"}', '{"msg":"hi","n":"1"}', table='"app.logs"')


def test_composite_key() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)"), Column("qty", "int", "int(11)")),
                    primary_key=("sku", "site"))
    records = encode(Change(Op.UPDATE, t, POS, before={"sku": "a", "site": 7, "qty": 1},
                            after={"sku": "a", "site": 7, "qty": 2}, commit_time=1700000001, txn=GTID))
    assert [k for k, _ in records] == [b'["a",7]', b'["a",7]']
    assert [json.loads(v)["key"] for _, v in records] == [{"sku": "a", "site": "7"}] * 2


def test_message_key_follows_the_sharding_columns() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)")),
                    primary_key=("sku",), sharding_columns=("site",))
    [(key, value)] = encode(Change(Op.DELETE, t, POS, before={"sku": "a", "site": 7}, commit_time=1))
    assert key == b"[7]" and json.loads(value)["key"] == {"sku": "a"}


# ------------------------------------------------------------------------------------------- types

ALL_TYPES = TableSchema(
    "types",
    "every",
    (
        Column("i", "bigint", "bigint(20) unsigned", nullable=False, unsigned=True),
        Column("d", "decimal", "decimal(65,30)", precision=65, scale=30),
        Column("f", "float", "float"),
        Column("g", "double", "double"),
        Column("b", "bit", "bit(10)"),
        Column("bin", "varbinary", "varbinary(8)", charset="binary"),
        Column("txt", "text", "text", charset="utf8mb4"),
        Column("ts", "timestamp", "timestamp(6)", fsp=6),
        Column("dt", "datetime", "datetime(6)", fsp=6),
        Column("da", "date", "date"),
        Column("ti", "time", "time"),
        Column("y", "year", "year(4)"),
        Column("j", "json", "json"),
        Column("e", "enum", "enum('x','y')", values=("x", "y")),
        Column("st", "set", "set('p','q')", values=("p", "q")),
        Column("n", "int", "int(11)"),
    ),
    primary_key=("i",),
)
ALL_ROW = {
    "i": 18446744073709551615, "d": Decimal("9" * 35 + "." + "9" * 30), "f": 1.100000023841858, "g": 1e20,
    "b": 1, "bin": b"\xff\x00", "txt": 'q"\\\n\x01😀',
    "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC), "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 120000),
    "da": "0000-00-00", "ti": -dt.timedelta(hours=838, minutes=59, seconds=59), "y": 2024, "j": '{"k": [1, "v"]}',
    "e": "y", "st": "p,q", "n": None,
}


def test_every_column_type_renders_as_in_the_default_format() -> None:
    [(key, value)] = encode(Change(Op.INSERT, ALL_TYPES, POS, after=ALL_ROW, commit_time=1700000001, txn=GTID))
    assert key == b"[18446744073709551615]"
    data = (
        '{"i":"18446744073709551615","d":"' + "9" * 35 + "." + "9" * 30 + '","f":"1.1","g":"100000000000000000000",'
        '"b":"AAE=","bin":"/wA=","txt":"q\\"\\\\\\n\\u0001😀","ts":"1700000000.123456",'
        '"dt":"2024-01-02 03:04:05.120000","da":"0000-00-00","ti":"-838:59:59","y":"2024",'
        '"j":"{\\"k\\": [1, \\"v\\"]}","e":"y","st":"p,q","n":null}'
    )
    assert value == message("INSERT", data, table='"types.every"')


def test_snapshot_and_log_render_every_type_identically() -> None:
    enc = encoder()
    [(_, snap)] = encode(Change(Op.READ, ALL_TYPES, SnapshotPosition("c", (1,)), after=ALL_ROW), enc)
    [(_, log)] = encode(Change(Op.INSERT, ALL_TYPES, POS, after=dict(ALL_ROW), commit_time=5), enc)
    assert json.loads(snap)["data"] == json.loads(log)["data"]


# ------------------------------------------------------------------------------------------- meta


def test_seq_is_the_row_in_its_binlog_event_and_size_is_unknown() -> None:
    enc = encoder()
    metas = [json.loads(encode(Change(Op.INSERT, ORDERS, LogPosition("mysql-bin.000001", 700, r), after=ROW1,
                                      commit_time=1, txn="t"), enc)[0][1])["meta"] for r in range(3)]
    assert [(m["seq"], m["size"], m["idx"]) for m in metas] == [(1, None, None), (2, None, None), (3, None, None)]
    assert len({m["scn"] for m in metas}) == 1  # rows of one event share it


def test_utc_text() -> None:
    assert utc_text(0) == "1970-01-01T00:00:00Z"
    assert utc_text(1700000001.999) == "2023-11-14T22:13:21Z"


def test_replays_give_identical_bytes_but_for_posttime() -> None:
    changes = [
        Change(Op.INSERT, ORDERS, POS, after=dict(ROW1), commit_time=1700000001, txn=GTID),
        Change(Op.UPDATE, ORDERS, POS, before=dict(ROW1), after=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.DELETE, ORDERS, POS, before=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=dict(ROW1)),
        Change(Op.DDL, None, POS, commit_time=1700000001, ddl="CREATE TABLE x (a int)", ddl_db="shop"),
    ]
    first = [r.value for c in changes for r in encoder().encode(c, "t")]
    copy = TableSchema.from_dict(ORDERS.to_dict())
    enc = encoder()
    again = [r.value for c in changes for r in enc.encode(
        Change(c.op, copy if c.table else None, c.position, c.before, c.after, c.commit_time, c.txn, ddl=c.ddl,
               ddl_db=c.ddl_db), "t")]
    assert again == first
    later = [r.value for c in changes for r in SharePlexEncoder(clock=lambda: CLOCK + 60).encode(c, "t")]
    assert [v.replace(b"22:14:29Z", b"22:13:29Z") for v in later] == first


# ------------------------------------------------------------------------------------- registry, options


def test_registered_as_shareplex() -> None:
    enc = encoder_for("shareplex", EncoderContext("task1", "OB_MYSQL"))
    assert isinstance(enc, SharePlexEncoder) and enc.name == "shareplex"


def test_unknown_format_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"`format_options.colour`.*takes no options"):
        encoder_for("shareplex", EncoderContext("task1", "MYSQL"), {"colour": "red"})

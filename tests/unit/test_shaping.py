"""The shaping step: sharding columns per object, TRUNCATE idempotence, and the task settings behind them."""

from __future__ import annotations

import json

import pytest

from obsync.core.changes import Change, Op, StreamDone
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.default import DefaultEncoder
from obsync.runtime.prepare import check_fixed_partition
from obsync.steps.partitioning import partition_key
from obsync.steps.shaping import Shaper
from obsync.task.config import parse_task
from obsync.task.objects import check_table, plan_for
from obsync.task.selection import Selection

ORDERS = TableSchema("shop", "orders", (Column("id", "int", "int(11)"), Column("cust", "int", "int(11)"),
                                        Column("region", "varchar", "varchar(8)")), ("id",))
ITEMS = TableSchema("shop", "items", (Column("id", "int", "int(11)"),), ("id",))
TASK = {
    "name": "t",
    "source": {"user": "u"},
    "target": {"bootstrap_servers": "127.0.0.1:9092"},
    "objects": [{"match": "shop.orders", "sharding_columns": ["cust", "region"]}, {"match": "shop.items"}],
}


def pos(n: int, row: int = 0) -> LogPosition:
    return LogPosition("b.000001", n, row)


def ins(table: TableSchema, n: int, **row) -> Change:
    return Change(Op.INSERT, table, pos(n), after=row, txn=f"t{n}")


def ddl(statement: str, txn: str, n: int, db: str = "shop", tables=(("shop", "items"),)) -> Change:
    return Change(Op.DDL, ITEMS, pos(n), ddl=statement, ddl_db=db, ddl_tables=tables, txn=txn)


def shaper() -> Shaper:
    return Shaper.from_task(parse_task(TASK))


# ------------------------------------------------------------------------------------------ sharding columns


def test_sharding_columns_are_set_on_the_objects_changes_only_in_batch_order():
    batch = [ins(ORDERS, 1, id=1, cust=7, region="eu"), StreamDone("s"), ins(ITEMS, 2, id=5),
             ins(ORDERS, 3, id=2, cust=8, region="us")]
    out = shaper().shape(batch)
    assert [type(c).__name__ for c in out] == ["Change", "StreamDone", "Change", "Change"]
    assert out[0].table.sharding_columns == ("cust", "region") == out[3].table.sharding_columns
    assert out[0].table.message_key_columns == ("cust", "region")
    assert out[0].table.key_columns == ("id",)  # the row's identity stays the primary key
    assert out[2] is batch[2] and out[1] is batch[1]
    assert [c.position for c in out if isinstance(c, Change)] == [pos(1), pos(2), pos(3)]
    assert (out[0].after, out[0].op, out[0].txn) == (batch[0].after, Op.INSERT, "t1")


def test_the_shaped_schema_is_built_once_per_source_schema():
    s = shaper()
    first = s.shape([ins(ORDERS, i, id=i, cust=1, region="x") for i in range(50)])
    again = s.shape([ins(ORDERS, 99, id=99, cust=1, region="x")])
    assert len({id(c.table) for c in first + again}) == 1
    altered = TableSchema("shop", "orders", ORDERS.columns + (Column("qty", "int", "int(11)"),), ("id",))
    [after_ddl] = s.shape([ins(altered, 100, id=1, cust=1, region="x", qty=0)])
    assert after_ddl.table is not first[0].table and after_ddl.table.column_names[-1] == "qty"
    assert after_ddl.table.sharding_columns == ("cust", "region")


def test_a_batch_with_nothing_to_shape_is_returned_as_is():
    batch = [ins(ITEMS, 1, id=1), StreamDone("s")]
    assert shaper().shape(batch) is batch
    plain = parse_task({**TASK, "objects": [{"match": "shop.*"}]})
    assert Shaper.from_task(plain).shape(b := [ins(ORDERS, 1, id=1, cust=1, region="")]) is b


def test_the_message_key_follows_the_sharding_columns_and_the_record_key_stays_the_primary_key():
    [change] = shaper().shape([ins(ORDERS, 1, id=42, cust=7, region="eu")])
    [rec] = DefaultEncoder("t").encode(change, "topic")
    assert rec.key == b'[7,"eu"]' == partition_key(change)
    meta = json.loads(rec.value)["allMetaData"]
    assert (meta["record_primary_key"], meta["record_primary_value"]) == ("id", "42")
    # without sharding columns the key is the primary key
    [plain] = DefaultEncoder("t").encode(ins(ORDERS, 1, id=42, cust=7, region="eu"), "topic")
    assert plain.key == b"[42]"


def test_sharding_columns_on_a_table_without_a_key_give_it_a_message_key():
    logs = TableSchema("shop", "logs", (Column("msg", "varchar", "varchar(9)"), Column("k", "int", "int(11)")))
    s = Shaper.from_task(parse_task({**TASK, "objects": [{"match": "shop.logs", "sharding_columns": ["k"]}]}))
    [change] = s.shape([ins(logs, 1, msg="hi", k=3)])
    [rec] = DefaultEncoder("t").encode(change, "topic")
    assert rec.key == b"[3]" == partition_key(change)
    assert json.loads(rec.value)["allMetaData"]["record_primary_key"] is None


def test_a_sharding_column_dropped_by_ddl_stops_the_task_with_the_reason():
    narrowed = TableSchema("shop", "orders", ORDERS.columns[:2], ("id",))
    with pytest.raises(ConfigError, match=r"sharding_columns column 'region' of shop.orders "
                                          r"\(objects.0 \(shop.orders\)\) .*columns now: id, cust"):
        shaper().shape([ins(narrowed, 1, id=1, cust=1)])


# ------------------------------------------------------------------------------------- TRUNCATE idempotence


def test_a_second_identical_truncate_in_one_transaction_is_dropped():
    s = shaper()
    batch = [ddl("TRUNCATE TABLE items", "gtid-1", 1), ins(ITEMS, 2, id=1), ddl("TRUNCATE TABLE items", "gtid-1", 3)]
    assert [c.position for c in s.shape(batch)] == [pos(1), pos(2)]
    # across batches too, and again in a later transaction
    assert s.shape([ddl("TRUNCATE TABLE items", "gtid-1", 4)]) == []
    assert [c.position for c in s.shape([ddl("TRUNCATE TABLE items", "gtid-2", 5)])] == [pos(5)]


def test_different_truncates_and_other_ddl_repeated_in_one_transaction_all_pass():
    s = shaper()
    batch = [
        ddl("TRUNCATE TABLE items", "g", 1),
        ddl("TRUNCATE TABLE orders", "g", 2, tables=(("shop", "orders"),)),
        ddl("TRUNCATE TABLE items", "g", 3, db="other"),  # another default database: another table
        ddl("ALTER TABLE items TRUNCATE PARTITION p0", "g", 4),
        ddl("ALTER TABLE items TRUNCATE PARTITION p0", "g", 5),
        ddl("/* c */ truncate items", "g", 6),
        ddl("/* c */ truncate items", "g", 7),
        ddl("TRUNCATE TABLE items", "g", 8),
    ]
    assert [c.position.pos for c in s.shape(batch)] == [1, 2, 3, 4, 5, 6]


def test_truncates_without_a_transaction_identity_are_all_delivered():
    s = shaper()
    assert len(s.shape([ddl("TRUNCATE items", None, 1), ddl("TRUNCATE items", None, 2)])) == 2


# --------------------------------------------------------------------------------------------- settings


def test_sharding_columns_in_the_task_file():
    t = parse_task(TASK)
    assert t.objects[0].sharding_columns == ("cust", "region") and t.objects[1].sharding_columns == ()
    bad = {**TASK, "objects": [{"match": "shop.orders", "sharding_columns": ["cust", "cust"]}]}
    with pytest.raises(ConfigError, match=r"`objects.0.sharding_columns`: .*'cust' is named twice"):
        parse_task(bad)


def test_an_unknown_sharding_column_is_named_with_the_tables_columns():
    task = parse_task({**TASK, "objects": [{"match": "shop.*", "sharding_columns": ["cust", "regoin"]}]})
    with pytest.raises(ConfigError) as e:
        check_table(plan_for(task, Selection(task.objects), "shop", "orders"), ORDERS)
    assert str(e.value) == ("field `objects.0.sharding_columns`: table shop.orders (matched by 'shop.*') has no "
                            "column 'regoin'; its columns: id, cust, region")
    good = parse_task(TASK)
    check_table(plan_for(good, Selection(good.objects), "shop", "orders"), ORDERS)


def test_fixed_partition_must_exist_in_every_topic():
    one = parse_task({**TASK, "partitioning": "one", "fixed_partition": 3})
    with pytest.raises(ConfigError, match=r"`fixed_partition`: 3 is not a partition of topic b, which has 3 "
                                          r"\(partitions 0 to 2\); choose a partition below 3"):
        check_fixed_partition(one, {"a": 4, "b": 3})
    check_fixed_partition(one, {"a": 4, "b": 8})
    check_fixed_partition(parse_task({**TASK, "fixed_partition": 9}), {"a": 4})  # only the One rule uses it


# ------------------------------------------------------------------------------ columns and DML types


def upd(table: TableSchema, n: int, before: dict, after: dict) -> Change:
    return Change(Op.UPDATE, table, pos(n), before=before, after=after, txn=f"t{n}")


def test_columns_narrow_rows_and_schema_but_keep_the_key_and_sharding_columns():
    t = parse_task({**TASK, "objects": [{"match": "shop.orders", "columns": ["region"],
                                         "sharding_columns": ["cust"]}]})
    s = Shaper.from_task(t)
    out = s.shape([ins(ORDERS, 1, id=1, cust=7, region="eu"),
                   upd(ORDERS, 2, {"id": 1, "cust": 7, "region": "eu"}, {"id": 1, "cust": 7, "region": "us"})])
    assert [c.after for c in out] == [{"id": 1, "cust": 7, "region": "eu"}, {"id": 1, "cust": 7, "region": "us"}]
    assert out[0].table.column_names == ("id", "cust", "region") and out[0].table.primary_key == ("id",)
    only_id = Shaper.from_task(parse_task({**TASK, "objects": [{"match": "shop.orders", "columns": ["id"]}]}))
    [c] = only_id.shape([ins(ORDERS, 1, id=1, cust=7, region="eu")])
    assert c.after == {"id": 1} and c.table.column_names == ("id",) and c.table.key_columns == ("id",)
    [rec] = DefaultEncoder("t").encode(c, "topic")
    assert json.loads(rec.value)["postStruct"] == {"id": "1"}
    # the narrowed schema is built once per source schema
    assert only_id.shape([ins(ORDERS, 2, id=2, cust=1, region="")])[0].table is c.table


def test_dml_types_drop_the_operations_not_listed_and_keep_ddl():
    t = parse_task({**TASK, "sync": {"dml": ["insert", "delete"]}})
    s = Shaper.from_task(t)
    batch = [ins(ITEMS, 1, id=1), upd(ITEMS, 2, {"id": 1}, {"id": 1}),
             Change(Op.DELETE, ITEMS, pos(3), before={"id": 1}, txn="t3"), ddl("ALTER TABLE items ADD x INT", "g", 4)]
    assert [(c.op, c.position) for c in s.shape(batch)] == [(Op.INSERT, pos(1)), (Op.DELETE, pos(3)),
                                                          (Op.DDL, pos(4))]

"""Debezium schema-change events field for field: `tableChanges` (golden, as Debezium 3.1's MySQL parser describes
the same DDL), the events of CREATE, ALTER ADD COLUMN, RENAME and DROP, TRUNCATE, and comments as `doc`.

The tables are built by obsync's DDL reader from the statements, as the binlog tracker builds them; the expected
members follow Debezium's `ConnectTableChangeSerializer` and `MySqlAntlrDdlParser` (see
`obsync.formats.debezium.table_changes`). Comparisons are of serialized JSON, so member order counts.
"""

from __future__ import annotations

import json
from typing import Any

from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition
from obsync.formats.avro.schemas import avro_schema
from obsync.formats.debezium import connect_schema as cs
from obsync.formats.debezium.config import DebeziumConfig
from obsync.formats.debezium.json_format import DebeziumEncoder
from obsync.formats.debezium.smt import DebeziumSmtEncoder
from obsync.sql import ddl as D

CREATE = ("CREATE TABLE items (id INT NOT NULL AUTO_INCREMENT COMMENT 'row id', "
          "name VARCHAR(40) CHARACTER SET latin1 DEFAULT 'n/a', price DECIMAL(10,2) NOT NULL DEFAULT 1.5, "
          "kind ENUM('a','b''c') DEFAULT 'a', flags SET('x','y','z'), "
          "created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, d DATETIME(3), b BIT(3) DEFAULT b'101', "
          "u BIGINT UNSIGNED, note TEXT, PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='the items'")

# the columns of CREATE as Debezium describes them (MariaDB spelling: INT(11), BIGINT(20) UNSIGNED); text, ENUM and
# SET columns without a character set of their own have the table's
ITEMS_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "jdbcType": 4, "nativeType": None, "typeName": "INT", "typeExpression": "INT",
     "charsetName": None, "length": 11, "scale": None, "position": 1, "optional": False, "autoIncremented": True,
     "generated": True, "comment": "row id", "defaultValueExpression": None, "enumValues": None},
    {"name": "name", "jdbcType": 12, "nativeType": None, "typeName": "VARCHAR", "typeExpression": "VARCHAR",
     "charsetName": "latin1", "length": 40, "scale": None, "position": 2, "optional": True,
     "autoIncremented": False, "generated": False, "comment": None, "defaultValueExpression": "n/a",
     "enumValues": None},
    {"name": "price", "jdbcType": 3, "nativeType": None, "typeName": "DECIMAL", "typeExpression": "DECIMAL",
     "charsetName": None, "length": 10, "scale": 2, "position": 3, "optional": False, "autoIncremented": False,
     "generated": False, "comment": None, "defaultValueExpression": "1.50", "enumValues": None},
    {"name": "kind", "jdbcType": 1, "nativeType": None, "typeName": "ENUM", "typeExpression": "ENUM",
     "charsetName": "utf8mb4", "length": 1, "scale": None, "position": 4, "optional": True, "autoIncremented": False,
     "generated": False, "comment": None, "defaultValueExpression": "a", "enumValues": ["'a'", "'b''c'"]},
    {"name": "flags", "jdbcType": 1, "nativeType": None, "typeName": "SET", "typeExpression": "SET",
     "charsetName": "utf8mb4", "length": 5, "scale": None, "position": 5, "optional": True, "autoIncremented": False,
     "generated": False, "comment": None, "defaultValueExpression": None, "enumValues": ["'x'", "'y'", "'z'"]},
    {"name": "created", "jdbcType": 2014, "nativeType": None, "typeName": "TIMESTAMP",
     "typeExpression": "TIMESTAMP", "charsetName": None, "length": None, "scale": None, "position": 6,
     "optional": False, "autoIncremented": False, "generated": False, "comment": None,
     "defaultValueExpression": "1970-01-01 00:00:00", "enumValues": None},
    {"name": "d", "jdbcType": 93, "nativeType": None, "typeName": "DATETIME", "typeExpression": "DATETIME",
     "charsetName": None, "length": 3, "scale": None, "position": 7, "optional": True, "autoIncremented": False,
     "generated": False, "comment": None, "defaultValueExpression": None, "enumValues": None},
    {"name": "b", "jdbcType": -7, "nativeType": None, "typeName": "BIT", "typeExpression": "BIT",
     "charsetName": None, "length": 3, "scale": None, "position": 8, "optional": True, "autoIncremented": False,
     "generated": False, "comment": None, "defaultValueExpression": "101", "enumValues": None},
    {"name": "u", "jdbcType": -5, "nativeType": None, "typeName": "BIGINT UNSIGNED",
     "typeExpression": "BIGINT UNSIGNED", "charsetName": None, "length": 20, "scale": None, "position": 9,
     "optional": True, "autoIncremented": False, "generated": False, "comment": None,
     "defaultValueExpression": None, "enumValues": None},
    {"name": "note", "jdbcType": 12, "nativeType": None, "typeName": "TEXT", "typeExpression": "TEXT",
     "charsetName": "utf8mb4", "length": None, "scale": None, "position": 10, "optional": True,
     "autoIncremented": False, "generated": False, "comment": None, "defaultValueExpression": None,
     "enumValues": None},
]


def dumps(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def table_def(sql: str = CREATE, base: D.TableDef | None = None) -> D.TableDef:
    st = D.parse_ddl(sql, "shop", "mariadb")
    if isinstance(st, D.CreateTable):
        return D.create_table_def(st, None)
    assert isinstance(st, D.AlterTable) and base is not None
    return D.apply_alter(base, st)


def ddl_change(sql: str, tdef: D.TableDef | None, tables: tuple[tuple[str, str], ...]) -> Change:
    return Change(Op.DDL, None if tdef is None else tdef.schema, LogPosition("mysql-bin.000003", 4096),
                  commit_time=1700000000, server_id=1, ddl=sql, ddl_db="shop", ddl_tables=tables)


def events(change: Change, **options: Any) -> list[dict[str, Any]]:
    enc = DebeziumEncoder(DebeziumConfig("dbz", **options), clock=lambda: 1700000001_000_000_000)
    return [json.loads(r.value)["payload"] for r in enc.encode(change, "shop.items") if r.topic == "dbz"]


def test_create_table_lists_every_column_as_debezium_does() -> None:
    [event] = events(ddl_change(CREATE, table_def(), (("shop", "items"),)))
    assert (event["databaseName"], event["source"]["table"], event["ddl"]) == ("shop", "items", CREATE)
    assert dumps(event["tableChanges"]) == dumps([{
        "type": "CREATE", "id": '"shop"."items"',
        "table": {"defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"], "columns": ITEMS_COLUMNS,
                  "comment": "the items"}}])


def test_alter_add_column_gives_the_whole_table_after_it() -> None:
    sql = "ALTER TABLE items ADD COLUMN tag VARCHAR(8) NOT NULL DEFAULT '' COMMENT 'short tag' AFTER name"
    [event] = events(ddl_change(sql, table_def(sql, table_def()), (("shop", "items"),)))
    [change] = event["tableChanges"]
    assert (change["type"], change["id"], event["ddl"]) == ("ALTER", '"shop"."items"', sql)
    cols = change["table"]["columns"]
    assert [(c["name"], c["position"]) for c in cols] == [
        ("id", 1), ("name", 2), ("tag", 3), ("price", 4), ("kind", 5), ("flags", 6), ("created", 7), ("d", 8),
        ("b", 9), ("u", 10), ("note", 11)]
    assert dumps(cols[2]) == dumps(
        {"name": "tag", "jdbcType": 12, "nativeType": None, "typeName": "VARCHAR", "typeExpression": "VARCHAR",
         "charsetName": "utf8mb4", "length": 8, "scale": None, "position": 3, "optional": False,
         "autoIncremented": False, "generated": False, "comment": "short tag", "defaultValueExpression": "",
         "enumValues": None})


def test_rename_names_the_new_table() -> None:
    renamed = table_def().renamed(("shop", "goods"))
    sql = "RENAME TABLE items TO goods"
    [event] = events(ddl_change(sql, renamed, (("shop", "items"), ("shop", "goods"))))
    assert (event["source"]["table"], event["ddl"]) == ("goods", sql)  # not "items,goods"
    assert dumps(event["tableChanges"]) == dumps([{
        "type": "ALTER", "id": '"shop"."goods"',
        "table": {"defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"], "columns": ITEMS_COLUMNS,
                  "comment": "the items"}}])
    alter_rename = "ALTER TABLE items RENAME TO goods"
    [event] = events(ddl_change(alter_rename, renamed, (("shop", "items"), ("shop", "goods"))))
    assert event["source"]["table"] == "goods" and event["tableChanges"][0]["id"] == '"shop"."goods"'


def test_drop_gives_one_event_per_table_without_structure() -> None:
    sql = "DROP TABLE IF EXISTS goods, shop.other"
    got = events(ddl_change(sql, None, (("shop", "goods"), ("shop", "other"))))
    assert [(e["ddl"], e["source"]["table"], dumps(e["tableChanges"])) for e in got] == [
        ("DROP TABLE IF EXISTS `shop`.`goods`", "goods,other",
         '[{"type":"DROP","id":"\\"shop\\".\\"goods\\"","table":null}]'),
        ("DROP TABLE IF EXISTS `shop`.`other`", "goods,other",
         '[{"type":"DROP","id":"\\"shop\\".\\"other\\"","table":null}]'),
    ]


def test_truncate_writes_no_schema_change_unless_asked() -> None:
    change = ddl_change("TRUNCATE TABLE items", table_def(), (("shop", "items"),))
    assert events(change) == []
    [event] = events(change, truncate_schema_changes=True)
    assert (event["ddl"], event["tableChanges"]) == ("TRUNCATE TABLE items", [])


def test_comments_are_the_fields_doc_in_connect_and_avro() -> None:
    schema = table_def().schema
    value = cs.value_schema(schema, DebeziumConfig("dbz"))
    assert dumps(value["fields"][0]) == dumps(
        {"type": "int32", "optional": False, "doc": "row id", "field": "id"})
    avro = avro_schema(cs.envelope_schema(schema, DebeziumConfig("dbz")))
    before = avro["fields"][0]["type"][1]
    assert before["fields"][0] == {"name": "id", "type": {"type": "int", "connect.doc": "row id"}, "doc": "row id"}
    key = cs.key_schema(schema, DebeziumConfig("dbz"))
    assert key is not None and key["fields"][0]["doc"] == "row id"


def test_smt_puts_deleted_before_the_added_fields() -> None:
    enc = DebeziumSmtEncoder(DebeziumConfig("dbz", schemas_enable=False), clock=lambda: 1700000001_000_000_000)
    tdef = table_def("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(4)) DEFAULT CHARSET=utf8mb4")
    insert = Change(Op.INSERT, tdef.schema, LogPosition("mysql-bin.000003", 5000, 1), after={"id": 1, "v": "x"},
                    commit_time=1700000000, server_id=1)
    [record] = enc.encode(insert, "t")
    assert record.value == (b'{"id":1,"v":"x","__deleted":"false","__op":"c","__table":"t","__db":"shop",'
                            b'"__source_ts_ms":1700000000000}')
    schema = cs.smt_value_schema(tdef.schema, DebeziumConfig("dbz", schemas_enable=False))
    assert [f["field"] for f in schema["fields"]] == ["id", "v", "__deleted", "__op", "__table", "__db",
                                                      "__source_ts_ms"]

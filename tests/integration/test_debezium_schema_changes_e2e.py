"""Debezium schema-change events end to end: MariaDB -> `obsync run --until-caught-up` (format `debezium`, a
pattern rule `db.*`) -> tansu; the schema-change topic read back as a schema-history consumer reads it.

Full sync of a commented table (its CREATE TABLE first, from SHOW CREATE TABLE, as Debezium's snapshot writes it),
then in the binlog: CREATE TABLE, ALTER TABLE ADD COLUMN with a comment,
RENAME TABLE, TRUNCATE TABLE, DROP TABLE. Each event's `tableChanges` describe the table after the statement
as Debezium 3.1's MySQL connector does (docs/formats/debezium.md, "Schema-change events"); the RENAME names the
new table in `source.table`; TRUNCATE writes none; the column comments are the `doc` of the table topic's
Connect schema.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, unique, write_task

ITEMS = ("CREATE TABLE items (id INT NOT NULL AUTO_INCREMENT COMMENT 'row id', "
         "name VARCHAR(20) CHARACTER SET latin1 DEFAULT 'n/a', price DECIMAL(10,2) NOT NULL DEFAULT 1.50, "
         "PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COMMENT='the items'")
LOG = [
    "CREATE TABLE t2 (k BIGINT UNSIGNED NOT NULL, s ENUM('a','b') DEFAULT 'b', PRIMARY KEY (k))",
    "ALTER TABLE items ADD COLUMN note TEXT COMMENT 'free text'",
    "INSERT INTO items (name, price, note) VALUES ('pen', 2.5, 'blue')",
    "RENAME TABLE t2 TO t3",
    "TRUNCATE TABLE items",
    "DROP TABLE t3",
]


def run(task: Path) -> None:
    proc = subprocess.run(obsync_cmd("run", str(task), "--until-caught-up"), capture_output=True, text=True,
                          timeout=180, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def landed(tmp_path_factory, mariadb, kafka) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(db, schema-change payloads in topic order, `items` topic messages as {schema, payload})."""
    tmp = tmp_path_factory.mktemp("dbzsc")
    db, prefix = unique("dbzsc"), unique("dbzsc-p")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
        cur.execute(f"USE {db}")
        cur.execute(ITEMS)
        cur.execute("INSERT INTO items (name, price) VALUES ('cup', 1.25)")
        task = write_task(tmp / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.*"],
                          sync={"full": True, "incremental": True, "ddl": True}, format="debezium",
                          topic="${database}_${table}", format_options={"topic_prefix": prefix})
        run(task)  # full sync
        run(task)  # the log start is fixed before the DDL (see test_formats_debezium_e2e)
        for sql in LOG:
            cur.execute(sql)
        run(task)
    conn.close()
    changes = [json.loads(m.value)["payload"] for m in read_topic(kafka.bootstrap_servers, prefix)]
    items = [json.loads(m.value) for m in read_topic(kafka.bootstrap_servers, f"{db}_items") if m.value]
    return db, changes, items


def column(name: str, jdbc: int, type_name: str, position: int, optional: bool, **over: Any) -> dict[str, Any]:
    c = {"name": name, "jdbcType": jdbc, "nativeType": None, "typeName": type_name, "typeExpression": type_name,
         "charsetName": None, "length": None, "scale": None, "position": position, "optional": optional,
         "autoIncremented": False, "generated": False, "comment": None, "defaultValueExpression": None,
         "enumValues": None}
    c.update(over)
    return c


ITEMS_COLUMNS = [  # as Debezium reads them from MariaDB's SHOW CREATE TABLE (int(11), 'n/a', '1.50'); a text column
    # without a character set of its own has the table's (Debezium's ColumnImpl)
    column("id", 4, "INT", 1, False, length=11, autoIncremented=True, generated=True, comment="row id"),
    column("name", 12, "VARCHAR", 2, True, charsetName="latin1", length=20, defaultValueExpression="n/a"),
    column("price", 3, "DECIMAL", 3, False, length=10, scale=2, defaultValueExpression="1.50"),
]


def test_full_sync_writes_each_tables_create_table_first(landed, mariadb) -> None:
    db, changes, _ = landed
    snapshot = changes[0]  # before every event of the log
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {db}.items")
        shown = cur.fetchone()[1]
    conn.close()
    # the DDL Debezium's snapshot writes: SHOW CREATE TABLE as planned (the later ALTER is not in it)
    assert "`note`" in shown and "`note`" not in snapshot["ddl"]
    assert snapshot["ddl"].startswith("CREATE TABLE `items`") and "COMMENT='the items'" in snapshot["ddl"]
    assert (snapshot["databaseName"], snapshot["source"]["table"], snapshot["source"]["snapshot"]) == (
        db, "items", "true")
    assert snapshot["tableChanges"] == [{"type": "CREATE", "id": f'"{db}"."items"', "table": {
        "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"], "columns": ITEMS_COLUMNS,
        "comment": "the items"}}]
    # once: the runs after the full sync resume without writing it again
    assert [c["source"]["snapshot"] for c in changes] == ["true"] + ["false"] * (len(changes) - 1)


def test_each_ddl_gives_the_events_debezium_writes(landed) -> None:
    db, changes, _ = landed
    changes = changes[1:]  # after the full sync's CREATE TABLE
    # no TRUNCATE event (Debezium 3.2+; `truncate_schema_changes: true` asks for one)
    assert [(c["ddl"].split(" /*")[0], c["source"]["table"]) for c in changes] == [
        (LOG[0], "t2"), (LOG[1], "items"), (LOG[3], "t3"), (f"DROP TABLE `{db}`.`t3`", "t3")]
    assert all(c["databaseName"] == db and c["source"]["db"] == db and c["schemaName"] is None for c in changes)
    assert all(c["source"]["snapshot"] == "false" for c in changes)
    create, alter, rename, drop = (c["tableChanges"] for c in changes)
    t2_columns = [
        column("k", -5, "BIGINT UNSIGNED", 1, False, length=20),
        column("s", 1, "ENUM", 2, True, charsetName="utf8mb4", length=1, defaultValueExpression="b",
               enumValues=["'a'", "'b'"]),
    ]
    assert create == [{"type": "CREATE", "id": f'"{db}"."t2"', "table": {
        "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["k"], "columns": t2_columns, "comment": None}}]
    assert alter == [{"type": "ALTER", "id": f'"{db}"."items"', "table": {
        "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"], "comment": "the items",
        "columns": [*ITEMS_COLUMNS, column("note", 12, "TEXT", 4, True, charsetName="utf8mb4", comment="free text")]}}]
    assert rename == [{"type": "ALTER", "id": f'"{db}"."t3"', "table": {
        "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["k"], "columns": t2_columns, "comment": None}}]
    assert drop == [{"type": "DROP", "id": f'"{db}"."t3"', "table": None}]


def test_member_order_is_the_connect_schemas(landed) -> None:
    _, changes, _ = landed
    table = changes[2]["tableChanges"][0]["table"]
    assert list(table) == ["defaultCharsetName", "primaryKeyColumnNames", "columns", "comment"]
    assert list(table["columns"][0]) == [
        "name", "jdbcType", "nativeType", "typeName", "typeExpression", "charsetName", "length", "scale", "position",
        "optional", "autoIncremented", "generated", "comment", "defaultValueExpression", "enumValues"]


def test_column_comments_are_the_connect_doc(landed) -> None:
    _, _, items = landed
    by_id = {m["payload"]["after"]["id"]: m for m in items}  # (the rows' keys hash to different partitions)
    assert {i: m["payload"]["op"] for i, m in by_id.items()} == {1: "r", 2: "c"}
    for message, docs in [(by_id[1], {"id": "row id"}), (by_id[2], {"id": "row id", "note": "free text"})]:
        after = message["schema"]["fields"][1]
        assert {f["field"]: f["doc"] for f in after["fields"] if "doc" in f} == docs

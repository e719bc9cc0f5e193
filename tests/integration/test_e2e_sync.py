"""A user's view of a task: task file in, `obsync run`, Kafka messages out (MariaDB binlog source)."""

from __future__ import annotations

import json
from decimal import Decimal

from obsync.core.positions import position_from_header
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows


def test_full_then_incremental_lands_every_row_in_order(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {db}.orders VALUES (%s,%s,%s,%s,%s)",
                        [(i, f"n{i} ✓ 你好", i * 2, Decimal(f"{i}.25"), None) for i in range(1, 301)])
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 70, "batch_size": 25})
    run_obsync("run", str(task), "--until-caught-up")
    topic = f"Topic_{db}_orders"
    msgs = read_topic(kafka.bootstrap_servers, topic)
    assert sorted(json.loads(m.value)["recordType"] for m in msgs) == ["ROW"] * 300
    first = next(json.loads(m.value) for m in msgs if m.key == b'[7]')
    assert first["postStruct"] == {"id": "7", "name": "n7 ✓ 你好", "qty": "14", "price": "7.25", "note": None}
    assert first["allMetaData"]["table_name"] == "orders" and first["allMetaData"]["db"] == db

    # Changes after the snapshot, including a key change and a delete, then catch up again.
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id <= 10")
        cur.execute(f"UPDATE {db}.orders SET id = 1000 WHERE id = 11")
        cur.execute(f"DELETE FROM {db}.orders WHERE id = 12")
        cur.execute(f"INSERT INTO {db}.orders VALUES (2000, 'new', 1, NULL, 'x')")
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, topic)
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")
    kinds = [json.loads(m.value)["recordType"] for m in msgs]
    assert kinds.count("UPDATE") == 10 and kinds.count("DELETE") == 2 and kinds.count("INSERT") == 2
    moved = [json.loads(m.value) for m in sorted(
        (m for m in msgs if m.key in (b'[11]', b'[1000]')),
        key=lambda m: (position_from_header(m.headers["obsync.pos"]).sort_key, m.headers["obsync.seq"]))]
    assert [(v["recordType"], (v["prevStruct"] or v["postStruct"])["id"]) for v in moved] == [
        ("ROW", "11"), ("DELETE", "11"), ("INSERT", "1000")]


def test_changes_before_a_ddl_between_runs_use_the_schema_of_their_position(tmp_path, mariadb, kafka, shop):
    """A first run that had nothing to stream still pins the schema at its start position."""
    db, conn = shop
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders VALUES (1, 'a', 1, 1.00, NULL)")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"])
    run_obsync("run", str(task), "--until-caught-up")
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders VALUES (2, 'before', 2, 2.00, 'old shape')")
        cur.execute(f"ALTER TABLE {db}.orders ADD COLUMN extra VARCHAR(10) NULL AFTER name, DROP COLUMN note")
        cur.execute(f"INSERT INTO {db}.orders VALUES (3, 'after', 'x', 3, 3.00)")
    run_obsync("run", str(task), "--until-caught-up")
    rows = {m.key: json.loads(m.value)["postStruct"] for m in read_topic(kafka.bootstrap_servers,
                                                                         f"Topic_{db}_orders")}
    assert rows[b"[2]"] == {"id": "2", "name": "before", "qty": "2", "price": "2.00", "note": "old shape"}
    assert rows[b"[3]"] == {"id": "3", "name": "after", "extra": "x", "qty": "3", "price": "3.00"}

"""The schema history's start written exactly once across a crash in its middle (`obsync.runtime.schema_history`),
against MariaDB and tansu: a start cut short after its first table (as a SIGKILL leaves it: a prefix, no record
marked last) is completed by the next start with only the missing tables, the last one marked; a complete start,
or a topic holding schema changes, gets nothing more. The CREATE records of tables added to the selection are
written once too: a second attempt (a crash before the selection was saved) writes nothing, and none is
written while the start is incomplete."""

from __future__ import annotations

import json

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from obsync.connectors.mysql.catalog import SqlCatalog
from obsync.core.positions import LogPosition
from obsync.formats.schema_history import start_record
from obsync.runtime.prepare import kafka_conf
from obsync.runtime.schema_history import write_history_added, write_history_start
from obsync.runtime.settings import sql_endpoint
from obsync.task.config import load_task
from tests.helpers.kafka import read_partition
from tests.helpers.tasks import unique, write_task


def test_a_start_cut_short_is_completed_without_duplicates(tmp_path, mariadb, kafka):
    db = unique("shstart")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for t in ("a", "b", "c"):
            cur.execute(f"CREATE TABLE {db}.{t} (id INT PRIMARY KEY, {t} VARCHAR(3))")
    task = load_task(write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.*"]))
    topic = unique("hist")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    conn = mariadb.connect()
    try:
        catalog = SqlCatalog(conn)
        tables = {(db, t): catalog.table_schema(db, t) for t in ("a", "b", "c")}
    finally:
        conn.close()
    pos = LogPosition("mysql-bin.000001", 4)
    args = (kafka_conf(task), topic, task.name, "task-id", sql_endpoint(task.source))

    # a start killed after its first record: that record, not marked last
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(topic, start_record(task.name, pos, tables[(db, "a")], "CREATE TABLE `a` (...)")[1], db.encode(),
                     partition=0)
    assert producer.flush(30) == 0
    assert write_history_start(*args, tables, pos) == 2
    assert write_history_start(*args, tables, pos) == 0
    values = [json.loads(m.value) for m in read_partition(kafka.bootstrap_servers, topic, 0)]
    assert [v["tableChanges"][0]["id"] for v in values] == [f'"{db}"."{t}"' for t in ("a", "b", "c")]
    assert [v["position"]["snapshot"] for v in values] == [True, True, "last"]
    assert [v["ddl"].split("(")[0] for v in values[1:]] == ["CREATE TABLE `b` ", "CREATE TABLE `c` "]
    assert [m.headers["obsync.task"] for m in read_partition(kafka.bootstrap_servers, topic, 0)[1:]] == [b"task-id"] * 2

    # a table added later (its CREATE record at the position it is taken in), then the same attempt again
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {db}.d (id INT PRIMARY KEY)")
        catalog = SqlCatalog(conn)
        added = {(db, "d"): catalog.table_schema(db, "d"), (db, "a"): tables[(db, "a")]}  # a: already described
    later = LogPosition("mysql-bin.000001", 900)
    assert write_history_added(*args, added, later) == 1
    assert write_history_added(*args, added, later) == 0
    values = [json.loads(m.value) for m in read_partition(kafka.bootstrap_servers, topic, 0)]
    assert [(v["tableChanges"][0]["id"], v["position"]) for v in values[3:]] == [
        (f'"{db}"."d"', {"file": "mysql-bin.000001", "pos": 900, "row": 0})]
    assert values[3]["ddl"].startswith("CREATE TABLE `d`")

    # nothing while the start is incomplete: the start describes every table
    other = unique("hist")
    admin.create_topics([NewTopic(other, 1, 1)])[other].result()
    producer.produce(other, start_record(task.name, pos, tables[(db, "a")], "CREATE TABLE `a` (...)")[1], db.encode(),
                     partition=0)
    assert producer.flush(30) == 0
    assert write_history_added(kafka_conf(task), other, task.name, "task-id", sql_endpoint(task.source), added,
                               later) == 0

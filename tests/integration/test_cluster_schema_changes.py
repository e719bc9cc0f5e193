"""Schema changes in a 2-process cluster (`obsync run -i K -a ...`, a state directory per process, shared state in
the control topic), MariaDB -> tansu, with `schema_history` enabled and `schema_changes: {policy: ignore}`:

- the schema-history topic is exact: each table's start record once (process 0 alone writes them), each schema
  change once, at its own position, in order, through a clean restart, a SIGKILL of one process (the run saves no
  state: epoch 30 s, so the restarted cluster reads the killed run's DDL again) and a restart of both; a DROP
  DATABASE is recorded as dropping its tables, so the replay ends with none;
- the `ignore` shapes live in the control topic (no state directory holds them) and hold across the restarts:
  the canal messages of the altered table keep its first columns through ADD and DROP COLUMN.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from obsync.core.positions import LogPosition
from obsync.formats.schema_history import replay
from tests.helpers.cluster import Cluster, control_records
from tests.helpers.kafka import read_topic
from tests.helpers.schema_history import binlog_position, history, wait_for_records
from tests.helpers.tasks import unique, write_task


def canal(kafka: Any, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in sorted(read_topic(kafka.bootstrap_servers, topic),
                                                key=lambda m: (m.partition, m.offset))]


def test_history_and_ignore_shapes_are_exact_across_a_kill_and_restarts(tmp_path: Path, mariadb, kafka):
    db = unique("clsch")
    ddl: list[tuple[str, LogPosition]] = []  # each schema change and its binlog position, in order
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:

        def run(sql: str) -> None:
            cur.execute(sql)
            if not sql.startswith("INSERT"):
                ddl.append((sql, binlog_position(cur)))

        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(10) NULL DEFAULT 'dflt', c INT)")
        cur.execute("CREATE TABLE u (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1, 10, 'x', 100)")
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.*"],
                          format="canal", partitioning="table", schema_changes={"policy": "ignore"},
                          schema_history={"enabled": True}, epoch_seconds=30)
        name = yaml.safe_load(task.read_text())["name"]
        topic = f"obsync.schema_history.{name}"
        cluster = Cluster(tmp_path, task)
        cluster.run_until_caught_up()
        start_pos = binlog_position(cur)

        run("ALTER TABLE t ADD COLUMN n INT NULL")
        run("INSERT INTO t VALUES (2, 20, 'y', 200, 2000)")
        cluster.run_until_caught_up()  # a clean restart after the ADD: its shape is kept in the control topic

        cluster.start()
        run("ALTER TABLE t DROP COLUMN b")
        run("INSERT INTO t VALUES (3, 30, 300, 3000)")
        run("CREATE TABLE v (id INT PRIMARY KEY, s VARCHAR(5))")
        wait_for_records(kafka, topic, 3)
        cluster.procs[1].kill()  # SIGKILL
        assert cluster.procs[1].wait(30) == -9
        time.sleep(1)
        cluster.kill_all()
        killed = history(kafka, topic)

        run("ALTER TABLE u ADD COLUMN y INT NULL")
        run("INSERT INTO t VALUES (4, 40, 400, 4000)")
        cluster.run_until_caught_up()
        resumed = "".join(cluster.log(k).read_text().rsplit("--- start", 1)[-1] for k in range(2))
        before_drop = binlog_position(cur)
        run(f"DROP DATABASE {db}")
        cluster.run_until_caught_up()

    msgs = history(kafka, topic)
    values = [json.loads(m.value) for m in msgs]
    start = [v for v in values if v["position"].get("snapshot")]
    # each table's start record once, first, written by one process at the start position
    assert values[:2] == start
    assert [(v["tableChanges"][0]["id"], v["position"]) for v in start] == [
        (f'"{db}"."t"', {"file": start_pos.file, "pos": start_pos.pos, "row": 0, "snapshot": True}),
        (f'"{db}"."u"', {"file": start_pos.file, "pos": start_pos.pos, "row": 0, "snapshot": "last"})]
    # each schema change once, at its position, in order, though the killed run had written some of them
    changes = values[2:]
    assert len(killed) > 2
    assert f"{topic}[0]: " in resumed and "will not be written again" in resumed  # read again, dropped
    assert [(v["ddl"], v["position"]["file"], v["position"]["pos"]) for v in changes] == [
        (sql, p.file, p.pos) for sql, p in ddl]
    assert [i["type"] for i in changes[-1]["tableChanges"]] == ["DROP"] * 3
    assert sorted(i["id"] for i in changes[-1]["tableChanges"]) == [f'"{db}"."{t}"' for t in ("t", "u", "v")]
    at_end = replay(values, before_drop)
    assert {t: [c["name"] for c in s["columns"]] for (_, t), s in at_end.items()} == {
        "t": ["id", "a", "c", "n"], "u": ["id", "y"], "v": ["id", "s"]}
    assert replay(values) == {}

    # the ignore policy: t's first shape through ADD and DROP COLUMN, the restarts and the kill, each row once
    rows = canal(kafka, f"Topic_{db}_t")
    assert [(m["type"], m["data"]) for m in rows] == [
        ("INSERT", [{"id": "1", "a": "10", "b": "x", "c": "100"}]),
        ("INSERT", [{"id": "2", "a": "20", "b": "y", "c": "200"}]),  # n left out
        ("INSERT", [{"id": "3", "a": "30", "b": "dflt", "c": "300"}]),  # b dropped: its default
        ("INSERT", [{"id": "4", "a": "40", "b": "dflt", "c": "400"}]),
    ]
    assert all(m["mysqlType"] == {"id": "int(11)", "a": "int(11)", "b": "varchar(10)", "c": "int(11)"} for m in rows)
    # the shapes are kept in the control topic, by position, each of t's with its first columns
    lines = [json.loads(v["line"]) for k, v in control_records(kafka.bootstrap_servers, name).items()
             if k.startswith("schema_shapes/")]
    t_shapes = [r["shape"] for r in lines if (r["db"], r["table"]) == (db, "t") and r["shape"] is not None]
    assert t_shapes and all([c["name"] for c in s["schema"]["columns"]] == ["id", "a", "b", "c"] for s in t_shapes)
    assert not any((cluster.state_dir(k) / "schema_history").exists() for k in range(2))

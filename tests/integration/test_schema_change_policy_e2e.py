"""`schema_changes.policy` from the user's side: MariaDB -> `obsync run --until-caught-up` -> tansu (and the test
schema registry), each message read back as a consumer reads it.

- ignore: the canal messages of a table keep the shape it had (columns, their MySQL types) through ADD, DROP
  (a default, a NOT NULL column without one) and RENAME COLUMN, across a restart between them;
- stop: the run stops at the DDL, status failed, a message naming the statement, the table, its binlog position
  and how to go on (exit status 2, as every error); a second run stops at the same place; with evolve the next
  run resumes there: every row exactly once, those after the DDL in the new shape;
- compatible: for each compatibility level (BACKWARD, FORWARD, FULL, NONE) and each kind of DDL, the value
  schema versions the registry holds and the decoded messages; a change no shape can mend stops the run,
  naming the subject and the field, and the user's way on (relaxing the subject's level) resumes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsync.formats.avro.registry import SchemaRegistryClient
from obsync.formats.avro.wire import read, split_confluent
from tests.helpers.kafka import read_topic
from tests.helpers.schema_registry import TestSchemaRegistry
from tests.helpers.tasks import run_obsync, unique, write_task


def canal(kafka: Any, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in sorted(read_topic(kafka.bootstrap_servers, topic),
                                                key=lambda m: (m.partition, m.offset))]


def test_ignore_keeps_each_tables_shape_through_add_drop_and_rename_and_a_restart(tmp_path, mariadb, kafka):
    db = unique("ign")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(10) NULL DEFAULT 'dflt', "
                    "c INT NULL)")
        cur.execute("INSERT INTO t VALUES (1, 10, 'x', 100)")
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                          format="canal", partitioning="table", schema_changes={"policy": "ignore"})
        run_obsync("run", str(task), "--until-caught-up")
        cur.execute("ALTER TABLE t ADD COLUMN n INT NULL")
        cur.execute("INSERT INTO t VALUES (2, 20, 'y', 200, 2000)")
        run_obsync("run", str(task), "--until-caught-up")  # a restart after the ADD: its shape is in the state
        cur.execute("ALTER TABLE t DROP COLUMN b")
        cur.execute("INSERT INTO t VALUES (3, 30, 300, 3000)")
        cur.execute("ALTER TABLE t RENAME COLUMN c TO c2")
        cur.execute("INSERT INTO t VALUES (4, 40, 400, 4000)")
        cur.execute("UPDATE t SET c2 = 401 WHERE id = 4")
        cur.execute("ALTER TABLE t DROP COLUMN a")
        cur.execute("INSERT INTO t VALUES (5, 500, 5000)")
        logs = run_obsync("run", str(task), "--until-caught-up").stderr

    msgs = canal(kafka, f"Topic_{db}_t")
    assert [(m["type"], m["data"]) for m in msgs] == [
        ("INSERT", [{"id": "1", "a": "10", "b": "x", "c": "100"}]),
        ("INSERT", [{"id": "2", "a": "20", "b": "y", "c": "200"}]),  # n left out
        ("INSERT", [{"id": "3", "a": "30", "b": "dflt", "c": "300"}]),  # b dropped: its default
        ("INSERT", [{"id": "4", "a": "40", "b": "dflt", "c": "400"}]),  # c renamed c2: still c
        ("UPDATE", [{"id": "4", "a": "40", "b": "dflt", "c": "401"}]),
        ("INSERT", [{"id": "5", "a": None, "b": "dflt", "c": "500"}]),  # a (NOT NULL, no default) dropped: null
    ]
    assert msgs[4]["old"] == [{"c": "400"}]
    assert all(m["mysqlType"] == {"id": "int(11)", "a": "int(11)", "b": "varchar(10)", "c": "int(11)"}
               for m in msgs)
    assert "column b is gone: sent as its default dflt" in logs and "column c is renamed c2: still sent as c" in logs
    # the shapes are in the task's state, by position: each one with the table's first columns
    shapes = [json.loads(line) for line in
              (tmp_path / "state" / "schema_history" / "schema_shapes.jsonl").read_text().splitlines()]
    assert len(shapes) >= 2 and all(
        [c["name"] for c in s["shape"]["schema"]["columns"]] == ["id", "a", "b", "c"] for s in shapes)
    assert shapes[-1]["shape"]["names"] == {"b": None, "c": "c2", "a": None}


def test_stop_stops_at_the_ddl_and_evolve_resumes_there(tmp_path, mariadb, kafka):
    db = unique("stop")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT)")
        cur.execute("INSERT INTO t VALUES (1, 10)")
        path = tmp_path / "task.yaml"
        task = write_task(path, db_server=mariadb, kafka=kafka, tables=[f"{db}.t"], format="canal",
                          partitioning="table", schema_changes={"policy": "stop"})
        run_obsync("run", str(task), "--until-caught-up")
        cur.execute("INSERT INTO t VALUES (2, 20)")
        cur.execute("ALTER TABLE t ADD COLUMN n INT NULL")
        cur.execute("INSERT INTO t VALUES (3, 30, 300)")
        cur.execute("SHOW MASTER STATUS")
        binlog_file = cur.fetchone()[0]
        stopped = [run_obsync("run", str(task), "--until-caught-up", check=False) for _ in range(2)]
        status = json.loads((tmp_path / "state" / "status.json").read_text())
        before = canal(kafka, f"Topic_{db}_t")

        data = yaml.safe_load(path.read_text())
        data["schema_changes"] = {"policy": "evolve"}
        path.write_text(yaml.safe_dump(data))
        run_obsync("run", str(task), "--until-caught-up")

    pattern = (rf"schema change at ({re.escape(binlog_file)}:\d+) on table {db}\.t: 'ALTER TABLE t ADD COLUMN n INT "
               r"NULL'\. The task's schema_changes\.policy is stop, so it stopped before any change after this "
               r"statement; every change before it is written\. To go on, set schema_changes\.policy to evolve")
    where = []
    for proc in stopped:
        assert proc.returncode == 2, proc.stderr[-3000:]  # obsync's status for an error
        found = re.search(pattern, proc.stderr)
        assert found, proc.stderr[-3000:]
        where.append(found.group(1))
    assert where[0] == where[1]  # the second run resumed at the same statement and stopped there again
    assert status["state"] == "failed" and re.search(pattern, status["error"])
    assert [(m["type"], m["data"]) for m in before] == [("INSERT", [{"id": "1", "a": "10"}]),
                                                        ("INSERT", [{"id": "2", "a": "20"}])]

    msgs = canal(kafka, f"Topic_{db}_t")
    assert [(m["type"], m["data"]) for m in msgs] == [
        ("INSERT", [{"id": "1", "a": "10"}]), ("INSERT", [{"id": "2", "a": "20"}]),
        ("INSERT", [{"id": "3", "a": "30", "n": "300"}])]


# ---------------------------------------------------------------------- compatible

BASE = "id INT PRIMARY KEY, a INT NOT NULL, big BIGINT NOT NULL, note VARCHAR(10) NULL"
# table -> (DDL, the row inserted after it, the row as decoded after it)
DDLS = {
    "add_col": ("ADD COLUMN n VARCHAR(10) NULL", "(2, 2, 20, 'x', 'nn')",
                {"id": 2, "a": 2, "big": 20, "note": "x", "n": "nn"}),
    "add_nn": ("ADD COLUMN r INT NOT NULL", "(2, 2, 20, 'x', 7)", {"id": 2, "a": 2, "big": 20, "note": "x", "r": 7}),
    "drop_col": ("DROP COLUMN a", "(2, 20, 'x')", {"id": 2, "big": 20, "note": "x"}),
    "widen": ("MODIFY a BIGINT NOT NULL", "(2, 5000000000, 20, 'x')",
              {"id": 2, "a": 5000000000, "big": 20, "note": "x"}),
    "narrow": ("MODIFY big INT NOT NULL", "(2, 2, 20, 'x')", {"id": 2, "a": 2, "big": 20, "note": "x"}),
    "ren_col": ("RENAME COLUMN a TO a2", "(2, 2, 20, 'x')", {"id": 2, "a2": 2, "big": 20, "note": "x"}),
}
# level -> table -> what the registry holds as the new version's changed field: its Avro type as registered
# ("as is": obsync's schema unchanged), or "stop" (no compatible shape: the run stops naming it; the test then
# relaxes the subject to NONE, the way on the message gives, and the next run registers obsync's schema)
AS_IS = {"add_col": ("n", ["null", "string"]), "add_nn": ("r", "int"), "drop_col": ("a", None),
         "widen": ("a", "long"), "narrow": ("big", "int"), "ren_col": ("a2", "int")}
EXPECTED = {
    "BACKWARD": {"add_col": "as is", "add_nn": ["null", "int"], "drop_col": "as is", "widen": "as is",
                 "narrow": "long", "ren_col": ["null", "int"]},
    "FORWARD": {"add_col": "as is", "add_nn": "as is", "drop_col": "stop", "widen": "stop", "narrow": "as is",
                "ren_col": "stop"},
    "FULL": {"add_col": "as is", "add_nn": ["null", "int"], "drop_col": "stop", "widen": "stop", "narrow": "long",
             "ren_col": "stop"},
    "NONE": dict.fromkeys(DDLS, "as is"),
}

# the field a stop names, and why
STOP_REASON = {"drop_col": "Value.a: dropped, and readers of the old schema need it",
               "widen": "Value.a: type widened from int to long", "ren_col": "Value.a: dropped"}


def value_fields(schema_text: str) -> dict[str, Any]:
    schema = json.loads(schema_text)
    return {f["name"]: f for f in schema["fields"][0]["type"][1]["fields"]}


@pytest.mark.parametrize("level", list(EXPECTED))
def test_compatible_registers_the_smallest_compatible_shape_or_stops(tmp_path: Path, mariadb, kafka, level):
    db = unique("cmp")
    with TestSchemaRegistry() as reg, mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:  # noqa: SIM117
        reg.config[""] = level
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        for t in DDLS:
            cur.execute(f"CREATE TABLE {t} ({BASE})")
            cur.execute(f"INSERT INTO {t} VALUES (1, 1, 10, 'o')")
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.{t}" for t in DDLS],
                          name=f"{db}_task", format="avro", partitioning="table",
                          format_options={"schema_registry": {"url": reg.url}},
                          schema_changes={"policy": "compatible"})
        run_obsync("run", str(task), "--until-caught-up")
        for t, (ddl, row, _) in DDLS.items():
            cur.execute(f"ALTER TABLE {t} {ddl}")
            cur.execute(f"INSERT INTO {t} VALUES {row}")
        stops: dict[str, str] = {}
        logs = ""
        for _ in range(len(DDLS) + 1):
            proc = run_obsync("run", str(task), "--until-caught-up", check=False)
            logs += proc.stderr
            if proc.returncode == 0:
                break
            found = re.search(rf"the new schema of subject '(Topic_{db}_(\w+)-value)' is not compatible with its "
                              rf"latest version under compatibility level {level}, and no shape obsync can write "
                              r"is: (.*?)\. The task stopped", proc.stderr)
            assert found, proc.stderr[-3000:]
            assert found.group(2) not in stops
            stops[found.group(2)] = found.group(3)
            assert f"PUT {reg.url}/config/{found.group(1)}" in proc.stderr
            reg.config[found.group(1)] = "NONE"  # the way on the message gives
        else:
            pytest.fail("the task never caught up")

        consumer = SchemaRegistryClient(reg.url)
        assert set(stops) == {t for t, e in EXPECTED[level].items() if e == "stop"}
        for t, expected in EXPECTED[level].items():
            subject = f"Topic_{db}_{t}-value"
            versions = [reg.schemas[i - 1] for i in reg.subjects[subject]]
            # a narrowed type kept wide is the first version itself: the registry gives its id again
            assert len(versions) == (1 if expected == "long" else 2), (t, versions)
            name, as_is = AS_IS[t]
            fields = value_fields(versions[-1])
            got = fields[name]["type"] if name in fields else None
            if expected in ("as is", "stop"):  # registered as obsync made it, no shape changed
                assert got == as_is, (t, got)
                assert f"the new schema of subject {subject} is not" not in logs
            else:
                assert got == expected, (t, got)
                if isinstance(expected, list):  # made optional: with default null
                    assert fields[name]["default"] is None
                assert f"the new schema of subject {subject} is not {level} compatible" in logs
            if expected == "stop":
                assert stops[t].startswith(STOP_REASON[t]), stops[t]
            # the messages: the row before the DDL with the first version, the row after it with the second
            rows = []
            for m in sorted(read_topic(kafka.bootstrap_servers, f"Topic_{db}_{t}"), key=lambda m: m.offset):
                sid, payload = split_confluent(m.value)
                rows.append((sid, read(payload, consumer.schema(sid))["after"]))
            assert [sid for sid, _ in rows] == [reg.subjects[subject][0], reg.subjects[subject][-1]]
            assert rows[0][1] == {"id": 1, "a": 1, "big": 10, "note": "o"}
            assert rows[1][1] == DDLS[t][2]

"""Tables added to the task's selection get their CREATE TABLE in the schema history, exactly once, so a consumer
replaying the topic alone can rebuild them: MariaDB -> `obsync run` -> tansu.

A running task (schema_history enabled, selecting `a`) has `b` added by `obsync reload` (SIGHUP): b's CREATE record
is written at the log position of the reload (between the positions noted before and after it), then b's ALTER
follows; the task is SIGKILLed and run again (nothing written twice). Stopped, the task file adds `c`: the next run
writes c's CREATE record. A replay at the end gives a, b and c as MariaDB has them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from obsync.core.positions import LogPosition, binlog_file_number
from obsync.formats.schema_history import replay
from tests.helpers.schema_history import binlog_position, history, wait_for_records
from tests.helpers.tasks import run_obsync, unique, write_task
from tests.integration.test_live_changes import Running, edit_objects


def key(p: LogPosition | dict[str, Any]) -> tuple[int, int]:
    if isinstance(p, dict):
        return binlog_file_number(p["file"]), p["pos"]
    return binlog_file_number(p.file), p.pos


def test_tables_added_by_reload_or_while_stopped_get_one_create_record(tmp_path, mariadb, kafka):
    db = unique("shlive")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        for t in ("a", "b", "c"):
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, {t}1 VARCHAR(8) NOT NULL DEFAULT '{t}')")
        name = unique("shlive")
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.a"], name=name,
                          sync={"full": False, "incremental": True}, schema_history={"enabled": True})
        topic = f"obsync.schema_history.{name}"
        run = Running(task)
        try:
            run.wait_log("step: ", timeout=60)
            time.sleep(2)
            before = binlog_position(cur)
            edit_objects(task, [{"match": f"{db}.a"}, {"match": f"{db}.b"}])
            run.hup()
            run.wait_log("reloaded", timeout=60)
            after = binlog_position(cur)
            time.sleep(2)  # the reader takes the new selection at its next transaction boundary
            cur.execute("ALTER TABLE b ADD COLUMN b2 INT NULL")
            alter_b = binlog_position(cur)
            cur.execute("INSERT INTO b VALUES (1, 'x', 2)")
            wait_for_records(kafka, topic, 2)
        finally:
            run.stop(kill=True)
        run_obsync("run", str(task), "--until-caught-up")

        edit_objects(task, [{"match": f"{db}.a"}, {"match": f"{db}.b"}, {"match": f"{db}.c"}])
        stopped = binlog_position(cur)
        run_obsync("run", str(task), "--until-caught-up")
        run_obsync("run", str(task), "--until-caught-up")
        cur.execute("ALTER TABLE c ADD COLUMN c2 INT NULL")
        alter_c = binlog_position(cur)
        run_obsync("run", str(task), "--until-caught-up")

    values = [json.loads(m.value) for m in history(kafka, topic)]
    assert [(v["ddl"].split("(")[0] if v["ddl"].startswith("CREATE") else v["ddl"],
             v["tableChanges"][0]["type"], v["tableChanges"][0]["id"]) for v in values] == [
        ("CREATE TABLE `a` ", "CREATE", f'"{db}"."a"'),
        ("CREATE TABLE `b` ", "CREATE", f'"{db}"."b"'),
        ("ALTER TABLE b ADD COLUMN b2 INT NULL", "ALTER", f'"{db}"."b"'),
        ("CREATE TABLE `c` ", "CREATE", f'"{db}"."c"'),
        ("ALTER TABLE c ADD COLUMN c2 INT NULL", "ALTER", f'"{db}"."c"'),
    ]
    assert values[0]["position"]["snapshot"] == "last"
    assert all("snapshot" not in v["position"] for v in values[1:])
    assert key(before) <= key(values[1]["position"]) <= key(after)  # b: where the reload happened
    assert key(values[2]["position"]) == key(alter_b)
    assert key(stopped) <= key(values[3]["position"]) < key(alter_c)  # c: where the run after the edit began
    assert key(values[4]["position"]) == key(alter_c)
    b_at_add = replay(values, LogPosition(after.file, after.pos))[(db, "b")]
    assert [c["name"] for c in b_at_add["columns"]] == ["id", "b1"]
    assert {t: [c["name"] for c in s["columns"]] for (_, t), s in replay(values).items()} == {
        "a": ["id", "a1"], "b": ["id", "b1", "b2"], "c": ["id", "c1", "c2"]}

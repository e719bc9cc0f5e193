"""A task sized by `resources` (explicit full settings, incremental preset) syncs every row exactly."""

from __future__ import annotations

import json

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task


def test_a_task_with_resources_syncs_every_row(tmp_path, mariadb, kafka):
    db = unique("res")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s)", [(i, f"v{i}") for i in range(5000)])
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                      snapshot={"chunk_size": 1000, "batch_size": 2000},
                      resources={"full": {"read_concurrency": 3, "memory": "4MiB", "write_concurrency": 1},
                                 "incremental": "small"})
    run_obsync("run", str(task), "--until-caught-up")
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {db}.t SET v = 'x' WHERE id < 100")
    run_obsync("run", str(task), "--until-caught-up")
    state = {}
    for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_t"):
        state[m.key] = json.loads(m.value)["postStruct"]["v"]
    assert state == {json.dumps([i]).encode(): ("x" if i < 100 else f"v{i}") for i in range(5000)}
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()

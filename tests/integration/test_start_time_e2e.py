"""`sync.start_time` from the user's side: incremental sync starts at the first transaction committed at or
after that time, found in the binlog; a time older than the oldest binlog is refused."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task


def test_start_time_lands_on_the_first_transaction_committed_at_or_after_it(tmp_path, mariadb, kafka):
    db = unique("st")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, 'before'), (2, 'before')")
        time.sleep(1.2)
        start = time.time()
        time.sleep(0.1)
        cur.execute(f"INSERT INTO {db}.t VALUES (3, 'after')")
        cur.execute(f"UPDATE {db}.t SET v = 'after' WHERE id = 1")
    iso = datetime.fromtimestamp(start, UTC).isoformat()
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                      sync={"full": False, "incremental": True, "start_time": iso})
    run_obsync("run", str(task), "--until-caught-up")
    got = [(v["recordType"], v["postStruct"]["id"], v["postStruct"]["v"])
           for v in (json.loads(m.value) for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_t"))]
    assert sorted(got) == [("INSERT", "3", "after"), ("UPDATE", "1", "after")]

    # epoch seconds work too; a time before the oldest binlog is an error that says what to do
    (tmp_path / "old").mkdir()
    old = write_task(tmp_path / "old" / "old.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                     name=unique("old"), sync={"full": False, "incremental": True, "start_time": 946684800})
    proc = run_obsync("run", str(old), "--until-caught-up", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "2000-01-01" in proc.stderr and "oldest" in proc.stderr and "full sync" in proc.stderr
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()

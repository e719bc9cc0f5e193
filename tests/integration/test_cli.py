"""Running tasks the ways users do: the CLI, `python -m bytewax.run`, several workers, signals, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from obsync.app.embedded.mariadb import MariaDBServer
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task

ROOT = Path(__file__).resolve().parents[2]


def make_table(server, rows: int) -> str:
    db = unique("cli")
    with server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        if rows:
            cur.execute(f"INSERT INTO {db}.t SELECT seq, CONCAT('v', seq) FROM {db}.seq_1_to_{rows}")
    return db


def keys_by_type(bootstrap: str, topic: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in read_topic(bootstrap, topic):
        out.setdefault(json.loads(m.value)["recordType"], []).append(json.loads(m.key)[0])
    return {k: sorted(v) for k, v in out.items()}


def test_bytewax_run_with_two_workers(tmp_path, mariadb, kafka):
    db = make_table(mariadb, 3000)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                      snapshot={"chunk_size": 400, "batch_size": 100})
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    env = {**os.environ, "OBSYNC_TASK": str(task), "OBSYNC_UNTIL_CAUGHT_UP": "1"}
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        proc = subprocess.run([sys.executable, "-m", "bytewax.run", "obsync.flows.sync:flow", "-w", "2",
                               "-r", str(recovery), "-s", "1", "-b", "0"], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        cur.execute(f"INSERT INTO {db}.t VALUES (5000, 'late')")
        proc = subprocess.run([sys.executable, "-m", "bytewax.run", "obsync.flows.sync:flow", "-w", "2",
                               "-r", str(recovery), "-s", "1", "-b", "0"], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert keys_by_type(kafka.bootstrap_servers, f"Topic_{db}_t") == {"ROW": list(range(1, 3001)),
                                                                      "INSERT": [5000]}


def test_sigterm_stops_cleanly_and_the_next_run_resumes(tmp_path, mariadb, kafka):
    db = make_table(mariadb, 500)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"])
    log = tmp_path / "obsync.log"
    proc = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stderr=open(log, "wb"))
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        deadline = time.monotonic() + 60
        while "ROW" not in keys_by_type(kafka.bootstrap_servers, f"Topic_{db}_t"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        for i in range(1001, 1101):
            cur.execute(f"INSERT INTO {db}.t VALUES ({i}, 'live')")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        assert "stopped; the next run resumes" in log.read_text()
        cur.execute(f"DELETE FROM {db}.t WHERE id = 1")
    run_obsync("run", str(task), "--until-caught-up")
    assert keys_by_type(kafka.bootstrap_servers, f"Topic_{db}_t") == {
        "ROW": list(range(1, 501)), "INSERT": list(range(1001, 1101)), "DELETE": [1]}


def test_config_error_names_the_field(tmp_path, mariadb, kafka):
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=["a.b"], format="xml")
    proc = run_obsync("run", str(task), check=False)
    assert proc.returncode == 2
    assert "field `format`" in proc.stderr and "'canal'" in proc.stderr


def test_missing_table_is_reported(tmp_path, mariadb, kafka):
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=["nodb.nothere"])
    proc = run_obsync("run", str(task), check=False)
    assert proc.returncode == 2 and "nodb.nothere does not exist" in proc.stderr


def test_purged_binlog_position_stops_with_what_to_do(tmp_path, kafka):
    server = MariaDBServer(tmp_path / "own-mariadb")  # private: purging would break other tests' positions
    try:
        db = make_table(server, 10)
        task = write_task(tmp_path / "task.yaml", db_server=server, kafka=kafka, tables=[f"{db}.t"],
                          sync={"full": False, "incremental": True})
        run_obsync("run", str(task), "--until-caught-up")
        with server.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {db}.t VALUES (11, 'x')")
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            current = cur.fetchone()[0]
            deadline = time.monotonic() + 30  # MariaDB keeps a file until its binlog checkpoint has passed
            while True:
                cur.execute(f"PURGE BINARY LOGS TO '{current}'")
                cur.execute("SHOW BINARY LOGS")
                if [r[0] for r in cur.fetchall()] == [current]:
                    break
                assert time.monotonic() < deadline, "binlog.000001 could not be purged"
                time.sleep(0.2)
        proc = run_obsync("run", str(task), "--until-caught-up", check=False)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "binlog.000001" in proc.stderr and "full sync" in proc.stderr, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
    finally:
        server.close()


def test_a_second_run_of_a_running_task_is_refused(tmp_path, mariadb, kafka):
    db = make_table(mariadb, 10)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"])
    log = tmp_path / "obsync.log"
    first = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stderr=open(log, "wb"))
    try:
        deadline = time.monotonic() + 60
        while "ROW" not in keys_by_type(kafka.bootstrap_servers, f"Topic_{db}_t"):
            assert time.monotonic() < deadline and first.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        second = run_obsync("run", str(task), check=False)
        assert second.returncode == 2
        assert f"already running (process {first.pid})" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)

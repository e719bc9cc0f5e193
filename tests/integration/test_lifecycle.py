"""A task's lifecycle from the terminal: save, start in the background, status, pause with writes in between,
resume, stop, list, delete."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task


def status(target: Path) -> dict:
    return json.loads(run_obsync("status", str(target), "--json").stdout)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_save_start_status_pause_resume_stop_list_delete(tmp_path, mariadb, kafka):
    db = unique("life")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
        cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s)", [(i, i) for i in range(1000)])
    root = tmp_path / "state"
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                           name=unique("life"), state_dir=str(root / "life"))
    topic = f"Topic_{db}_t"
    state_dir = root / "life"

    assert "saved task" in run_obsync("save", str(task_file)).stdout
    assert status(state_dir)["state"] == "saved"
    assert "started" in run_obsync("start", str(state_dir)).stdout
    wait_for(lambda: len(read_topic(kafka.bootstrap_servers, topic)) >= 1000, what="full sync")
    s = wait_for(lambda: (x := status(state_dir))["phase"] == "incremental" and x, what="incremental phase")
    assert s["state"] == "running" and s["pid"] > 0
    assert s["full_sync"] == [{"table": f"{db}.t", "rows_done": 1000, "rows_estimated": s["full_sync"][0][
        "rows_estimated"], "chunks_done": 1, "chunks_total": 1}]
    assert s["messages_written"] == 1000 and s["log_position_read"]["file"].startswith("binlog.")

    # pause: the process stops at a consistent point; writes made meanwhile arrive after resume
    assert run_obsync("pause", str(state_dir)).stdout.strip() == "paused"
    assert status(state_dir)["state"] == "paused"
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s)", [(i, i) for i in range(1000, 1100)])
        cur.execute(f"UPDATE {db}.t SET v = -1 WHERE id < 10")
        cur.execute(f"DELETE FROM {db}.t WHERE id BETWEEN 10 AND 19")
    time.sleep(1)
    assert len(read_topic(kafka.bootstrap_servers, topic)) == 1000  # nothing read while paused
    run_obsync("resume", str(state_dir))
    def all_changes():
        m = read_topic(kafka.bootstrap_servers, topic)
        return m if len(m) >= 1120 else None

    msgs = wait_for(all_changes, what="the changes made while paused")
    state: dict[str, dict] = {}
    for m in msgs:
        v = json.loads(m.value)
        if v["recordType"] == "DELETE":
            state.pop(m.key.decode(), None)
        else:
            state[m.key.decode()] = v["postStruct"]
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, v FROM {db}.t")
        assert state == {json.dumps([i]): {"id": str(i), "v": str(v)} for i, v in cur.fetchall()}
    assert len(msgs) == 1120  # nothing lost, nothing twice

    listed = json.loads(run_obsync("list", str(root), "--json").stdout)
    assert [(t["name"], t["state"]) for t in listed] == [(s["name"], "running")]
    assert run_obsync("delete", str(state_dir), "--yes", check=False).returncode == 2  # running: refused
    assert run_obsync("stop", str(state_dir)).stdout.strip() == "stopped"
    assert status(state_dir)["state"] == "stopped"
    assert "stopped" in run_obsync("list", str(root)).stdout
    refused = run_obsync("reload", str(state_dir), check=False)
    assert refused.returncode == 2 and "is not running" in refused.stderr
    assert run_obsync("delete", str(state_dir), "--yes").returncode == 0
    assert not state_dir.exists()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()

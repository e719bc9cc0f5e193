"""A source that goes silent or is not MySQL at all: obsync notices in bounded time, waits as long as
`source.patience` allows, says what it waits for, and either carries on (nothing lost, nothing twice) or
stops with an error naming the source. The silent network is `tests.helpers.blackhole.BlackholeProxy`
between obsync and MariaDB (packets dropped, sockets left open)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.blackhole import BlackholeProxy
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task

ROWS = 3000


@pytest.fixture
def table(mariadb):
    db = unique("outage")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
        cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s)", [(i, f"v{i}") for i in range(1, ROWS + 1)])
    yield f"{db}.t"
    conn.close()


def _task_through(tmp_path: Path, mariadb, kafka, table: str, proxy: BlackholeProxy, **source) -> Path:
    """A full-sync task reading `table` through `proxy`, slowed down so that a hole lands mid-run."""
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                      sync={"full": True, "incremental": False}, topic=unique("outage"),
                      snapshot={"chunk_size": 500, "batch_size": 100}, limits={"full": {"rps": 300}})
    doc = yaml.safe_load(task.read_text())
    doc["source"].update({"sql_host": proxy.host, "sql_port": proxy.port, **source})
    task.write_text(json.dumps(doc))
    return task


def _status(tmp_path: Path) -> dict:
    try:
        return json.loads((tmp_path / "state" / "status.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


def _rows_done(tmp_path: Path) -> int:
    return sum(t.get("rows_done", 0) for t in _status(tmp_path).get("full_sync") or [])


def _wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_precheck_and_run_against_a_port_that_is_not_mysql_fail_naming_it(tmp_path, mariadb, kafka):
    host, _, port = kafka.bootstrap_servers.partition(",")[0].rpartition(":")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=["mysql.user"])
    doc = yaml.safe_load(task.read_text())
    doc["source"].update({"host": host, "port": int(port), "connect_timeout": 2, "password": "pw-never-shown-53"})
    task.write_text(json.dumps(doc))

    pre = run_obsync("precheck", str(task), "--json", timeout=60, check=False)
    assert pre.returncode == 1, pre.stdout + pre.stderr
    [reachable] = [i for i in json.loads(pre.stdout)["items"] if i["id"] == "source.reachable"]
    assert reachable["status"] == "failed"
    assert f"{host}:{port}" in reachable["reason"] and "no MySQL greeting" in reachable["reason"], reachable
    assert "pw-never-shown-53" not in pre.stdout + pre.stderr

    run = run_obsync("run", str(task), timeout=60, check=False)
    assert run.returncode == 2, run.stderr
    assert f"{host}:{port}" in run.stderr and "no MySQL greeting" in run.stderr, run.stderr[-3000:]
    assert "pw-never-shown-53" not in run.stdout + run.stderr


@pytest.mark.slow
def test_full_sync_waits_out_a_silent_source_and_lands_every_row_once(tmp_path, mariadb, kafka, table):
    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:
        task = _task_through(tmp_path, mariadb, kafka, table, proxy,
                             connect_timeout=2, read_timeout=2, patience=120)
        topic = json.loads(task.read_text())["topic"]
        proc = subprocess.Popen(obsync_cmd("run", str(task)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=Path(__file__).resolve().parents[2])
        try:
            _wait_for(lambda: _rows_done(tmp_path) >= 500 or proc.poll() is not None, 90, "full sync to start")
            assert proc.poll() is None, "full sync ended before the hole"
            proxy.blackhole()
            seen_waiting: list[dict] = []

            def waiting() -> bool:
                w = _status(tmp_path).get("waiting_for_source")
                if w:
                    seen_waiting.append(w)
                return bool(w)

            _wait_for(waiting, 12, "status.json to show the wait")
            shown = run_obsync("status", str(task), timeout=30).stdout
            time.sleep(10)
            proxy.restore()
            out, err = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err[-5000:]
    assert f"waiting for the source {proxy.host}:{proxy.port}" in err, err[-5000:]
    assert f"{proxy.host}:{proxy.port}" in seen_waiting[0]["for"]
    assert f"waiting     for the source {proxy.host}:{proxy.port} for " in shown, shown
    assert "waiting_for_source" not in _status(tmp_path)  # over once the source is back

    messages = read_topic(kafka.bootstrap_servers, topic)
    keys = sorted(json.loads(m.key)[0] for m in messages)
    assert keys == list(range(1, ROWS + 1))  # every row, none twice
    assert {json.loads(m.value)["postStruct"]["v"] for m in messages} == {f"v{i}" for i in range(1, ROWS + 1)}


@pytest.mark.slow
def test_a_hole_longer_than_patience_fails_the_run_naming_the_source(tmp_path, mariadb, kafka, table):
    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:
        task = _task_through(tmp_path, mariadb, kafka, table, proxy,
                             connect_timeout=2, read_timeout=2, patience=6)
        proc = subprocess.Popen(obsync_cmd("run", str(task)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=Path(__file__).resolve().parents[2])
        try:
            _wait_for(lambda: _rows_done(tmp_path) >= 500 or proc.poll() is not None, 90, "full sync to start")
            assert proc.poll() is None, "full sync ended before the hole"
            proxy.blackhole()  # for good
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode != 0
    last = err.strip().splitlines()[-1]
    assert f"{proxy.host}:{proxy.port}" in last and "source.patience" in last, err[-3000:]
    status = _status(tmp_path)
    assert status.get("state") == "failed" and f"{proxy.host}:{proxy.port}" in status.get("error", "")

"""A source that goes silent, stops, or is not MySQL at all: obsync (full sync and the log) notices in bounded
time, waits as long as `source.patience` allows, says what it waits for, and either carries on (nothing lost,
nothing twice) or stops with an error naming the source. The outage is `tests.helpers.blackhole.BlackholeProxy`
between obsync and MariaDB: silent (packets dropped, sockets left open) or stopped (closed and refused)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers.blackhole import BlackholeProxy
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

ROOT = Path(__file__).resolve().parents[2]
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


# ---- the log (incremental sync) through an outage ---------------------------------------------------------

SEED = 2000


@pytest.fixture
def orders(shop):
    """The shop's `orders` table with SEED rows, and a connection to the source (not through any proxy)."""
    db, conn = shop
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_{SEED}")
    return db, conn


def _log_task(tmp_path: Path, mariadb, kafka, db: str, proxy: BlackholeProxy, **source) -> Path:
    """A full + incremental task on `db`.orders whose every connection (SQL and log) goes through `proxy`."""
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"])
    doc = yaml.safe_load(task.read_text())
    doc["source"].update({"host": proxy.host, "port": proxy.port, **source})
    task.write_text(json.dumps(doc))
    return task


def _wait_streaming(tmp_path: Path, proc: subprocess.Popen, log: Path) -> None:
    """Until the task is in incremental sync and has written changes from the log."""
    def streaming() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        s = _status(tmp_path)
        return s.get("phase") == "incremental" and s.get("log_position_written") is not None

    _wait_for(streaming, 90, "incremental sync to write changes from the log")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in the metrics")


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["silent", "stopped"])
def test_the_log_waits_out_a_source_outage_shows_it_and_loses_nothing(tmp_path, mariadb, kafka, orders, outage):
    """Incremental sync under concurrent writes; the source goes silent (packets dropped) or stops (connections
    closed, new ones refused) for longer than the read timeout: status.json, `obsync status` and the metric
    show the log waiting while it lasts, and after the source is back the rows written meanwhile arrive, the
    topic replays to the table, no position twice."""
    db, conn = orders
    stop = threading.Event()
    writer_conn = mariadb.connect(autocommit=True)  # straight to the server: the source keeps changing
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 12), daemon=True)
    log = tmp_path / "run.log"
    port = _free_port()
    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:
        task = _log_task(tmp_path, mariadb, kafka, db, proxy, connect_timeout=2, read_timeout=2, patience=120)
        source = f"{proxy.host}:{proxy.port}"
        with open(log, "wb") as out:
            proc = subprocess.Popen(obsync_cmd("run", str(task), "--metrics-port", str(port), "--metrics-host",
                                               "127.0.0.1"), stdout=out, stderr=out, cwd=ROOT)
        try:
            writer.start()
            _wait_streaming(tmp_path, proc, log)
            before = source_rows(conn, f"{db}.orders")
            proxy.blackhole() if outage == "silent" else proxy.refuse()
            seen: list[dict] = []

            def waiting() -> bool:
                assert proc.poll() is None, log.read_text()[-3000:]
                w = _status(tmp_path).get("waiting_for_source")
                if w:
                    seen.append(w)
                return bool(w)

            _wait_for(waiting, 30, "status.json to show the log waiting for the source")
            shown = run_obsync("status", str(task), timeout=30).stdout
            waited = _metric(port, "obsync_source_waiting_seconds")
            assert source_rows(conn, f"{db}.orders") != before  # rows were written while the log waited
            proxy.restore()
            _wait_for(lambda: not _status(tmp_path).get("waiting_for_source"), 60, "the wait to end")
            stop.set()
            writer.join(30)
            expected = source_rows(conn, f"{db}.orders")

            def caught_up() -> bool:
                assert proc.poll() is None, log.read_text()[-3000:]
                return replay(read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")) == expected

            _wait_for(caught_up, 90, "the topic to replay to the table")
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(60)
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            writer_conn.close()
    text = log.read_text(errors="replace")
    assert rc == 0, text[-4000:]
    assert seen[0]["for"] == f"the source {source}" and seen[0]["error"], seen
    assert f"waiting     for the source {source} for " in shown, shown
    assert waited > 0
    assert re.search(rf"log: waiting for the source {re.escape(source)} \(.+\); reconnecting in [\d.]+ s, "
                     r"resuming at \S+\.\d{6}:\d+ \(waiting \d+ s so far, up to source.patience, 120 s\)", text), \
        text[-4000:]
    messages = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(messages, 3)
    assert replay(messages) == source_rows(conn, f"{db}.orders")


PASSWORD = "pw-LOG-never-shown-4711"


@pytest.fixture
def cdc_user(mariadb):
    """A user of its own with a password to look for in every output."""
    user = unique("cdc")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'")
    yield user
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER '{user}'@'%'")


@pytest.mark.slow
def test_a_log_outage_longer_than_patience_fails_clearly_and_a_restart_resumes(tmp_path, mariadb, kafka, orders,
                                                                               cdc_user):
    db, conn = orders
    stop = threading.Event()
    writer_conn = mariadb.connect(autocommit=True)
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 13), daemon=True)
    log = tmp_path / "run.log"
    try:
        with BlackholeProxy(mariadb.host, mariadb.port) as proxy:
            task = _log_task(tmp_path, mariadb, kafka, db, proxy, user=cdc_user, password=PASSWORD,
                             connect_timeout=2, read_timeout=2, patience=4)
            source = f"{proxy.host}:{proxy.port}"
            with open(log, "wb") as out:
                proc = subprocess.Popen(obsync_cmd("run", str(task)), stdout=out, stderr=out, cwd=ROOT)
            try:
                writer.start()
                _wait_streaming(tmp_path, proc, log)
                proxy.blackhole()  # until the task gives up
                rc = proc.wait(90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            text = log.read_text(errors="replace")
            assert rc == 2, text[-4000:]
            last = text.strip().splitlines()[-1]
            assert re.fullmatch(
                rf"obsync: error: the log could not be read from the source {re.escape(source)} for \d+ s, longer "
                r"than source.patience \(4 s\) allows; last error: .+\. Reading the log stopped at \S+\.\d{6}:\d+; "
                r"start the task again once the source is back: it resumes there, and nothing is lost", last), \
                text[-4000:]
            assert "Traceback" not in text, text[-4000:]
            status = _status(tmp_path)
            assert status.get("state") == "failed" and source in status.get("error", ""), status
            shown = run_obsync("status", str(task), timeout=30).stdout
            assert shown.splitlines()[0].endswith(": failed"), shown
            proxy.restore()
            stop.set()
            writer.join(30)
            again = run_obsync("run", str(task), "--until-caught-up", timeout=180)
        outputs = [text, shown, again.stdout, again.stderr]
        outputs += [p.read_text(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
        assert not [o for o in outputs if PASSWORD in o]
    finally:
        stop.set()
        writer_conn.close()
    messages = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(messages, 3)  # nothing written twice
    assert replay(messages) == source_rows(conn, f"{db}.orders")  # nothing lost

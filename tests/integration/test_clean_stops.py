"""Stops the way operators stop a task must always be clean; a stop that cannot finish says why. (SIGTERM/SIGINT
at random moments under load: the chaos suite, tests/chaos/test_stops.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.blackhole import BlackholeProxy
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows

ROOT = Path(__file__).resolve().parents[2]


def _status(tmp_path: Path) -> dict:
    try:
        return json.loads((tmp_path / "state" / "status.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


def _wait_for(cond, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        if proc.poll() is not None:
            raise AssertionError(f"obsync exited {proc.returncode} while waiting for {what}:\n"
                                 f"{log.read_text(errors='replace')[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    return got


@pytest.mark.parametrize("reading", ["full sync", "the log"])
def test_a_stop_while_the_source_is_away_is_clean_and_the_next_start_loses_nothing(tmp_path, mariadb, kafka, shop,
                                                                                   reading):
    """The source stops (connections closed, new ones refused) while full sync or the log reads it, with a patience
    of forever: obsync waits for it, and a SIGTERM during that wait stops the task cleanly within the bound (exit 0,
    status stopped, no traceback); the next start, with the source back, writes every row once."""
    db, conn = shop
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_{20000 if reading == 'full sync' else 2000}")
    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                          snapshot={"chunk_size": 2000, "batch_size": 200})
        doc = yaml.safe_load(task.read_text())
        doc["source"].update(connect_timeout=2, read_timeout=2, patience="forever")
        if reading == "full sync":  # only full sync reads through the proxy, slowly enough to be caught at it
            doc["source"].update(sql_host=proxy.host, sql_port=proxy.port)
            doc["limits"] = {"full": {"rps": 2000}}
        else:  # every connection (the log's, the schema's) goes through the proxy
            doc["source"].update(host=proxy.host, port=proxy.port)
        task.write_text(yaml.safe_dump(doc))
        log = tmp_path / "run.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(obsync_cmd("run", str(task), "--stop-timeout", "20"), cwd=ROOT, stdout=out,
                                    stderr=out)
            try:
                if reading == "full sync":
                    _wait_for(lambda: sum(t.get("rows_done", 0) for t in _status(tmp_path).get("full_sync") or [])
                              >= 1000, 90, "full sync to read rows", proc, log)
                else:
                    _wait_for(lambda: _status(tmp_path).get("phase") == "incremental", 90, "incremental sync",
                              proc, log)
                proxy.refuse()
                waiting = _wait_for(lambda: _status(tmp_path).get("waiting_for_source"), 30,
                                    "status.json to show the wait for the source", proc, log)
                assert waiting["for"] == f"the source {proxy.host}:{proxy.port}", waiting
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    text = log.read_text(errors="replace")
    assert rc == 0, text[-4000:]
    assert "stopped; the next run resumes from the last consistent point (SIGTERM)" in text, text[-4000:]
    assert "Traceback" not in text and "panicked" not in text, text[-4000:]
    status = run_obsync("status", str(task)).stdout
    assert status.splitlines()[0].endswith(": stopped"), status
    assert "waiting_for_source" not in _status(tmp_path), _status(tmp_path)  # a stopped task waits for nothing

    with conn.cursor() as cur:  # changes made while it was stopped
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id % 7 = 0")
        cur.execute(f"DELETE FROM {db}.orders WHERE id % 11 = 0")
    doc["source"].update(host=mariadb.host, port=mariadb.port, sql_host=None, sql_port=None)  # the source is back
    task.write_text(yaml.safe_dump(doc))
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")


def _waiting_for_lock(conn, table: str) -> bool:
    """A session of obsync's waits for the lock on `table` (its snapshot read is held up by the source)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE %s AND INFO LIKE %s",
                    ("Waiting for table%lock%", f"SELECT %{table.replace('.', '%')}%"))
        return cur.fetchone()[0] > 0


@pytest.mark.parametrize("stop_timeout", [None, 3])
def test_a_stop_held_up_by_the_source_interrupts_its_request_or_says_why_and_exits_1(tmp_path, mariadb, kafka, shop,
                                                                                    stop_timeout):
    """Full sync's read is held up by the source itself (another session holds `LOCK TABLES ... WRITE`, so the
    snapshot's SELECT waits in the server), with a read timeout of 600 s. With the default --stop-timeout, the
    stop interrupts the request after `STUCK_AFTER` (5) s (shutting the source sessions' sockets) and ends
    cleanly: exit 0, status stopped. With --stop-timeout 3 (shorter than that), the stop gives up after 3 s,
    naming what it waited in, marks the task failed and exits 1. Either way the next run loses nothing. (A
    source that is away, or a silent Kafka, hold no stop up: their waits end on a stop,
    `test_a_stop_while_the_source_is_away_is_clean_and_the_next_start_loses_nothing` and `test_broker_outages`.)

    The key is a string, so each chunk is read by one streaming query sent in the step that reads the chunk's
    first batch (`obsync.connectors.mysql.snapshot.reader`): the query that waits for the lock is one the engine's
    worker is inside. (With an integer key the next page's query is sent ahead, and a stop between two steps
    would not wait for it.)"""
    db, conn = shop
    table = f"{db}.notes"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (k VARCHAR(20) PRIMARY KEY, v INT NOT NULL)")
        cur.execute(f"INSERT INTO {table} SELECT CONCAT('k', LPAD(seq, 6, '0')), seq FROM {db}.seq_1_to_20000")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                      sync={"full": True, "incremental": False}, snapshot={"chunk_size": 2000, "batch_size": 200},
                      limits={"full": {"rps": 2000}})
    doc = yaml.safe_load(task.read_text())
    doc["source"].update(read_timeout=600)
    task.write_text(yaml.safe_dump(doc))
    locker = mariadb.connect(autocommit=True)
    log = tmp_path / "run.log"
    try:
        with open(log, "wb") as out:
            extra = [] if stop_timeout is None else ["--stop-timeout", str(stop_timeout)]
            proc = subprocess.Popen(obsync_cmd("run", str(task), *extra), cwd=ROOT, stdout=out, stderr=out)
            try:
                _wait_for(lambda: sum(t.get("rows_done", 0) for t in _status(tmp_path).get("full_sync") or [])
                          >= 1000, 90, "full sync to read rows", proc, log)
                with locker.cursor() as cur:  # granted once the chunk being read has been sent
                    cur.execute(f"LOCK TABLES {table} WRITE")
                _wait_for(lambda: _waiting_for_lock(conn, table), 60, "the snapshot read to wait for the lock",
                          proc, log)
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                rc = proc.wait(60)
                took = time.monotonic() - signalled
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        locker.close()
    out_text = log.read_text(errors="replace")
    assert "Traceback" not in out_text and "panicked" not in out_text, out_text[-4000:]
    status = run_obsync("status", str(task)).stdout
    if stop_timeout is None:
        assert rc == 0, out_text[-4000:]
        assert took < 30, took  # not the read timeout (600 s), nor the stop's bound (60 s)
        assert "the stop waits after 5 s (engine worker: " in out_text, out_text[-4000:]
        assert "stopped; the next run resumes from the last consistent point (SIGTERM)" in out_text, out_text[-4000:]
        assert status.splitlines()[0].endswith(": stopped"), status
    else:
        assert rc == 1, out_text[-4000:]
        assert "the stop (SIGTERM) did not finish within 3 s; still running: engine worker: " in out_text, \
            out_text[-4000:]
        assert status.splitlines()[0].endswith(": failed") and "did not finish within 3 s" in status, status
    run_obsync("run", str(task))
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_notes")
    check_stream(msgs, 3)
    assert replay(msgs) == {json.dumps([f"k{i:06d}"]): {"k": f"k{i:06d}", "v": str(i)} for i in range(1, 20001)}


@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_interrupting_the_source_sessions_ends_a_request_in_flight_at_once(mariadb, driver):
    """What a stuck stop does (`interrupt_sessions`): a query the server is still answering (SLEEP) on a session
    of either driver ends within a second with a lost connection, not after its read timeout (60 s)."""
    import threading

    from obsync.connectors.mysql.connection import Endpoint, connect, interrupt_sessions
    from obsync.connectors.mysql.fastsql import connect_fast

    ep = Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password)
    conn = connect(ep) if driver == "pymysql" else connect_fast(ep)
    outcome: list[BaseException | None] = []

    def query() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(30)")
                cur.fetchall()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001  # what the reader would see
            outcome.append(e)

    t = threading.Thread(target=query)
    t.start()
    time.sleep(1.0)
    began = time.monotonic()
    assert interrupt_sessions() >= 1
    t.join(10)
    assert not t.is_alive() and time.monotonic() - began < 3
    assert outcome and outcome[0] is not None and "Lost connection" in str(outcome[0]), outcome

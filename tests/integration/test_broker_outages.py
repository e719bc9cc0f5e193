"""A Kafka broker that goes silent while a task writes (its process frozen with SIGSTOP: connections stay open,
nothing is answered): obsync notices within `target.stall_timeout`, says what it waits for in the log, in
`status` and in the metrics, waits as long as `target.patience` allows, and either carries on once the broker
answers (nothing lost, nothing twice) or fails with an error naming the brokers, after which a new start loses
nothing. Each test has a broker of its own, so that freezing it disturbs no other test."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from obsync.app.embedded.process import free_port
from obsync.app.embedded.tansu import TansuBroker
from obsync.connectors.kafka.partitioner import partition_for
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PASSWORD = "src-pw-never-shown-8812"
KAFKA_PASSWORD = "kafka-pw-never-shown-4471"


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu-frozen")) as b:
        yield b
        if b.pid is not None:
            os.kill(b.pid, signal.SIGCONT)  # never leave it frozen for its stop


@pytest.fixture
def user(mariadb) -> Iterator[str]:
    """A source user with a password (the tests look for it in every output)."""
    name = unique("cdc")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{SOURCE_PASSWORD}'")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%'")
    yield name
    with conn.cursor() as cur:
        cur.execute(f"DROP USER '{name}'@'%'")
    conn.close()


def _task(tmp_path: Path, mariadb, broker: TansuBroker, db: str, user: str, **target) -> Path:
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=broker, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 2000, "batch_size": 200})
    doc = yaml.safe_load(task.read_text())
    doc["source"].update(user=user, password=SOURCE_PASSWORD)
    # a credential librdkafka holds (unused on this plaintext broker): it must not appear anywhere either
    doc["target"].update(properties={"sasl.username": "obsync", "sasl.password": KAFKA_PASSWORD}, **target)
    task.write_text(json.dumps(doc))
    return task


def _status(tmp_path: Path) -> dict:
    try:
        return json.loads((tmp_path / "state" / "status.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


def _wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"obsync exited {proc.returncode} while waiting for {what}:\n"
                                 f"{log.read_text()[-4000:] if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(0.2)
    return got


def _broker_waiting_seconds(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    [value] = [s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "obsync_broker_waiting_seconds"]
    return value


def _seed(conn, db: str, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_{rows}")


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SOURCE_PASSWORD not in text and KAFKA_PASSWORD not in text, text[-3000:]


def test_a_silent_broker_is_waited_out_shown_while_it_lasts_and_nothing_is_lost_or_doubled(
        tmp_path, mariadb, broker, shop, user):
    db, conn = shop
    _seed(conn, db, 5000)
    metrics_port = free_port()
    task = _task(tmp_path, mariadb, broker, db, user, stall_timeout=2, patience=300)
    log = tmp_path / "run.log"
    writer_conn = mariadb.connect(autocommit=True)
    stop_writer = threading.Event()
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop_writer, 3), daemon=True)
    seen: list[dict] = []
    with open(log, "wb") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task), "--metrics-port", str(metrics_port),
                                           "--metrics-host", "127.0.0.1"), cwd=ROOT, stdout=out, stderr=out)
        try:
            writer.start()
            _wait_for(lambda: (_status(tmp_path).get("messages_written") or 0) > 0, 90, "the first writes",
                      proc, log)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                def waiting() -> dict | None:
                    w = _status(tmp_path).get("waiting_for_broker")
                    if w:
                        seen.append(w)
                    return w
                _wait_for(waiting, 30, "status.json to show the wait for the broker", proc, log)
                shown = run_obsync("status", str(task), timeout=30).stdout
                metric = _broker_waiting_seconds(metrics_port)
                _wait_for(lambda: waiting() and seen[-1]["seconds"] >= 5, 30, "a longer wait", proc, log)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            _wait_for(lambda: "waiting_for_broker" not in _status(tmp_path), 60, "the wait to end", proc, log)
            after = _broker_waiting_seconds(metrics_port)
            time.sleep(1)  # a few more changes flow after the outage
            stop_writer.set()
            writer.join(30)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(120)
        finally:
            stop_writer.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    assert rc == 0, text[-4000:]
    assert f"waiting for Kafka ({broker.bootstrap_servers}): " in text, text[-4000:]
    assert f"Kafka ({broker.bootstrap_servers}) acknowledges again after " in text, text[-4000:]
    w = seen[0]
    assert w["for"] == f"Kafka {broker.bootstrap_servers}" and w["pending"] > 0 and w["seconds"] >= 2, w
    assert f"waiting     for Kafka {broker.bootstrap_servers} for " in shown, shown
    assert metric > 0 and after == 0
    _no_secret(text, shown, (tmp_path / "state" / "status.json").read_text())

    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(broker.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)  # no position written twice, keys in order
    assert replay(msgs) == source_rows(conn, f"{db}.orders")


def test_a_broker_silent_beyond_patience_fails_the_task_clearly_and_the_next_start_loses_nothing(
        tmp_path, mariadb, broker, shop, user):
    db, conn = shop
    _seed(conn, db, 5000)
    task = _task(tmp_path, mariadb, broker, db, user, stall_timeout=1, patience=5)
    log = tmp_path / "run.log"
    writer_conn = mariadb.connect(autocommit=True)
    stop_writer = threading.Event()
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop_writer, 4), daemon=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stdout=out, stderr=out)
        try:
            writer.start()
            _wait_for(lambda: (_status(tmp_path).get("messages_written") or 0) > 0, 90, "the first writes",
                      proc, log)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                rc = proc.wait(60)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
        finally:
            stop_writer.set()
            writer.join(30)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    assert rc == 2, text[-4000:]  # an obsync error
    last = text.strip().splitlines()[-1]
    assert (f"Kafka ({broker.bootstrap_servers}) acknowledged nothing for " in last
            and "target.patience: 5 s" in last and "start the task again" in last
            and "nothing is lost" in last), text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    status = run_obsync("status", str(task)).stdout
    assert status.splitlines()[0].endswith(": failed"), status
    assert f"Kafka ({broker.bootstrap_servers}) acknowledged nothing" in status, status
    assert "waiting     for Kafka" not in status, status
    _no_secret(text, status, (tmp_path / "state" / "status.json").read_text(),
               run_obsync("status", str(task), "--json").stdout)

    again = run_obsync("run", str(task), "--until-caught-up")
    _no_secret(again.stdout, again.stderr)
    msgs = read_topic(broker.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")


def test_a_stop_while_the_broker_is_silent_is_clean_and_the_next_start_loses_nothing(
        tmp_path, mariadb, broker, shop, user):
    """SIGTERM while the sink waits for a frozen broker (with a patience far longer than the test): the sink stops
    waiting, the task stops cleanly within the bound (exit 0, status stopped), and the next start, with the
    broker back, writes every change once."""
    db, conn = shop
    _seed(conn, db, 5000)
    task = _task(tmp_path, mariadb, broker, db, user, stall_timeout=1, patience="forever")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task), "--stop-timeout", "30"), cwd=ROOT, stdout=out,
                                stderr=out)
        try:
            _wait_for(lambda: (_status(tmp_path).get("messages_written") or 0) > 0, 90, "the first writes",
                      proc, log)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                with conn.cursor() as cur:  # changes the sink must wait for (full sync may be over already)
                    cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id % 5 = 0")
                _wait_for(lambda: _status(tmp_path).get("waiting_for_broker"), 30, "the wait for the broker",
                          proc, log)
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(60)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    assert rc == 0, text[-4000:]
    assert "stopped; the next run resumes from the last consistent point" in text, text[-4000:]
    assert "Traceback" not in text and "panicked" not in text, text[-4000:]
    status = run_obsync("status", str(task)).stdout
    assert status.splitlines()[0].endswith(": stopped"), status
    _no_secret(text, status)

    with conn.cursor() as cur:  # changes made while it was stopped
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id % 7 = 0")
        cur.execute(f"DELETE FROM {db}.orders WHERE id % 11 = 0")
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(broker.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")


def test_a_broker_silent_when_the_sink_first_meets_a_partition_is_shown_and_bounded_by_the_patience(
        tmp_path, mariadb, broker, shop, user):
    """The sink meets a partition for the first time (the first change whose key hashes there) while the broker is
    frozen: before writing, it reads the partition to learn what an earlier run wrote, and that read waits as
    the writes do: after target.stall_timeout it is logged and shown in status (which partition it reads), after
    target.patience the task fails naming the brokers, the partition and what to do; the next start, with the
    broker back, loses nothing."""
    db, conn = shop
    first = json.dumps([1]).encode()
    met = partition_for(first, 3)
    later = [i for i in range(2, 100) if partition_for(json.dumps([i]).encode(), 3) != met][:5]
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders VALUES (1, 'first', 1, 9.99, 'seed')")
    task = _task(tmp_path, mariadb, broker, db, user, stall_timeout=1, patience=6)
    log = tmp_path / "run.log"
    seen: list[dict] = []
    with open(log, "wb") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stdout=out, stderr=out)
        try:
            _wait_for(lambda: _status(tmp_path).get("phase") == "incremental"
                      and (_status(tmp_path).get("messages_written") or 0) > 0, 90, "incremental sync", proc, log)
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                with conn.cursor() as cur:  # changes to partitions the sink has not met yet
                    cur.executemany(f"INSERT INTO {db}.orders VALUES (%s, 'later', 1, 9.99, NULL)",
                                    [(i,) for i in later])

                def reading() -> dict | None:
                    w = _status(tmp_path).get("waiting_for_broker")
                    if w and w.get("reading"):
                        seen.append(w)
                        return w
                    return None

                _wait_for(reading, 30, "status.json to show the read waiting for the broker", proc, log)
                shown = run_obsync("status", str(task), timeout=30).stdout
                rc = proc.wait(60)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    topic = f"Topic_{db}_orders"
    w = seen[0]
    assert w["for"] == f"Kafka {broker.bootstrap_servers}" and re.fullmatch(rf"{topic}\[[0-2]\]", w["reading"]), w
    assert w["reading"] != f"{topic}[{met}]" and w["pending"] == 0, w
    assert f"waiting     for Kafka {broker.bootstrap_servers} for " in shown, shown
    assert f"(reading {w['reading']} to learn what was written)" in shown, shown
    assert re.search(rf"waiting for Kafka \({re.escape(broker.bootstrap_servers)}\): nothing read from "
                     rf"{re.escape(w['reading'])} \(from offset 0, to learn what an earlier run wrote\) for \d+ s; "
                     r"last error: .+; retrying until target.patience \(6 s\) runs out", text), text[-4000:]
    assert rc == 2, text[-4000:]  # an obsync error
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"obsync: error: Kafka \({re.escape(broker.bootstrap_servers)}\) sent nothing for \d+ s while the sink read "
        rf"{topic}\[[0-2]\] from offset 0 to its end to learn what an earlier run wrote \(target.patience: 6 s\); "
        r"last error from the client: .+\. Make the brokers reachable and start the task again: it resumes from the "
        r"last saved point, nothing is lost or written twice", last), text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    status = run_obsync("status", str(task)).stdout
    assert status.splitlines()[0].endswith(": failed") and "waiting     for Kafka" not in status, status
    _no_secret(text, shown, status, (tmp_path / "state" / "status.json").read_text())

    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(broker.bootstrap_servers, topic)
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")

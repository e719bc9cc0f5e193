"""`obsync run --metrics-port`: the Prometheus endpoint of a running task, scraped over HTTP (MariaDB source)."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from obsync.app.embedded.process import free_port
from obsync.core.positions import LogPosition, binlog_file_number, position_from_header
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, unique, write_task

ROOT = Path(__file__).resolve().parents[2]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels without `task`) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset((k, v) for k, v in s.labels.items() if k != "task"))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for(port: int, proc: subprocess.Popen, log: Path, cond, what: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    samples: dict = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"obsync exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        try:
            samples = scrape(port)
        except OSError:
            samples = {}
        if samples and cond(samples):
            return samples
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last scrape: "
                         f"{ {k: v for k, v in samples.items() if 'obsync_' in k[0]} }\n{log.read_text()[-3000:]}")


def master_position(conn) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return binlog_file_number(file), int(pos)


@pytest.fixture
def shop(mariadb):
    db = unique("mx")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.orders (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL)")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL)")
    yield db, conn
    conn.close()


def test_metrics_endpoint_counts_a_running_task(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    orders, items = f"{db}.orders", f"{db}.items"
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {orders} VALUES (%s, %s)", [(i, f"o{i}") for i in range(1, 501)])
        cur.executemany(f"INSERT INTO {items} VALUES (%s, %s)", [(i, f"i{i}") for i in range(1, 121)])
    # One topic for both tables' rows would make per-table written counts ambiguous; keep them apart and
    # put everything in one partition, so the whole stream's order is the offset order.
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[orders, items],
                      snapshot={"chunk_size": 150, "batch_size": 40}, topics={"partitions": 1,
                                                                             "replication_factor": 1})
    port = free_port()
    log = tmp_path / "obsync.log"
    proc = subprocess.Popen(obsync_cmd("run", str(task), "--metrics-port", str(port), "--metrics-host",
                                       "127.0.0.1"), stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=ROOT)
    try:
        # Full sync: rows done per table equal the table's rows, every chunk done, then incremental sync.
        s = wait_for(port, proc, log, lambda s: value(s, "obsync_phase", obsync_phase="incremental") == 1,
                     "incremental sync")
        assert value(s, "obsync_up") == 1 and value(s, "obsync_task_failed") == 0
        assert value(s, "obsync_full_sync_rows_done", table=orders) == 500
        assert value(s, "obsync_full_sync_rows_done", table=items) == 120
        assert value(s, "obsync_full_sync_rows_estimated", table=orders) == 500
        assert value(s, "obsync_full_sync_chunks_done", table=orders) == 4  # 150+150+150+50
        assert value(s, "obsync_full_sync_chunks_total", table=orders) == 4
        assert value(s, "obsync_full_sync_chunks_done", table=items) == 1
        assert value(s, "obsync_rows_read_total", table=orders, source="snapshot") == 500
        assert value(s, "obsync_rows_read_total", table=items, source="snapshot") == 120

        # Incremental sync: 70 + 30 inserts, 10 updates.
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {orders} VALUES (%s, %s)", [(i, "new") for i in range(1001, 1071)])
            cur.executemany(f"INSERT INTO {items} VALUES (%s, %s)", [(i, "new") for i in range(1001, 1031)])
            cur.execute(f"UPDATE {orders} SET note = 'upd' WHERE id <= 10")
        master = master_position(conn)

        def settled(s: dict) -> bool:
            return (value(s, "obsync_rows_read_total", table=orders, source="log") == 80
                    and value(s, "obsync_rows_read_total", table=items, source="log") == 30
                    and value(s, "obsync_messages_written_total", topic=f"Topic_{db}_orders",
                              table=orders) == 580
                    and value(s, "obsync_messages_written_total", topic=f"Topic_{db}_items", table=items) == 150
                    and (value(s, "obsync_log_position_file_number", stage="read"),
                         value(s, "obsync_log_position_offset", stage="read")) == master)

        s = wait_for(port, proc, log, settled, "the changes to be counted")
        for t in (orders, items):
            topic = f"Topic_{db}_{t.split('.')[1]}"
            msgs = read_topic(kafka.bootstrap_servers, topic)
            assert value(s, "obsync_messages_written_total", topic=topic, table=t) == len(msgs)
            assert value(s, "obsync_bytes_written_total", topic=topic, table=t) == sum(len(m.value) for m in msgs)
        # the written position is the position of the last change in Kafka
        last = max((position_from_header(m.headers["obsync.pos"])
                    for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
                    + read_topic(kafka.bootstrap_servers, f"Topic_{db}_items")
                    if m.headers["obsync.pos"].startswith(b'["log"')), key=lambda p: p.sort_key)
        assert isinstance(last, LogPosition)
        assert value(s, "obsync_log_position_file_number", stage="written") == binlog_file_number(last.file)
        assert value(s, "obsync_log_position_offset", stage="written") == last.pos
        assert last.pos <= master[1]
        assert value(s, "obsync_log_bytes_read_total") > 0
        # lag: caught up, so small; the commit->ack histogram saw the log batches
        lag = value(s, "obsync_lag_seconds")
        assert lag is not None and 0 <= lag < 5, lag
        assert value(s, "obsync_commit_to_ack_seconds_count") >= 1
        assert value(s, "obsync_messages_skipped_total") in (None, 0)
        assert value(s, "obsync_last_write_timestamp_seconds") > time.time() - 60
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"metrics at http://127.0.0.1:{port}/metrics" in text
    assert "full sync done: 620 rows of 2 tables" in text


def test_metrics_port_in_use_is_a_clear_error(tmp_path, mariadb, kafka, shop):
    import socket

    db, _ = shop
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(obsync_cmd("run", str(task), "--metrics-port", str(port), "--metrics-host",
                                         "127.0.0.1", "--until-caught-up"),
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"metrics port {port} on 127.0.0.1: cannot listen" in proc.stderr

"""Live changes to a running task (`obsync run` + SIGHUP): a table added under write load is backfilled inside
the log partition while the other tables keep streaming; removing a table, changing its columns, and a crash
in the middle of a backfill.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from tests.helpers.kafka import partition_count, read_topic
from tests.helpers.tasks import obsync_cmd, unique, write_task

ROOT = Path(__file__).resolve().parents[2]
B_ROWS = 20_000


def read_all(bootstrap: str, topic: str, timeout: float = 60) -> list[dict]:
    """Every message of a topic with its partition, offset, timestamp (ms) and headers."""
    return [{"partition": m.partition, "offset": m.offset, "ts": m.timestamp, "key": m.key,
             "value": json.loads(m.value) if m.value is not None else None,
             "pos": json.loads(m.headers["obsync.pos"]), "seq": int(m.headers["obsync.seq"])}
            for m in read_topic(bootstrap, topic, timeout)]


def message_count(bootstrap: str, topic: str) -> int:
    """Messages in a topic (high watermarks; nothing is ever deleted from the test topics)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partition_count(bootstrap, topic)))
    finally:
        c.close()


def topic_exists(bootstrap: str, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient

    return topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def replay(msgs: list[dict]) -> dict[int, dict]:
    """Replay per key, partition by partition in offset order (every key lives in one partition)."""
    state: dict[int, dict] = {}
    for m in sorted(msgs, key=lambda m: (m["partition"], m["offset"])):
        v = m["value"]
        if v is None:
            continue
        if v["recordType"] in ("INSERT", "UPDATE", "ROW"):
            state[int(v["postStruct"]["id"])] = v["postStruct"]
        elif v["recordType"] == "DELETE":
            state.pop(int(v["prevStruct"]["id"]), None)
    return state


def table_rows(conn, table: str, columns: str = "id, v, n") -> dict[int, dict]:
    names = [c.strip() for c in columns.split(",")]
    with conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM {table}")
        return {int(r[0]): {k: None if x is None else str(x) for k, x in zip(names, r, strict=True)}
                for r in cur.fetchall()}


def check_topic(msgs: list[dict]) -> None:
    """No (position, seq) twice; each key in one partition."""
    dup = [k for k, n in Counter((json.dumps(m["pos"]), m["seq"]) for m in msgs).items() if n > 1]
    assert not dup, f"{len(dup)} duplicate positions, e.g. {dup[:3]}"
    parts = defaultdict(set)
    for m in msgs:
        parts[m["key"]].add(m["partition"])
    assert all(len(p) == 1 for p in parts.values())


class Writer(threading.Thread):
    """Inserts, updates and deletes rows of the given tables until stopped, one statement per transaction."""

    def __init__(self, server, tables: list[str], start_id: int = 1_000_000) -> None:
        super().__init__(daemon=True)
        self.conn = server.connect(autocommit=True)
        self.tables = tables
        self.stop = threading.Event()
        self.next_id = start_id
        self.error: BaseException | None = None
        self.rng = random.Random(7)
        self.count = 0

    def run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                while not self.stop.is_set():
                    t = self.rng.choice(self.tables)
                    op = self.rng.random()
                    if op < 0.4:
                        self.next_id += 1
                        cur.execute(f"INSERT INTO {t} VALUES (%s, %s, %s, 'w')", (self.next_id, "w", self.count))
                    elif op < 0.85:
                        k = self.rng.randint(1, B_ROWS)
                        cur.execute(f"UPDATE {t} SET v = %s, n = n + 1 WHERE id = %s", (f"u{self.count}", k))
                    else:
                        k = self.rng.randint(1, B_ROWS)
                        cur.execute(f"DELETE FROM {t} WHERE id = %s", (k,))
                    self.count += 1
                    time.sleep(0.002)
        except BaseException as e:  # noqa: BLE001 - kept for the test to re-raise
            self.error = e

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
        self.conn.close()
        assert self.error is None, self.error


@pytest.fixture
def live_db(mariadb):
    db = unique("live")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for t in ("a", "b"):
            cur.execute(f"CREATE TABLE {db}.{t} (id INT PRIMARY KEY, v VARCHAR(32), n INT, note VARCHAR(8))")
        cur.executemany(f"INSERT INTO {db}.a VALUES (%s, %s, %s, 'x')", [(i, f"a{i}", 0) for i in range(1, 501)])
        for lo in range(1, B_ROWS + 1, 5000):
            cur.executemany(f"INSERT INTO {db}.b VALUES (%s, %s, %s, 'x')",
                            [(i, f"b{i}", 0) for i in range(lo, min(lo + 5000, B_ROWS + 1))])
    yield db, conn
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


class Running:
    """`obsync run` as a subprocess, its log in a file."""

    def __init__(self, task_file: Path) -> None:
        self.log = task_file.parent / f"run-{uuid.uuid4().hex[:6]}.log"
        self.f = open(self.log, "w")
        self.proc = subprocess.Popen(obsync_cmd("run", str(task_file)), stderr=self.f, stdout=self.f, cwd=ROOT,
                                     text=True)

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, needle: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            assert self.proc.poll() is None, self.text()[-5000:]
            assert time.monotonic() < deadline, f"no {needle!r} in the log:\n{self.text()[-5000:]}"
            time.sleep(0.2)

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait(60)
        self.f.close()
        if not kill:
            assert self.proc.returncode == 0, self.text()[-5000:]


def edit_objects(task_file: Path, objects: list[dict]) -> None:
    data = yaml.safe_load(task_file.read_text())
    data["objects"] = objects
    task_file.write_text(yaml.safe_dump(data))


def wait_until(pred, timeout: float = 120, what: str = "", interval: float = 1) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last is True:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def converged(kafka, conn, db: str, tables: list[str]):
    def check():
        for t in tables:
            topic = f"Topic_{db}_{t}"
            if not topic_exists(kafka.bootstrap_servers, topic):
                return f"no topic {topic}"
            got = replay(read_all(kafka.bootstrap_servers, topic))
            want = table_rows(conn, f"{db}.{t}", "id, v, n, note")
            if got != want:
                diff = sorted(set(got.items()) ^ set(want.items()) if False else
                              [k for k in set(got) | set(want) if got.get(k) != want.get(k)])
                return f"{t}: {len(diff)} keys differ, e.g. {[(k, got.get(k), want.get(k)) for k in diff[:3]]}"
        return True
    return check


def test_a_table_added_under_write_load_is_backfilled_while_the_others_stream(tmp_path, mariadb, kafka, live_db):
    db, conn = live_db
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.a"],
                           snapshot={"batch_size": 500})
    run = Running(task_file)
    writer = Writer(mariadb, [f"{db}.a", f"{db}.b"])
    try:
        run.wait_log("step: ", timeout=60)
        wait_until(lambda: topic_exists(kafka.bootstrap_servers, f"Topic_{db}_a") and
                   len(read_all(kafka.bootstrap_servers, f"Topic_{db}_a")) >= 500, 60, "A's full sync")
        writer.start()
        time.sleep(2)
        edit_objects(task_file, [{"match": f"{db}.a"}, {"match": f"{db}.b"}])
        run.hup()
        run.wait_log("reloaded", timeout=60)
        run.wait_log("rows; the table streams", timeout=180)
        time.sleep(2)
        writer.finish()
        wait_until(converged(kafka, conn, db, ["a", "b"]), 120, "A and B replayed equal to the tables")
        assert run.proc.poll() is None
    finally:
        writer.stop.set()
        run.stop()
    assert "Traceback" not in run.text()
    b = read_all(kafka.bootstrap_servers, f"Topic_{db}_b")
    a = read_all(kafka.bootstrap_servers, f"Topic_{db}_a")
    check_topic(b)
    check_topic(a)
    backfill = [m for m in b if m["pos"][0] == "snap" and m["pos"][1].startswith("backfill-")]
    assert len(backfill) >= B_ROWS * 0.8  # the rows still there when their page was read
    assert any(m["pos"][0] == "log" for m in b)  # B's changes followed
    # per key, in each partition: log positions increase
    last: dict = {}
    for m in sorted(b, key=lambda m: (m["partition"], m["offset"])):
        if m["pos"][0] == "log":
            p = (int(m["pos"][1].rsplit(".", 1)[1]), m["pos"][2], m["pos"][3], m["seq"])
            assert last.get(m["key"], (-1,)) < p
            last[m["key"]] = p
    # A kept streaming during B's backfill
    t0, t1 = min(m["ts"] for m in backfill), max(m["ts"] for m in backfill)
    assert t1 > t0
    during = [m for m in a if t0 <= m["ts"] <= t1 and m["pos"][0] == "log"]
    assert during, (t0, t1)


def test_removing_a_table_stops_its_messages_and_a_column_change_applies_to_later_changes(tmp_path, mariadb,
                                                                                          kafka, live_db):
    db, conn = live_db
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.a", f"{db}.b"],
                           sync={"full": False, "incremental": True})
    run = Running(task_file)
    try:
        run.wait_log("step: ", timeout=60)
        time.sleep(3)
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {db}.a SET v = 'before' WHERE id = 1")
            cur.execute(f"UPDATE {db}.b SET v = 'before' WHERE id = 1")
        wait_until(lambda: topic_exists(kafka.bootstrap_servers, f"Topic_{db}_b") and
                   len(read_all(kafka.bootstrap_servers, f"Topic_{db}_b")) == 1, 60, "B's first change")
        # remove b, narrow a to (id, v)
        edit_objects(task_file, [{"match": f"{db}.a", "columns": ["v"]}])
        run.hup()
        run.wait_log("reloaded", timeout=60)
        time.sleep(2)  # the reader takes it at its next transaction boundary (heartbeats: every second)
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {db}.b SET v = 'after' WHERE id = 1")
            cur.execute(f"UPDATE {db}.a SET v = 'after' WHERE id = 2")
        wait_until(lambda: len(read_all(kafka.bootstrap_servers, f"Topic_{db}_a")) == 2, 60, "A's second change")
        # an invalid file is refused and the task keeps running with its settings
        edit_objects(task_file, [{"match": f"{db}.a", "columns": ["nope"]}])
        run.hup()
        run.wait_log("not applied", timeout=60)
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {db}.a SET v = 'later' WHERE id = 3")
        wait_until(lambda: len(read_all(kafka.bootstrap_servers, f"Topic_{db}_a")) == 3, 60, "A's third change")
    finally:
        run.stop()
    b = read_all(kafka.bootstrap_servers, f"Topic_{db}_b")
    assert [m["value"]["postStruct"]["v"] for m in b] == ["before"]
    a = sorted(read_all(kafka.bootstrap_servers, f"Topic_{db}_a"), key=lambda m: m["pos"])
    assert set(a[0]["value"]["postStruct"]) == {"id", "v", "n", "note"}
    assert a[1]["value"]["postStruct"] == {"id": "2", "v": "after"}
    assert a[2]["value"]["postStruct"] == {"id": "3", "v": "later"}


def test_a_crash_during_a_backfill_resumes_it_with_no_loss(tmp_path, mariadb, kafka, live_db):
    db, conn = live_db
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.a"],
                           snapshot={"batch_size": 200})
    run = Running(task_file)
    writer = Writer(mariadb, [f"{db}.b"])
    try:
        run.wait_log("step: ", timeout=60)
        wait_until(lambda: topic_exists(kafka.bootstrap_servers, f"Topic_{db}_a") and
                   len(read_all(kafka.bootstrap_servers, f"Topic_{db}_a")) >= 500, 60, "A's full sync")
        writer.start()
        edit_objects(task_file, [{"match": f"{db}.a"}, {"match": f"{db}.b"}])
        run.hup()
        run.wait_log("reloaded", timeout=60)
        wait_until(lambda: topic_exists(kafka.bootstrap_servers, f"Topic_{db}_b") and
                   message_count(kafka.bootstrap_servers, f"Topic_{db}_b") > 1000, 120, "part of B's backfill",
                   interval=0.1)
        run.stop(kill=True)
        assert "rows; the table streams" not in run.text()  # killed in the middle of the backfill
        run = Running(task_file)  # the edited file: accepted, the backfill resumes
        run.wait_log("rows; the table streams", timeout=180)
        writer.finish()
        wait_until(converged(kafka, conn, db, ["a", "b"]), 120, "A and B replayed equal to the tables")
    finally:
        writer.stop.set()
        run.stop()
    b = read_all(kafka.bootstrap_servers, f"Topic_{db}_b")
    check_topic(b)
    assert "Traceback" not in run.text()

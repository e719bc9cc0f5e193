"""A task run as a Bytewax cluster of 2 processes, each with a state directory of its own (no shared disk):
MariaDB source, tansu broker, `obsync run -i K -a ...` as two hosts would run it.

What is shared lives in the task's control topic (named obsync.control.<task name>); each state directory holds
only its process's recovery partition and status. The kill loop (`chaos` marker) kills one process at random moments.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from obsync.app.local_cluster import free_ports
from obsync.core.positions import position_from_header
from tests.helpers.cluster import Cluster, control_records
from tests.helpers.kafka import read_partition, read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task
from tests.helpers.workload import TABLE, check_stream, replay, source_rows, write_concurrently

ROOT = Path(__file__).resolve().parents[2]


def seed(conn, db: str, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_{rows}")


def change_some(conn, db: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id <= 10")
        cur.execute(f"UPDATE {db}.orders SET id = 100000 WHERE id = 11")  # a key change
        cur.execute(f"DELETE FROM {db}.orders WHERE id = 12")
        cur.execute(f"INSERT INTO {db}.orders VALUES (200000, 'new', 1, NULL, 'x')")
        cur.execute(f"ALTER TABLE {db}.orders ADD COLUMN extra INT NULL")  # the schema history must follow
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id BETWEEN 20 AND 25")


def assert_topic_equals_table(kafka, conn, db: str) -> list:
    """The topic replayed per key equals the table (its original columns; `change_some` adds `extra`, NULL)."""
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)  # every key in its partition, no position written twice, positions rising per key
    replayed = replay(msgs)
    for row in replayed.values():
        assert row.pop("extra", None) is None
    assert replayed == source_rows(conn, f"{db}.orders")
    return msgs


def test_two_processes_with_their_own_state_dirs_sync_full_and_incremental(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    seed(conn, db, 3000)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 250, "batch_size": 100})
    cluster = Cluster(tmp_path, task)
    cluster.run_until_caught_up()
    msgs = assert_topic_equals_table(kafka, conn, db)
    assert len(msgs) == 3000

    # Full-sync chunks were read by both processes, both wrote to Kafka, one read the log.
    statuses = [cluster.status(k) for k in range(2)]
    rows_read = [sum(t["rows_done"] for t in s["full_sync"]) for s in statuses]
    assert sum(rows_read) == 3000 and min(rows_read) > 0, rows_read
    assert min(s["messages_written"] for s in statuses) > 0
    assert sum(1 for s in statuses if s["log_position_read"] is not None) == 1

    # Nothing shared is a file: each state directory holds its process's recovery partition only.
    name = __import__("yaml").safe_load(task.read_text())["name"]
    for k in range(2):
        d = cluster.state_dir(k)
        assert not (d / "start.json").exists() and not (d / "delivered").exists()
        assert not (d / "schema_history").exists()
        assert sorted(p.name for p in (d / "recovery").glob("*.sqlite3")) == [f"part-{k}.sqlite3"]
        assert json.loads((d / "task.json").read_text())["id"] == json.loads(
            (cluster.state_dir(0) / "task.json").read_text())["id"]
    control = control_records(kafka.bootstrap_servers, name)
    assert {"identity", "start", "recovery", "recovery/0", "recovery/1"} <= set(control)
    assert sorted(k for k in control if k.startswith("delivered/")) == [f"delivered/lane{i:03d}" for i in range(16)]
    assert any(k.startswith("schema/") for k in control)

    # Changes (a key change, a delete, a DDL) while the cluster is stopped, then both processes again.
    change_some(conn, db)
    cluster.run_until_caught_up()
    msgs = assert_topic_equals_table(kafka, conn, db)
    kinds = [json.loads(m.value)["recordType"] for m in msgs]
    assert kinds.count("DELETE") == 2 and kinds.count("INSERT") == 2 and kinds.count("UPDATE") == 16
    after_ddl = [json.loads(m.value)["postStruct"] for m in msgs if m.key in (b"[20]", b"[25]")][-1]
    assert "extra" in after_ddl  # changes after the DDL are read with the schema history kept in Kafka
    # The restart found every lane's full sync recorded and wrote none of those records again.
    marks = [m.key for m in read_partition(kafka.bootstrap_servers, f"obsync.control.{name}", 0)
             if m.key.startswith(b"delivered/")]
    assert sorted(marks) == [b"delivered/lane%03d" % i for i in range(16)]


def test_a_process_whose_state_dir_was_emptied_refuses_then_a_recovery_reset_loses_and_duplicates_nothing(
        tmp_path, mariadb, kafka, shop):
    db, conn = shop
    seed(conn, db, 1500)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 300, "batch_size": 100})
    cluster = Cluster(tmp_path, task)
    cluster.run_until_caught_up()
    change_some(conn, db)

    # Process 1 comes back on a new, empty volume: it refuses, naming what to do. (Process 0 waits for its peer
    # to connect, as Bytewax does; the operator stops it.)
    shutil.rmtree(cluster.state_dir(1))
    cluster.start("--until-caught-up")
    assert cluster.procs[1].wait(120) == 2, cluster.tails()
    text = cluster.log(1).read_text()
    assert "recovery partition is missing from state directory" in text and "obsync reset-recovery" in text
    cluster.procs[0].send_signal(signal.SIGTERM)
    assert cluster.procs[0].wait(120) == 0, cluster.tails()

    out = run_obsync("reset-recovery", str(task)).stdout
    assert "recovery generation 2" in out
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 100 WHERE id BETWEEN 30 AND 40")
    cluster.run_until_caught_up()
    msgs = assert_topic_equals_table(kafka, conn, db)
    assert sum(1 for m in msgs if json.loads(m.value)["recordType"] == "ROW") == 1500  # full sync not read again
    assert "found in Kafka; they will not be written again" in cluster.log(0).read_text() + cluster.log(1).read_text()


def test_obsync_run_processes_runs_a_cluster_on_one_host(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    seed(conn, db, 800)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 100, "batch_size": 50})
    run_obsync("run", str(task), "--processes", "2", "--until-caught-up")
    change_some(conn, db)
    # SIGTERM to the command stops every process cleanly (exit 0); the next run resumes.
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task), "--processes", "2"), stdout=out, stderr=out, cwd=ROOT)
    deadline = time.monotonic() + 120
    while log.read_text(errors="replace").count("resuming from recovery partition") < 2:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0, log.read_text()[-3000:]
    run_obsync("run", str(task), "--processes", "2", "--until-caught-up")
    assert_topic_equals_table(kafka, conn, db)
    state = tmp_path / "state"
    for k in range(2):
        assert [p.name for p in (state / f"process-{k}" / "recovery").glob("*.sqlite3")] == [f"part-{k}.sqlite3"]
    assert not (state / "start.json").exists()


def test_bytewax_run_processes_with_their_own_state_dirs(tmp_path, mariadb, kafka, shop):
    """`python -m bytewax.run obsync.flows.sync:flow -i K -a ... -r <state dir>/recovery`, as the Bytewax docs run
    a cluster: the flow places each process's recovery partition and shares the rest through Kafka."""
    db, conn = shop
    seed(conn, db, 600)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 100, "batch_size": 50})
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))

    def run_both() -> None:
        procs = []
        for k in range(2):
            state = tmp_path / f"host-{k}"
            env = {**os.environ, "OBSYNC_TASK": str(task), "OBSYNC_STATE_DIR": str(state),
                   "OBSYNC_UNTIL_CAUGHT_UP": "1"}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bytewax.run", "obsync.flows.sync:flow", "-i", str(k), "-a", addresses,
                 "-r", str(state / "recovery"), "-s", "1", "-b", "0"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"bytewax-{k}.log", "ab")))
        for k, p in enumerate(procs):
            assert p.wait(300) == 0, (tmp_path / f"bytewax-{k}.log").read_text()[-4000:]

    run_both()
    change_some(conn, db)
    run_both()
    assert_topic_equals_table(kafka, conn, db)
    for k in range(2):
        assert [p.name for p in (tmp_path / f"host-{k}" / "recovery").glob("*.sqlite3")] == [f"part-{k}.sqlite3"]


@pytest.mark.chaos
def test_sigkill_of_one_process_at_random_moments_loses_and_duplicates_nothing(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    seed(conn, db, 60000)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 5000, "batch_size": 500})
    cluster = Cluster(tmp_path, task)
    writer_conn = mariadb.connect(autocommit=True)
    stop = threading.Event()
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 7), daemon=True)
    writer.start()
    rnd = random.Random(11)
    aborted = 0
    try:
        for run in range(5):
            cluster.start()
            cluster.wait_until_logged("recovery partition")  # both are entering the engine
            time.sleep(rnd.uniform(3.0, 5.0) if run == 0 else rnd.uniform(2.0, 9.0))
            assert all(p.poll() is None for p in cluster.procs), cluster.tails()
            victim = rnd.randrange(2)
            cluster.procs[victim].send_signal(signal.SIGKILL)
            other = cluster.procs[1 - victim]
            try:
                other.wait(60)  # Bytewax stops a process whose peer is gone...
                aborted += 1
            except subprocess.TimeoutExpired:  # ...once they are connected: before that it waits for the peer
                other.kill()
            cluster.kill_all()
    finally:
        stop.set()
        writer.join(30)
    assert aborted >= 3, cluster.tails()
    cluster.run_until_caught_up()
    assert_topic_equals_table(kafka, conn, db)
    logs = "".join(cluster.log(k).read_text(errors="replace") for k in range(2))
    assert "found in Kafka; they will not be written again" in logs  # kills did land between write and snapshot


def change_many(conn, db: str) -> int:
    """Incremental changes over many keys: updates, inserts, 61 key changes, deletes, changes of moved keys; the
    row changes that are not key changes (those the lanes' workers encode)."""
    spread = 0
    with conn.cursor() as cur:
        for r in range(3):
            spread += cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id % 3 = {r}")
        spread += cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('new', seq), seq, NULL, 'n' "
                              f"FROM {db}.seq_1001_to_3000")
        assert cur.execute(f"UPDATE {db}.orders SET id = id + 10000 WHERE id BETWEEN 100 AND 160") == 61
        spread += cur.execute(f"DELETE FROM {db}.orders WHERE id % 7 = 0")
        spread += cur.execute(f"UPDATE {db}.orders SET name = CONCAT(name, '+') WHERE id > 10000 OR id % 5 = 1")
        spread += cur.execute(f"UPDATE {db}.orders SET qty = qty * 2 WHERE id BETWEEN 1000 AND 1200")
    assert spread > 3000
    return spread


def assert_landed_exactly(kafka, conn, db: str) -> None:
    msgs = assert_topic_equals_table(kafka, conn, db)  # replay per key = table, one partition per key, order, once
    written = [(m.partition, m.headers["obsync.pos"], m.headers["obsync.seq"]) for m in msgs]
    assert len(written) == len(set(written))  # no (position, seq) twice


def test_two_processes_one_reads_the_log_and_the_lanes_workers_encode_and_produce_it(tmp_path, mariadb, kafka, shop):
    """One process reads the log; its changes are encoded by the process writing their partition's lane, which
    may be either (each process's status counts them per worker and lane), and every key still lands exactly: in
    its partition, in order, once."""
    db, conn = shop
    seed(conn, db, 600)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 200, "batch_size": 100})
    cluster = Cluster(tmp_path, task)
    cluster.run_until_caught_up()
    spread = change_many(conn, db)
    cluster.run_until_caught_up()
    assert_landed_exactly(kafka, conn, db)

    # one process read the log (and encoded only its key changes); the lanes' workers encoded the rest, each
    # lane (the topic's 3 partitions') by one process
    statuses = [cluster.status(k) for k in range(2)]
    assert sorted(s["log_position_read"] is not None for s in statuses) == [False, True], statuses
    encoded = [s.get("log_changes_encoded", {"total": 0, "lanes": {}}) for s in statuses]
    assert sum(e["total"] for e in encoded) == spread, (encoded, spread)
    lanes = [set(e["lanes"]) for e in encoded]
    assert len(lanes[0] | lanes[1]) == 3 and not lanes[0] & lanes[1], encoded
    assert sum(s["messages_written"] for s in statuses) > spread
    # the second run had only the log to read: its reader wrote 1 of the 3 partitions, the other process 2
    # (`obsync.steps.lane_placement`), whatever the lanes' names
    reader = [s["log_position_read"] is not None for s in statuses].index(True)
    assert (len(lanes[reader]), len(lanes[1 - reader])) == (1, 2), (reader, encoded)


def test_a_run_doing_its_full_sync_then_following_the_log_leaves_the_reader_the_smaller_share(tmp_path, mariadb,
                                                                                               kafka):
    """A task left running does its full sync and then follows the log in the same run, so the lanes placed at its
    start stay for the log: the process reading it writes 1 of the topic's 3 partitions, not 2. The database is
    named so that the topic's lanes, split evenly by name, would have given that process 2."""
    db = next(d for d in (unique("shop") for _ in range(64))
              if zlib.crc32(f"Topic_{d}_orders".encode()) % 16 % 2 == 0)  # lanes s, s+1, s+2: process 0 gets s, s+2
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(TABLE.format(t=f"{db}.orders"))
    seed(conn, db, 600)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 200, "batch_size": 100})
    cluster = Cluster(tmp_path, task)
    cluster.start()
    try:
        deadline = time.monotonic() + 120
        while not (cluster.state_dir(0) / "status.json").exists() or cluster.status(0)["phase"] != "incremental":
            assert time.monotonic() < deadline and all(p.poll() is None for p in cluster.procs), cluster.tails()
            time.sleep(0.2)
        spread = change_many(conn, db)
        deadline = time.monotonic() + 120
        while sum(cluster.status(k).get("log_changes_encoded", {"total": 0})["total"] for k in range(2)) < spread:
            assert time.monotonic() < deadline and all(p.poll() is None for p in cluster.procs), cluster.tails()
            time.sleep(0.5)
    finally:
        for proc in cluster.procs:
            proc.send_signal(signal.SIGTERM)
    assert cluster.wait(120) == [0, 0], cluster.tails()
    assert_landed_exactly(kafka, conn, db)
    statuses = [cluster.status(k) for k in range(2)]
    assert statuses[0]["log_position_read"] is not None and statuses[1]["log_position_read"] is None, statuses
    lanes = [set(s.get("log_changes_encoded", {"lanes": {}})["lanes"]) for s in statuses]
    assert (len(lanes[0]), len(lanes[1])) == (1, 2) and not lanes[0] & lanes[1], statuses
    conn.close()


def test_two_workers_of_one_process_share_encoding_of_the_log(tmp_path, mariadb, kafka, shop):
    """`workers: 2` in one process: the same split (one worker reads the log, both encode by lane)."""
    db, conn = shop
    seed(conn, db, 600)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"], workers=2)
    run_obsync("run", str(task), "--until-caught-up")
    spread = change_many(conn, db)
    run_obsync("run", str(task), "--until-caught-up")
    assert_landed_exactly(kafka, conn, db)
    encoded = json.loads((tmp_path / "state" / "status.json").read_text())["log_changes_encoded"]
    assert sorted(encoded["workers"]) == ["0", "1"] and min(encoded["workers"].values()) > 0, encoded
    assert encoded["total"] == spread, (encoded, spread)


def without_read_time(value: bytes) -> dict:
    """A Debezium value without the times it was encoded at (a full-sync row's `ts_ms`, `ts_us`, `ts_ns`, in the
    envelope and its source: the encoding's clock, not the source's)."""
    doc = json.loads(value)
    for part in (doc["payload"], doc["payload"]["source"]):
        for unit in ("ts_ms", "ts_us", "ts_ns"):
            assert isinstance(part.pop(unit), int)
    return doc


def test_a_clusters_full_sync_writes_the_messages_one_process_writes(tmp_path, mariadb, kafka, shop):
    """In a cluster a chunk's rows cross to the process writing their partition and are encoded there (as the
    log's changes are): `debezium`'s messages, Connect schema included, are those one process writes of the same
    rows (keys, values, partitions, positions), each chunk's in order in its partitions; each process wrote some,
    and neither counts them as log changes. The two tasks share a name: Debezium's values carry it."""
    db, conn = shop
    seed(conn, db, 600)
    with conn.cursor() as cur:  # values of every kind the table has: NULLs, decimals, multibyte text
        cur.execute(f"UPDATE {db}.orders SET price = NULL, note = CONCAT('é', id) WHERE id % 7 = 0")
    common = dict(db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"], format="debezium", name=f"{db}-task",
                  sync={"full": True, "incremental": False, "ddl": True},
                  snapshot={"chunk_size": 100, "batch_size": 40})
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
    one = write_task(tmp_path / "one" / "task.yaml", **common,
                     objects=[{"match": f"{db}.orders", "topic": f"{db}_one"}])
    run_obsync("run", str(one), "--until-caught-up")
    two = write_task(tmp_path / "two" / "task.yaml", **common,
                     objects=[{"match": f"{db}.orders", "topic": f"{db}_two"}])
    cluster = Cluster(tmp_path / "two", two)
    cluster.run_until_caught_up()

    by_one = read_topic(kafka.bootstrap_servers, f"{db}_one")
    by_two = read_topic(kafka.bootstrap_servers, f"{db}_two")
    assert len({m.key for m in by_one}) == 600

    def seen(msgs):  # each message, in the order of its partition and position (chunks interleave by timing)
        return sorted((m.partition, position_from_header(m.headers["obsync.pos"]).sort_key,
                       int(m.headers["obsync.seq"]), m.key,
                       None if m.value is None else json.dumps(without_read_time(m.value), sort_keys=True))
                      for m in msgs)

    assert seen(by_two) == seen(by_one)
    assert len(by_two) == len(by_one) == 600
    last: dict[tuple[int, str], tuple] = {}  # in each partition, each chunk's rows in their order
    for m in by_two:
        pos = position_from_header(m.headers["obsync.pos"])
        at = (pos.sort_key, int(m.headers["obsync.seq"]))
        assert (m.partition, pos.stream) not in last or at > last[(m.partition, pos.stream)], (m.partition, pos)
        last[(m.partition, pos.stream)] = at
    assert len({stream for _, stream in last}) == 6  # 6 chunks of 100 rows
    # both processes wrote messages; neither counted the full sync's rows as log changes it encoded
    statuses = [cluster.status(k) for k in range(2)]
    assert all(s["messages_written"] > 0 for s in statuses), statuses
    # process 0 wrote 1 of the 3 partitions, so it read every chunk (`obsync.steps.chunk_placement`)
    assert [sum(t["chunks_done"] for t in s["full_sync"]) for s in statuses] == [6, 0], statuses
    assert all(s.get("log_changes_encoded", {"total": 0})["total"] == 0 for s in statuses), statuses


@pytest.mark.parametrize("incremental", [False, True], ids=["full-only", "with-the-log"])
def test_sigkill_during_a_clusters_debezium_full_sync_loses_and_duplicates_nothing(tmp_path, mariadb, kafka, shop,
                                                                                    incremental):
    """`debezium`'s full-sync rows cross to their lanes' processes as values and are encoded there: one process
    killed at random moments of the full sync, then a run to the end, writes every row exactly once, with its
    values. Process 0 writes 1 of the 3 partitions and reads every chunk (`obsync.steps.chunk_placement`), with the
    log to read or without."""
    db, conn = shop
    rows = 40000
    seed(conn, db, rows)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      format="debezium", sync={"full": True, "incremental": incremental},
                      snapshot={"chunk_size": 2500, "batch_size": 250}, limits={"full": {"rps": 4000}})
    topic = f"Topic_{db}_orders"
    cluster = Cluster(tmp_path, task)
    rnd = random.Random(5)
    written_after_kill = []
    for _ in range(3):
        cluster.start()
        cluster.wait_until_logged("recovery partition")
        time.sleep(rnd.uniform(1.0, 3.0))
        if any(p.poll() is not None for p in cluster.procs):  # a process finished its share: the sync is near its end
            cluster.kill_all()
            break
        cluster.procs[rnd.randrange(2)].send_signal(signal.SIGKILL)
        cluster.kill_all()
        written_after_kill.append(len(read_topic(kafka.bootstrap_servers, topic)))
    assert written_after_kill and 0 < written_after_kill[0] < rows, written_after_kill  # killed mid-sync
    cluster.run_until_caught_up()

    msgs = read_topic(kafka.bootstrap_servers, topic)
    ids = [json.loads(m.key)["payload"]["id"] for m in msgs]
    assert sorted(ids) == list(range(1, rows + 1))  # every row, once
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, name, qty, price, note FROM {db}.orders")
        table = {r[0]: r[1:] for r in cur.fetchall()}
    for m in msgs:
        after = json.loads(m.value)["payload"]["after"]
        price = after["price"]
        price = None if price is None else Decimal(int.from_bytes(base64.b64decode(price), "big", signed=True)) / 100
        assert (after["name"], after["qty"], price, after["note"]) == table[after["id"]], after


@pytest.mark.parametrize(("fmt", "chunks_read"), [("default", (4, 2)), ("debezium", (6, 0))])
def test_a_cluster_reading_the_log_gives_more_of_the_full_sync_to_the_process_writing_fewer_partitions(
        tmp_path, mariadb, kafka, shop, fmt, chunks_read):
    """In a run that reads the log, process 0 writes 1 of the topic's 3 partitions (`obsync.steps.lane_placement`),
    so it reads more of the full sync's 6 chunks (`obsync.steps.chunk_placement`): 4 with `default`, whose rows
    are encoded where they are read, and all 6 with `debezium`, whose rows are encoded by their partitions' lanes.
    Every row lands once, in its key's partition, and the log's changes after it."""
    db, conn = shop
    seed(conn, db, 600)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"], format=fmt,
                      snapshot={"chunk_size": 100, "batch_size": 40})
    cluster = Cluster(tmp_path, task)
    cluster.run_until_caught_up()
    statuses = [cluster.status(k) for k in range(2)]
    assert tuple(sum(t["chunks_done"] for t in s["full_sync"]) for s in statuses) == chunks_read, statuses
    written = [s["messages_written"] for s in statuses]
    assert sum(written) == 600 and 0 < written[0] < written[1], written  # process 0 writes 1 partition of 3
    change_some(conn, db)
    cluster.run_until_caught_up()
    if fmt == "default":
        assert_landed_exactly(kafka, conn, db)
        return
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    full = [json.loads(m.key)["payload"]["id"] for m in msgs if json.loads(m.value or b"null") is not None
            and json.loads(m.value)["payload"]["op"] == "r"]
    assert sorted(full) == list(range(1, 601))  # every row of the full sync, once
    partition = {}
    for m in msgs:  # every key in one partition
        assert partition.setdefault(m.key, m.partition) == m.partition, m.key

"""SIGKILL (a crash, the OOM killer) at random moments under a concurrent writer: during full sync and
incremental sync, and inside a 50,000-row transaction. Every next run resumes where the last consistent point
left it: the topic replayed per key equals the table and no (position, seq) is written twice. (Tables without
a key: test_keyless_kills.py.)"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from obsync.core.positions import LogPosition, position_from_header
from tests.helpers.chaos import ObsyncRun, Writer, converge, orders_table
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

pytestmark = pytest.mark.chaos


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    with conn.cursor() as cur:  # big enough that the first kill lands during full sync
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_150000")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 10000, "batch_size": 500})
    writer_conn = mariadb.connect(autocommit=True)
    stop = threading.Event()
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 42), daemon=True)
    writer.start()
    rnd = random.Random(1)
    log = tmp_path / "obsync.log"
    try:
        # Each run killed a random time after its dataflow starts (its log says where the state is, just
        # before): the first during full sync, the others wherever they are by then. Timed from the start of
        # the process instead, a loaded machine killed some runs before their dataflow started.
        for run in range(4):
            with ObsyncRun(task, log) as proc:
                proc.wait_log(", state in ")
                time.sleep(rnd.uniform(1.5, 3.0) if run == 0 else rnd.uniform(1.0, 6.0))
                assert proc.running()
                proc.kill()
    finally:
        stop.set()
        writer.join(30)
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")
    # the kills did interrupt writing: restarted runs found messages newer than their last snapshot
    assert "found in Kafka; they will not be written again" in log.read_text()


def _binlog_end(server) -> tuple:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return LogPosition(file, pos).sort_key


def test_sigkill_inside_a_big_transaction_loses_and_duplicates_nothing(tmp_path, mariadb, kafka):
    """A 50,000-row transaction (30,000 inserts, then an update of the 20,000 rows there were) streamed at
    4,000 rows/s: killed a few seconds into it, then once more right after the next run starts (resuming inside
    the transaction); the third run catches up."""
    db = orders_table(mariadb, 20_000)
    table, topic = f"{db}.orders", f"Topic_{db}_orders"
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                      limits={"incremental": {"rps": 4000}})
    log = tmp_path / "run.log"
    rnd = random.Random(4)
    writer = Writer(mariadb, db, seed=21)
    writer.start()
    try:
        with ObsyncRun(task, log) as run:
            run.wait_log("full sync done")
            before = _binlog_end(mariadb)
            with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(f"INSERT INTO {table} SELECT 2000000 + seq, 'big', seq, 1.00, 'big' "
                            f"FROM {db}.seq_1_to_30000")
                cur.execute(f"UPDATE {table} SET qty = qty + 1, note = 'big' WHERE id <= 20000")
                big = cur.rowcount + 30_000
                cur.execute("COMMIT")
            after = _binlog_end(mariadb)
            time.sleep(rnd.uniform(3.0, 6.0))
            run.kill()

        def in_big(m) -> bool:
            # the writer's key changes keep note 'big' and may commit right after the big transaction, before
            # `after` is read: they are told apart by their new ids (old id + 500,000), outside the big one's
            after_image = json.loads(m.value)["postStruct"] or {}
            return (before < position_from_header(m.headers["obsync.pos"]).sort_key < after
                    and after_image.get("note") == "big"
                    and (int(after_image["id"]) <= 20_000 or 2_000_000 < int(after_image["id"]) <= 2_030_000))

        written = sum(in_big(m) for m in read_topic(kafka.bootstrap_servers, topic))
        assert 0 < written < big, f"the kill did not land inside the transaction: {written} of {big} written"
        with ObsyncRun(task, log) as run:
            run.wait_log(", state in ")
            time.sleep(rnd.uniform(1.0, 3.0))
            run.kill()
        with ObsyncRun(task, log) as run:
            time.sleep(5)  # the writer goes on while the run catches up
            writer.finish()
            msgs = converge(kafka, topic, mariadb, table)
            assert run.stop() == 0, run.text()[-4000:]
    finally:
        writer.finish()
    assert sum(in_big(m) for m in msgs) == big  # every row of it once (that the kill was inside it: above)

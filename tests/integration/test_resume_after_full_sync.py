"""A task stopped after its full sync reached Kafka, but before Bytewax saved the state that says so, must not
read the full sync again on resume.

Why it matters: the log starts at a position fixed before the full sync, and the Kafka sink drops only what it
has written before under the same stream and a position at or before it. Rows inserted while the task ran
after its full sync were written by the log; read again from a snapshot chunk (the last one is open-ended, so
it holds them now) they come under new snapshot positions, pass the sink, and land in Kafka after the log's
changes of the same keys: a consumer sees an old row replace a newer one. The fix is in the snapshot source:
once the task's state says every snapshot row is in Kafka, no chunk is read again, whatever Bytewax's
recovered state says of it (found by tests/chaos/test_stops.py, a SIGTERM exactly at full sync's end).

Made deterministic with `epoch_seconds: 600`: the run that finishes the full sync and writes the log's changes
saves no state at all, so the next run resumes from before the full sync ended.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml

from obsync.core.positions import LogPosition, SnapshotPosition, position_from_header
from tests.helpers.chaos import ObsyncRun, wait_for
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows

ROWS = 6000
NEW = range(1_000_001, 1_000_021)  # keys inserted after the full sync, in the last (open-ended) chunk's range


def _set(task, **over) -> None:
    doc = yaml.safe_load(task.read_text())
    doc.update(over)
    task.write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("saved", ["nothing", "a half-read full sync"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stop_after_full_sync_before_its_state_is_saved_writes_no_snapshot_row_after_the_log(
        tmp_path, mariadb, kafka, shop, saved, sig):
    db, conn = shop
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_{ROWS}")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 1000, "batch_size": 100})
    log = tmp_path / "obsync.log"
    if saved != "nothing":  # a first run killed mid full sync, its state saved every half second
        _set(task, limits={"full": {"rps": 500}})  # 12 s of full sync
        with ObsyncRun(task, log) as run:
            wait_for(lambda: run.running() and run.rows_done() >= 2000, 60, "2,000 rows read")
            time.sleep(1.5)  # epochs of 0.5 s: the state of a half-read full sync is saved
            run.kill()
        assert not list((tmp_path / "state" / "delivered").glob("*")), "the first run finished its full sync"
        _set(task, limits={})
    _set(task, epoch_seconds=600)  # from here, no state is saved before the stop
    with ObsyncRun(task, log) as run:
        wait_for(lambda: run.running() and run.status().get("phase") == "incremental", 120,
                 "the log to start (every snapshot row is in Kafka)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {db}.orders VALUES (%s, %s, 1, 1.00, 'after the full sync')",
                            [(k, f"new{k}") for k in NEW])
            cur.execute(f"UPDATE {db}.orders SET qty = 2 WHERE id >= {NEW[0]}")
        want = {json.dumps([k]).encode() for k in NEW}

        def log_wrote_them() -> bool:
            run.running()
            got = [m for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders", timeout=10)
                   if m.key in want]
            return len(got) == 2 * len(NEW)

        wait_for(log_wrote_them, 60, "the log's inserts and updates of the new keys in Kafka", every=1)
        if sig == signal.SIGKILL:
            run.kill()
        else:
            assert run.stop(sig) == 0, run.text()[-3000:]
    run_obsync("run", str(task), "--until-caught-up")

    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)  # no position written twice, each key's changes in order
    assert replay(msgs) == source_rows(conn, f"{db}.orders")
    for k in NEW:  # each new key: its insert and its update from the log, and no snapshot row
        key = json.dumps([k]).encode()
        of_key = [(json.loads(m.value)["recordType"], position_from_header(m.headers["obsync.pos"]))
                  for m in msgs if m.key == key]
        assert [r for r, _ in of_key] == ["INSERT", "UPDATE"], (k, of_key)
        assert all(isinstance(p, LogPosition) for _, p in of_key), (k, of_key)
    snapshot_keys = [json.loads(m.key) for m in msgs
                     if isinstance(position_from_header(m.headers["obsync.pos"]), SnapshotPosition)]
    assert sorted(k for [k] in snapshot_keys) == list(range(1, ROWS + 1))  # each seed row once, nothing else

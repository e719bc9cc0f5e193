"""The source (MariaDB) stopped and restarted while obsync runs, during full sync and during incremental sync,
with binary log rotations before and after the outage and a writer that keeps changing the table whenever
the server is up: the same `obsync run` process waits it out and catches up; the topic replayed per key
equals the table and no (position, seq) is written twice."""

from __future__ import annotations

import time

import pytest

from tests.helpers.chaos import ObsyncRun, Writer, converge, orders_table, wait_for
from tests.helpers.tasks import write_task

pytestmark = pytest.mark.chaos

OUTAGE = 30  # seconds the server is down: many reconnect attempts, longer than full sync's backoff cap


def _rotate(server, times: int) -> None:
    with server.connect(autocommit=True) as conn, conn.cursor() as cur:
        for _ in range(times):
            cur.execute("FLUSH BINARY LOGS")


@pytest.mark.parametrize("phase", ["full", "incremental"])
def test_source_stopped_and_restarted_loses_and_duplicates_nothing(tmp_path, own_mariadb, kafka, phase):
    db = orders_table(own_mariadb, 10_000 if phase == "full" else 3_000)
    table = f"{db}.orders"
    task = write_task(tmp_path / "task.yaml", db_server=own_mariadb, kafka=kafka, tables=[table],
                      snapshot={"chunk_size": 2000, "batch_size": 200}, limits={"full": {"rps": 1000}})
    writer = Writer(own_mariadb, db, seed=5 if phase == "full" else 6)
    writer.start()
    try:
        with ObsyncRun(task, tmp_path / "run.log") as run:
            if phase == "full":
                wait_for(lambda: run.running() and run.rows_done() >= 2500, 120, "full sync to read 2,500 rows")
            else:
                run.wait_log("full sync done")
                taken = writer.ids_taken
                wait_for(lambda: run.running() and writer.ids_taken > taken + 500, 60,
                         "the writer to insert 500 rows while the log streams")
            _rotate(own_mariadb, 2)
            own_mariadb.stop()
            time.sleep(OUTAGE)
            assert run.running()
            if phase == "full":
                assert "full sync done" not in run.text(), "full sync ended before the outage"
            taken = writer.ids_taken
            own_mariadb.start()
            _rotate(own_mariadb, 1)
            if phase == "full":
                run.wait_log("full sync done", timeout=300)
            wait_for(lambda: run.running() and writer.ids_taken > taken + 300,
                     60, "the writer to write again after the outage")
            _rotate(own_mariadb, 1)
            writer.finish()
            converge(kafka, f"Topic_{db}_orders", own_mariadb, table, timeout=300)
            assert run.stop() == 0, run.text()[-4000:]
            out = run.text()
    finally:
        own_mariadb.start()  # a no-op unless the test failed during the outage: the next test needs it
        writer.finish()
    assert "Traceback" not in out and "panicked" not in out, out[-4000:]
    # full sync names the chunk, the log stream says `log: waiting for the source host:port (...)`
    waited = "waiting for the source" if phase == "full" else "log: waiting for the source"
    assert waited in out, out[-4000:]

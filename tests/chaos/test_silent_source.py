"""The source's connections silently dropped while obsync runs, during full sync and during incremental sync:
every connection to MariaDB (SQL sessions and the binlog stream) goes through a `BlackholeProxy`, which for
20 s drops every packet and leaves the sockets open (no FIN, no RST; the connections open when it starts stay
silent for good). A writer keeps changing the table directly. The same `obsync run` process notices (SQL read
timeouts; the binlog stream's, four heartbeats or at least 30 s), reconnects and catches up: the topic replayed
per key equals the table and no (position, seq) is written twice."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.helpers.blackhole import BlackholeProxy
from tests.helpers.chaos import ObsyncRun, Writer, converge, orders_table, wait_for
from tests.helpers.tasks import write_task

pytestmark = pytest.mark.chaos

HOLE = 20  # seconds nothing gets through


@pytest.mark.parametrize("phase", ["full", "incremental"])
def test_a_silent_source_loses_and_duplicates_nothing(tmp_path, mariadb, kafka, phase):
    db = orders_table(mariadb, 10_000 if phase == "full" else 3_000)
    table = f"{db}.orders"
    with BlackholeProxy(mariadb.host, mariadb.port) as proxy:
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                          snapshot={"chunk_size": 2000, "batch_size": 200}, limits={"full": {"rps": 1000}})
        doc = yaml.safe_load(task.read_text())
        doc["source"].update({"host": proxy.host, "port": proxy.port, "connect_timeout": 2, "read_timeout": 2})
        task.write_text(json.dumps(doc))
        writer = Writer(mariadb, db, seed=31 if phase == "full" else 32)
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
                proxy.blackhole()
                time.sleep(HOLE)
                assert run.running()
                if phase == "full":
                    assert "full sync done" not in run.text(), "full sync ended before the hole"
                proxy.restore()
                accepted = proxy.accepted
                if phase == "full":
                    run.wait_log("full sync done", timeout=300)
                wait_for(lambda: run.running() and proxy.accepted > accepted, 120,
                         "obsync to connect again after the hole")
                taken = writer.ids_taken
                wait_for(lambda: run.running() and writer.ids_taken > taken + 300, 60,
                         "the writer to insert 300 more rows")
                writer.finish()
                converge(kafka, f"Topic_{db}_orders", mariadb, table, timeout=300)
                assert run.stop() == 0, run.text()[-4000:]
                out = run.text()
        finally:
            writer.finish()
    assert "Traceback" not in out and "panicked" not in out, out[-4000:]
    # full sync names the chunk, the log stream says `log: waiting for the source host:port (...)`
    waited = "waiting for the source" if phase == "full" else "log: waiting for the source"
    assert waited in out, out[-4000:]

"""Stops the way operators stop a task must always be clean; a stop that cannot finish says why. (SIGTERM/SIGINT
at random moments under load: the chaos suite, tests/chaos/test_stops.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows

ROOT = Path(__file__).resolve().parents[2]


def test_a_stop_that_cannot_finish_says_why_and_exits_1(tmp_path, mariadb, kafka, shop):
    """The broker freezes (SIGSTOP) while the task writes: the stop waits for Kafka, and after --stop-timeout it
    gives up, naming what it waited in, marks the task failed and exits 1; the next run loses nothing."""
    db, conn = shop
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_20000")
    # Full sync paced to last about 10 s: the broker freezes while records are still being written (unpaced,
    # a quiet machine wrote all 20,000 before the freeze, and the stop had nothing to wait for).
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 2000, "batch_size": 200}, limits={"full": {"rps": 2000}})
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task), "--stop-timeout", "5"), cwd=ROOT, stdout=out,
                                stderr=out)
        try:
            deadline = time.monotonic() + 60
            while ", state in " not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.05)
            time.sleep(1.5)
            os.kill(kafka.pid, signal.SIGSTOP)
            try:
                time.sleep(2)  # the sink is now waiting for acknowledgements
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(60)
            finally:
                os.kill(kafka.pid, signal.SIGCONT)
        finally:
            if proc.poll() is None:
                proc.kill()
    out_text = log.read_text(errors="replace")
    assert rc == 1, out_text[-4000:]
    assert "the stop (SIGTERM) did not finish within 5 s; still running: " in out_text, out_text[-4000:]
    assert "Traceback" not in out_text and "panicked" not in out_text, out_text[-4000:]
    status = run_obsync("status", str(task)).stdout
    assert status.splitlines()[0].endswith(": failed") and "did not finish within 5 s" in status, status
    conf = yaml.safe_load(task.read_text())
    del conf["limits"]  # the rest unpaced
    task.write_text(yaml.safe_dump(conf))
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")

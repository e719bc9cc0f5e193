"""SIGTERM and SIGINT under load, at random moments of a run's start-up, full sync and incremental sync, while
a writer changes the table: every stop is clean (rc 0, "stopped", no traceback, no panic) and the next run
resumes: the topic replayed per key equals the table and no (position, seq) is written twice."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.chaos import ROOT
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

pytestmark = pytest.mark.chaos


def _catches_sigterm(pid: int) -> bool:
    """The process has a SIGTERM handler (obsync's code runs)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _stop_once(task: Path, log: Path, sig: int, rnd: random.Random, in_engine: bool) -> tuple[int, str]:
    """Run the task and send `sig` at a random moment: of its start-up, or once the dataflow runs (its log
    says where the state is, just before the engine starts); (exit code, what the process printed)."""
    log.write_bytes(b"")
    with open(log, "ab") as out:
        proc = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stdout=out, stderr=out)
        if in_engine:
            deadline = time.monotonic() + 60
            while ", state in " not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.05)
            time.sleep(rnd.uniform(0.0, 3.0))
        else:  # from the moment its code runs (before, the interpreter itself is starting: default actions)
            deadline = time.monotonic() + 30
            while not _catches_sigterm(proc.pid):
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.01)
            time.sleep(rnd.uniform(0.0, 3.0))
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(sig)
        try:
            rc = proc.wait(150)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -999
    return rc, log.read_text(errors="replace")


def test_stops_at_random_moments_under_load_are_always_clean(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    with conn.cursor() as cur:  # big enough that the first stops land during full sync
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_30000")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      snapshot={"chunk_size": 4000, "batch_size": 200})
    writer_conn = mariadb.connect(autocommit=True)
    stop = threading.Event()
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 7), daemon=True)
    writer.start()
    rnd = random.Random(12)
    outcomes = []
    try:
        for i in range(10):
            sig = signal.SIGINT if i % 4 == 3 else signal.SIGTERM
            rc, out = _stop_once(task, tmp_path / f"run{i}.log", sig, rnd, in_engine=i % 5 != 4)
            outcomes.append((i, sig.name, rc, "the next run resumes" in out))
            assert rc == 0, f"stop {i} ({sig.name}) exited {rc}:\n{out[-4000:]}"
            assert "Traceback" not in out and "panicked" not in out, f"stop {i} ({sig.name}):\n{out[-4000:]}"
            assert "stopped" in out, out[-3000:]
    finally:
        stop.set()
        writer.join(30)
    assert sum(o[3] for o in outcomes) >= 7, outcomes  # most stops hit the running dataflow
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)  # no position written twice, keys in order
    assert replay(msgs) == source_rows(conn, f"{db}.orders"), outcomes

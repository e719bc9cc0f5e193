"""`obsync verify` while the task runs and a writer keeps changing the table (MariaDB, tansu): changes in flight
are not differences (they are re-checked once the task has passed the source's view), a row changed behind the
task is still reported exactly, and the task is not disturbed (its topic replays to the table, nothing written
twice)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

ROOT = Path(__file__).resolve().parents[2]
SEED = 2000


def _wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (got := check()):
        assert time.monotonic() < deadline, f"no {what} within {seconds:g} s"
        time.sleep(0.1)
    return got


def _status(task: Path) -> dict[str, Any]:
    try:
        return json.loads((task.parent / "state" / "status.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


def _start_verify(task: Path, out: Path) -> tuple[subprocess.Popen[bytes], Path]:
    err = out.with_suffix(".err")
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(obsync_cmd("verify", str(task), "--json", "--recheck-timeout", "120"), cwd=ROOT,
                                stdout=o, stderr=e)
    return proc, err


def _finish_verify(proc: subprocess.Popen[bytes], out: Path) -> tuple[int, dict[str, Any], str]:
    rc = proc.wait(240)
    err = out.with_suffix(".err").read_text()
    assert rc in (0, 1), f"verify exited {rc}: {err[-3000:]}"
    return rc, json.loads(out.read_text()), err


def _verify(task: Path, out: Path) -> tuple[int, dict[str, Any], str]:
    proc, _ = _start_verify(task, out)
    return _finish_verify(proc, out)


def test_verify_while_the_task_runs_under_writes(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    table = f"{db}.orders"
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' FROM {db}.seq_1_to_{SEED}")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                      snapshot={"chunk_size": 500, "batch_size": 200})
    topic = f"Topic_{db}_orders"
    log = tmp_path / "run.log"
    writer_conn = mariadb.connect(autocommit=True)
    stop = threading.Event()
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 5), daemon=True)
    writer.start()
    with open(log, "wb") as out:
        run = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stdout=out, stderr=out)
    try:
        def streaming() -> bool:
            assert run.poll() is None, log.read_text()[-3000:]
            s = _status(task)
            return s.get("phase") == "incremental" and s.get("log_position_written") is not None

        _wait_for(streaming, 120, "incremental sync writing changes from the log")

        # 1. While the writer and the task run: whatever is in flight at the source's view is re-checked.
        rc, report, err = _verify(task, tmp_path / "v1.json")
        (t,) = report["tables"]
        assert (rc, report["match"], t["missing_in_kafka"], t["extra_in_kafka"], t["different"]) == (
            0, True, 0, 0, 0), (t, err[-3000:])
        assert report["cut"]["exact"] is True and t["rows_compared"] >= SEED - 100 and t["notes"] == []

        # 2. The task frozen (as a task far behind is) while the writer goes on: verify finds the changes the
        #    task has not written, waits, and once the task runs again and passes the view, they are gone.
        worker = _status(task)["pid"]  # `obsync run` watches a child that runs the task
        assert worker != run.pid
        os.kill(worker, signal.SIGSTOP)
        try:
            with conn.cursor() as cur:  # one change surely after the task's last write
                cur.execute(f"INSERT INTO {table} VALUES (900000000, 'while frozen', 1, NULL, NULL)")
            proc, err_file = _start_verify(task, tmp_path / "v2.json")
            _wait_for(lambda: "re-checking after the task passes" in err_file.read_text() or proc.poll() is not None,
                      120, "verify re-checking the differences")
            assert proc.poll() is None, err_file.read_text()[-3000:]
        finally:
            os.kill(worker, signal.SIGCONT)
        rc, report, err = _finish_verify(proc, tmp_path / "v2.json")
        (t,) = report["tables"]
        assert (rc, report["match"], t["missing_in_kafka"], t["extra_in_kafka"], t["different"], t["notes"]) == (
            0, True, 0, 0, 0, []), (t, err[-3000:])
        found = re.search(r"([\d,]+) differences?; re-checking", err)
        assert found and int(found[1].replace(",", "")) >= 1, err[-3000:]  # the frozen task's changes, at least

        # 3. A row deleted behind the task (binlog off for that session) while the writes go on: reported alone.
        with mariadb.connect(autocommit=True) as ghost, ghost.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("BEGIN")
            cur.execute(f"SELECT id, name, qty, price, note FROM {table} WHERE id < 20000 ORDER BY id LIMIT 1 "
                        "OFFSET 17 FOR UPDATE")
            gone, name, qty, price, note = cur.fetchone()
            cur.execute(f"DELETE FROM {table} WHERE id = %s", (gone,))
            cur.execute("COMMIT")
        image = {"id": str(gone), "name": name, "qty": str(qty), "price": None if price is None else str(price),
                 "note": note}  # its last state as the task wrote it (writes to it committed before the delete)
        rc, report, err = _verify(task, tmp_path / "v3.json")
        (t,) = report["tables"]
        assert (rc, t["missing_in_kafka"], t["extra_in_kafka"], t["different"]) == (1, 0, 1, 0), (t, err[-3000:])
        (d,) = t["differences"]
        assert (d["kind"], d["key"], d["kafka"]) == ("extra", {"id": str(gone)}, image)
    except BaseException:
        run.kill()
        raise
    finally:
        stop.set()
        writer.join(30)

    # 4. The task was not disturbed: it catches up, stops cleanly, and its topic is exactly the table (with the
    #    row deleted behind it), each change written once, in order per key.
    expected = {**source_rows(conn, table), json.dumps([gone]): image}
    _wait_for(lambda: replay(read_topic(kafka.bootstrap_servers, topic)) == expected, 120,
              "the task catching up with the last writes")
    run.send_signal(signal.SIGTERM)
    assert run.wait(120) == 0, log.read_text()[-3000:]
    msgs = read_topic(kafka.bootstrap_servers, topic)
    check_stream(msgs, 3)
    assert replay(msgs) == expected
    last = [m for m in msgs if m.key == json.dumps([gone]).encode()][-1]  # nothing was written for it since
    assert (d["partition"], d["offset"], d["position"]) == (last.partition, last.offset,
                                                            json.loads(last.headers["obsync.pos"]))

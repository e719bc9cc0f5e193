"""A state directory failing while the task runs under a concurrent writer: its disk full (a tmpfs filled up),
or made read-only (`chattr +i`). The run stops with one clear error naming the directory and the cause, exits
2, `status` says failed, and the next start loses nothing: the topic replayed per key equals the table and no
(position, seq) is written twice. (A directory unusable from the start: tests/integration/test_state_dir_faults.py.)
Skipped where `mount` or `chattr +i` is not allowed."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.chaos import ROOT, orders_table
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

pytestmark = pytest.mark.chaos


def _immutable(path: Path, on: bool) -> None:
    """`chattr -R +i`: nothing can be created, renamed or removed in the tree any more (root included), the
    way a directory made read-only under a running process behaves; open files stay writable."""
    subprocess.run(["chattr", "-R", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_state_dir_failing_mid_run_stops_with_one_clear_error_and_loses_nothing(
        tmp_path, mariadb, kafka, fault, request):
    db = orders_table(mariadb, 20_000)
    conn = mariadb.connect(autocommit=True)
    if fault == "full":
        tmpfs = request.getfixturevalue("tmpfs")
        state = tmpfs / "state"
    else:
        state = tmp_path / "state"
        probe = tmp_path / "probe"
        probe.mkdir()
        if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not supported here")
        _immutable(probe, False)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                      state_dir=str(state), snapshot={"chunk_size": 2000, "batch_size": 200})
    stop = threading.Event()
    writer_conn = mariadb.connect(autocommit=True)
    writer = threading.Thread(target=write_concurrently, args=(writer_conn, db, stop, 3), daemon=True)
    writer.start()
    log = tmp_path / "run.log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(obsync_cmd("run", str(task)), cwd=ROOT, stdout=out, stderr=out)
            deadline = time.monotonic() + 60
            while not (state / "status.json").exists():
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(2)
            if fault == "full":  # fill the disk, leaving less than the recovery store needs, in one step: filled
                # to the last byte first (dd, then truncated), the disk was full for a moment, and the task's
                # check of its state directory could meet that moment (ENOSPC) rather than the low free space
                st = os.statvfs(tmpfs)
                with open(tmpfs / "filler", "wb") as filler:
                    os.posix_fallocate(filler.fileno(), 0, st.f_bavail * st.f_frsize - 4 * 2**20)
            else:
                _immutable(state, True)
            rc = proc.wait(60)
        out_text = log.read_text(errors="replace")
        assert rc == 2, out_text[-4000:]
        cause = "MiB free" if fault == "full" else "cannot be written: Operation not permitted"
        assert f"obsync: error: state directory {state}" in out_text and cause in out_text, out_text[-4000:]
        assert out_text.count("obsync: error:") == 1, out_text[-4000:]
        assert "Traceback" not in out_text and "panicked" not in out_text, out_text[-4000:]
        status = run_obsync("status", str(task)).stdout
        assert status.splitlines()[0].endswith(": failed"), status
    finally:
        stop.set()
        writer.join(30)
        if fault == "full":
            (tmpfs / "filler").unlink(missing_ok=True)
        else:
            _immutable(state, False)
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")
    conn.close()

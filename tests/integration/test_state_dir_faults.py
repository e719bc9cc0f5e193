"""State directories that cannot hold the state: refused at start, or stopped with one clear error mid-run,
`status` says failed, and the next start loses nothing. Faults are real: tmpfs mounts (skipped where `mount`
is not allowed)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows, write_concurrently

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpfs(tmp_path):
    """A 48 MiB tmpfs mounted for the test (skips where mounting is not allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def orders(shop):
    db, conn = shop
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_20000")
    return db, conn


@pytest.mark.parametrize("where", ["file", "proc", "read-only"])
def test_an_unusable_state_dir_is_refused_naming_the_path_and_the_cause(tmp_path, mariadb, kafka, orders, where,
                                                                       request):
    if where == "file":
        state = tmp_path / "state"
        state.write_text("not a directory")
        cause = "is not a directory"
    elif where == "proc":
        state = Path(f"/proc/obsync-{uuid.uuid4().hex[:6]}/state")
        cause = "cannot create state directory"
    else:
        mnt = request.getfixturevalue("tmpfs")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        state = mnt / "state"
        cause = "Read-only file system"
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{orders[0]}.orders"],
                      state_dir=str(state))
    proc = run_obsync("run", str(task), check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "obsync: error: " in proc.stderr and str(state) in proc.stderr and cause in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if where == "file":
        assert state.read_text() == "not a directory"
    if where == "read-only":
        assert not state.exists()


def _immutable(path: Path, on: bool) -> None:
    """`chattr -R +i`: nothing can be created, renamed or removed in the tree any more (root included), the
    way a directory made read-only under a running process behaves; open files stay writable."""
    subprocess.run(["chattr", "-R", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_state_dir_failing_mid_run_stops_with_one_clear_error_and_loses_nothing(
        tmp_path, mariadb, kafka, orders, fault, request):
    db, conn = orders
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
            if fault == "full":  # fill the disk, leaving less than the recovery store needs
                subprocess.run(["dd", "if=/dev/zero", f"of={tmpfs / 'filler'}", "bs=1M"], capture_output=True)
                subprocess.run(["truncate", "-s", "-4M", str(tmpfs / "filler")], check=True)
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

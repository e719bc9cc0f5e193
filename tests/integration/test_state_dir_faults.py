"""State directories that cannot hold the state are refused at start, naming the path and the cause. Faults are
real: a tmpfs mount (skipped where `mount` is not allowed). A state directory failing mid-run (full, made
read-only) under load is in the chaos suite: tests/chaos/test_state_disk.py."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.helpers.tasks import run_obsync, write_task

ROOT = Path(__file__).resolve().parents[2]


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

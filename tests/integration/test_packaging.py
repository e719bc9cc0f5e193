"""The installed package: one top-level name (`obsync`), and the flow runs from it by its documented module path.

The wheel is built from this checkout and installed into a directory of its own; the runs below import obsync
from there only (PYTHONPATH = that directory, working directory outside the checkout), so a module that exists
in the checkout but not in the wheel, or a leftover top-level `connectors`/`formats`/`flows`, fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import unique, write_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the directory it is installed in, without dependencies: those come from this environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # from a copy of the checkout's sources: an in-tree build would leave build/ behind, whose stale modules
    # later wheels would pick up
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "state"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("obsync-*.whl")
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    return wheel, target


def test_the_wheel_holds_one_top_level_package_with_every_layer(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"obsync"}
    for layer in ("core", "sql", "task", "connectors", "formats", "steps", "runtime", "flows", "app"):
        assert f"obsync/{layer}/__init__.py" in names, layer
    # every module of the checkout's packages is in the wheel
    checkout = {f"obsync/{p.relative_to(ROOT / 'obsync').as_posix()}" for p in (ROOT / "obsync").rglob("*.py")
                if "__pycache__" not in p.parts}
    assert checkout - set(names) == set()


def test_the_installed_flow_runs_with_bytewax_run(tmp_path, installed, mariadb, kafka):
    _, target = installed
    db = unique("pkg")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"INSERT INTO {db}.t SELECT seq, CONCAT('v', seq) FROM {db}.seq_1_to_50")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"])
    env = {**os.environ, "PYTHONPATH": str(target), "OBSYNC_TASK": str(task), "OBSYNC_UNTIL_CAUGHT_UP": "1",
           "OBSYNC_STATE_DIR": str(tmp_path / "state")}
    where = subprocess.run([sys.executable, "-c", "import obsync.flows.sync as m; print(m.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(target)), where.stdout
    proc = subprocess.run([sys.executable, "-m", "bytewax.run", "obsync.flows.sync:flow"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = sorted(json.loads(m.key)[0] for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_t"))
    assert keys == list(range(1, 51))

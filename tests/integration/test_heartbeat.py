"""Heartbeats on an idle source and on a source whose every change is filtered out: messages keep coming to
every partition, and with a heartbeat table their position keeps advancing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from obsync.core.positions import position_from_header
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, unique, write_task


def test_heartbeats_on_an_idle_source_advance_the_position(tmp_path, mariadb, kafka):
    db = unique("hb")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                           objects=[{"match": f"{db}.*", "where": "id < 0"}],  # every change filtered out
                           heartbeat={"interval": 1, "table": f"{db}.obsync_heartbeat"})
    proc = subprocess.Popen(obsync_cmd("run", str(task_file)), stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    topic = f"Topic_{db}_t"
    try:
        time.sleep(3)
        with conn.cursor() as cur:  # changes that the filter drops: only heartbeats show the progress
            cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s)", [(i, i) for i in range(1, 50)])
        deadline = time.monotonic() + 60
        msgs = []
        while time.monotonic() < deadline:
            msgs = read_topic(kafka.bootstrap_servers, topic)
            if sum(1 for m in msgs if m.partition == 2) >= 6:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
        with conn.cursor() as cur:
            cur.execute(f"SELECT task, ts FROM {db}.obsync_heartbeat")
            rows = cur.fetchall()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    values = [json.loads(m.value) for m in msgs]
    assert values and all(v["recordType"] == "HEARTBEAT" for v in values)  # the rows were all filtered out
    for p in range(3):  # every partition gets them, in position order
        positions = [position_from_header(m.headers["obsync.pos"]) for m in msgs if m.partition == p]
        assert len(positions) >= 3
        assert [x.sort_key for x in positions] == sorted(x.sort_key for x in positions)
        assert len({(x.file, x.pos) for x in positions}) >= 2  # the heartbeat row moves the log along
    assert len(rows) == 1 and rows[0][0] == yaml_name(task_file)
    from confluent_kafka.admin import AdminClient

    assert f"Topic_{db}_obsync_heartbeat" not in AdminClient(
        {"bootstrap.servers": kafka.bootstrap_servers}).list_topics(timeout=10).topics
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


def yaml_name(task_file: Path) -> str:
    import yaml

    return yaml.safe_load(task_file.read_text())["name"]

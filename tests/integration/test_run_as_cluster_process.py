"""`obsync run --process-id 0 --addresses HOST:PORT`: the task runs as process 0 of a one-process Bytewax cluster
(what a StatefulSet of one pod does through deploy/container/obsync-cluster); several processes without a shared
disk are the subject of the cluster tests."""

from __future__ import annotations

import json
import socket

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, write_task
from tests.helpers.workload import check_stream, replay, source_rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_process_cluster_syncs_full_and_incremental(tmp_path, mariadb, kafka, shop):
    db, conn = shop
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {db}.orders VALUES (%s, %s, %s, 1.25, NULL)",
                        [(i, f"n{i}", i) for i in range(1, 41)])
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"])
    cluster = ("--process-id", "0", "--addresses", f"127.0.0.1:{_free_port()}")
    run_obsync("run", str(task), "--until-caught-up", *cluster)
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {db}.orders SET qty = qty + 1 WHERE id <= 5")
        cur.execute(f"DELETE FROM {db}.orders WHERE id = 40")
    run_obsync("run", str(task), "--until-caught-up", *cluster)  # resumes from its state
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    assert sorted(json.loads(m.value)["recordType"] for m in msgs) == ["DELETE"] + ["ROW"] * 40 + ["UPDATE"] * 5
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, f"{db}.orders")

"""`obsync verify` on OceanBase (seekdb): the source is read `AS OF SNAPSHOT` one SCN for every table, the topics
to their end. seekdb has no binary log, so its tasks are full sync only: every change made after the sync is
behind the task and must be reported exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.snapshot.consistent import ConsistentView
from obsync.core.schema import Column
from tests.helpers.tasks import run_obsync, unique, write_task


def _verify(task: Any) -> tuple[int, dict[str, Any], str]:
    proc = run_obsync("verify", str(task), "--json", check=False)
    assert proc.returncode in (0, 1), f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _table(report: dict[str, Any], name: str) -> dict[str, Any]:
    (t,) = [t for t in report["tables"] if t["table"] == name]
    return t


def test_verify_reads_oceanbase_at_one_scn_and_names_what_changed_behind_the_task(tmp_path, seekdb, kafka):
    db = unique("obver")
    with seekdb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.orders (id BIGINT PRIMARY KEY, name VARCHAR(30), amount DECIMAL(10,2))"
                    " PARTITION BY HASH(id) PARTITIONS 4")
        cur.execute(f"CREATE TABLE {db}.nokey (a INT, b VARCHAR(10))")
        cur.executemany(f"INSERT INTO {db}.orders VALUES (%s, %s, %s)",
                        [(i, f"名前{i}", f"{i}.50") for i in range(1, 301)])
        cur.executemany(f"INSERT INTO {db}.nokey VALUES (%s, %s)", [(i % 3, "dup") for i in range(9)])
    task = write_task(tmp_path / "task.yaml", db_server=seekdb, kafka=kafka,
                      tables=[f"{db}.orders", f"{db}.nokey"], sync={"full": True, "incremental": False},
                      snapshot={"chunk_size": 100, "batch_size": 64})
    run_obsync("run", str(task), "--until-caught-up")

    code, report, err = _verify(task)
    assert code == 0 and report["match"] is True, err[-3000:]
    assert report["source"].startswith("oceanbase ") and report["cut"] is None and report["scn"] > 0
    assert f"source read AS OF SNAPSHOT {report['scn']}" in err
    orders, nokey = _table(report, f"{db}.orders"), _table(report, f"{db}.nokey")
    assert (orders["rows_compared"], orders["key"], orders["match"]) == (300, ["id"], True)
    assert (nokey["rows_compared"], nokey["compared_as"], nokey["match"]) == (9, "multiset of rows", True)
    text = run_obsync("verify", str(task), "-q").stdout
    assert text.splitlines()[0].startswith(f"verify {report['task']}: source oceanbase ")
    assert " AS OF SNAPSHOT " in text.splitlines()[0]

    with seekdb.connect(autocommit=True) as conn, conn.cursor() as cur:  # the task does not stream: behind it
        cur.execute(f"DELETE FROM {db}.orders WHERE id = 5")
        cur.execute(f"INSERT INTO {db}.orders VALUES (9999, 'new', NULL)")
        cur.execute(f"UPDATE {db}.orders SET amount = 8.75 WHERE id = 8")
        cur.execute(f"INSERT INTO {db}.nokey VALUES (1, 'dup')")
    code, report, err = _verify(task)
    assert code == 1
    orders, nokey = _table(report, f"{db}.orders"), _table(report, f"{db}.nokey")
    assert (orders["missing_in_kafka"], orders["extra_in_kafka"], orders["different"]) == (1, 1, 1)
    by_kind = {d["kind"]: d for d in orders["differences"]}
    assert by_kind["missing"]["key"] == {"id": "9999"}
    assert by_kind["missing"]["source"] == {"id": "9999", "name": "new", "amount": None}
    assert by_kind["extra"]["key"] == {"id": "5"}
    assert by_kind["extra"]["kafka"] == {"id": "5", "name": "名前5", "amount": "5.50"}
    assert by_kind["extra"]["position"][0] == "snap"
    assert by_kind["different"]["key"] == {"id": "8"}
    assert by_kind["different"]["columns"] == {"amount": {"source": "8.75", "kafka": "8.50"}}
    assert orders["notes"] == ["no log position for the source's view: differences were not re-checked"]
    assert (nokey["missing_in_kafka"], nokey["extra_in_kafka"]) == (1, 0)
    assert nokey["differences"][0]["key"] == {"a": "1", "b": "dup"}


@pytest.mark.parametrize("server", ["seekdb", "mariadb"])
def test_the_source_view_stays_at_its_point_while_writes_go_on(server, request):
    """The view `verify` reads the source in: rows written after it opened are not seen (OceanBase: AS OF
    SNAPSHOT its SCN; MariaDB: the consistent-snapshot transaction, whose binlog position is the cut)."""
    srv = request.getfixturevalue(server)
    db = unique("view")
    with srv.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.a (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"CREATE TABLE {db}.b (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"INSERT INTO {db}.a VALUES (1, 'old'), (2, 'old'), (3, 'old')")
        cur.execute(f"INSERT INTO {db}.b VALUES (1, 'old')")
        view = ConsistentView(Endpoint(srv.host, srv.port, srv.user, srv.password)).open()
        try:
            if server == "seekdb":
                assert (view.dialect, view.cut) == ("oceanbase", None) and view.scn is not None and view.scn > 0
            else:
                cur.execute("SHOW MASTER STATUS")
                file, pos = cur.fetchone()[:2]
                assert view.cut is not None and view.cut.exact
                assert (view.cut.position.file, view.cut.position.pos) == (file, pos)
            cur.execute(f"UPDATE {db}.a SET v = 'new' WHERE id = 1")
            cur.execute(f"DELETE FROM {db}.a WHERE id = 2")
            cur.execute(f"INSERT INTO {db}.a VALUES (4, 'new')")
            cur.execute("BEGIN")  # a row moved between tables in one transaction: seen in neither table
            cur.execute(f"DELETE FROM {db}.a WHERE id = 3")
            cur.execute(f"INSERT INTO {db}.b VALUES (3, 'old')")
            cur.execute("COMMIT")
            cols = [Column("id", "int", "int"), Column("v", "varchar", "varchar(10)", charset="utf8mb4")]
            a = sorted((r["id"], r["v"]) for batch in view.rows(db, "a", cols) for r in batch)
            b = sorted((r["id"], r["v"]) for batch in view.rows(db, "b", cols, batch_size=1) for r in batch)
        finally:
            view.close()
    assert a == [(1, "old"), (2, "old"), (3, "old")] and b == [(1, "old")]

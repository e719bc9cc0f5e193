"""The schema-history topic end to end: MariaDB -> `obsync run` (schema_history enabled, a pattern rule `db.*`)
-> tansu; the topic replayed alone rebuilds every table as MariaDB had it at each log position.

Two tables exist at the start (their CREATE TABLE are the history's first records); then, with a run SIGKILLed in
the middle of the DDL (after some of its history records reached Kafka) and a resumed run: CREATE, ADD / DROP /
MODIFY / CHANGE COLUMN, RENAME (one pair, two pairs, out of the selection), DROP, interleaved with row
writes. After every statement
the test notes the source's binlog position and information_schema's columns of every table; at each of those
positions the replayed tables are created in a scratch database from the CREATE TABLE `obsync schema-history
--at` prints, and their columns must be MariaDB's of that moment (name, position, type, nullability, default,
primary key). Every schema change is in the topic exactly once, in order, despite the kill.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from obsync.core.positions import LogPosition
from obsync.formats.schema_history import create_table_sql, replay
from tests.helpers.schema_history import binlog_position, history, wait_for_records
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task

REPO = Path(__file__).parents[2]
START = [
    "CREATE TABLE a (id INT NOT NULL AUTO_INCREMENT, v INT DEFAULT 5, PRIMARY KEY (id))",
    "CREATE TABLE b (k VARCHAR(10) NOT NULL, n DECIMAL(10,2) NOT NULL DEFAULT 1.50, t TEXT, PRIMARY KEY (k))",
]
BEFORE_KILL = [  # run while a task runs; it is SIGKILLed once the third statement's record is in Kafka
    "CREATE TABLE c (id INT PRIMARY KEY, s ENUM('x','y') DEFAULT 'x')",
    "INSERT INTO a (v) VALUES (1), (2)",
    "ALTER TABLE a ADD COLUMN w VARCHAR(20) NOT NULL DEFAULT 'x'",
    "ALTER TABLE a MODIFY v BIGINT UNSIGNED NULL",
    "INSERT INTO b VALUES ('k1', 2.5, 'x')",
    "ALTER TABLE b DROP COLUMN n",
]
AFTER_KILL = [  # while no task runs; the resumed run reads them
    "RENAME TABLE c TO c2",
    "ALTER TABLE a CHANGE w w2 VARCHAR(30) NULL",
    "INSERT INTO c2 VALUES (1, 'y')",
    "CREATE TABLE d (x INT NOT NULL, y CHAR(3) DEFAULT 'abc')",
    "DROP TABLE b",
    "RENAME TABLE a TO a_old, c2 TO c3",
    "ALTER TABLE d ADD PRIMARY KEY (x)",
    "RENAME TABLE d TO {away}.d",  # out of the task's selection: gone from the history
]
KILL_AFTER = 3  # DDL statements of BEFORE_KILL in the topic before the kill


def is_ddl(sql: str) -> bool:
    return not sql.startswith("INSERT")


def columns_of(cur: Any, db: str) -> dict[str, list[tuple[Any, ...]]]:
    """information_schema's columns of every table of `db`: (name, position, type, nullable, default, in PK)."""
    cur.execute("SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                "COLUMN_KEY = 'PRI' FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION", (db,))
    out: dict[str, list[tuple[Any, ...]]] = {}
    for t, *rest in cur.fetchall():
        out.setdefault(t, []).append(tuple(rest))
    return out


@pytest.fixture(scope="module")
def landed(tmp_path_factory, mariadb, kafka) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("schist")
    db = unique("schist")
    conn = mariadb.connect(autocommit=True)
    moments: list[tuple[str, LogPosition, dict[str, list[tuple[Any, ...]]]]] = []  # (statement, position, columns)
    ddl_positions: list[tuple[str, LogPosition]] = []
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
        cur.execute(f"USE {db}")
        for sql in START:
            cur.execute(sql)
        name = unique("schist")
        task = write_task(tmp / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.*"], name=name,
                          sync={"full": True, "incremental": True, "ddl": False}, topic="${database}_${table}",
                          schema_history={"enabled": True},
                          epoch_seconds=30)  # the killed run saves no state: its successor reads its DDL again
        run_obsync("run", str(task), "--until-caught-up", timeout=180)
        moments.append(("start", binlog_position(cur), columns_of(cur, db)))
        topic = f"obsync.schema_history.{name}"

        proc = subprocess.Popen(obsync_cmd("run", str(task)), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            done = 0
            for sql in BEFORE_KILL:
                cur.execute(sql)
                pos = binlog_position(cur)
                moments.append((sql, pos, columns_of(cur, db)))
                if is_ddl(sql):
                    ddl_positions.append((sql, pos))
                    done += 1
                    if done == KILL_AFTER:
                        wait_for_records(kafka, topic, KILL_AFTER)
                        proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
        killed = history(kafka, topic)
        away = unique("away")
        cur.execute(f"CREATE DATABASE {away}")
        for sql in AFTER_KILL:
            sql = sql.format(away=away)
            cur.execute(sql)
            pos = binlog_position(cur)
            moments.append((sql, pos, columns_of(cur, db)))
            if is_ddl(sql):
                ddl_positions.append((sql, pos))
        resumed = run_obsync("-v", "run", str(task), "--until-caught-up", timeout=180).stderr
    conn.close()
    return {"db": db, "task": task, "topic": topic, "moments": moments, "ddl_positions": ddl_positions,
            "records": history(kafka, topic), "killed": killed,
            "resumed": resumed}


def test_the_topic_has_one_partition_and_keeps_every_record(landed, kafka):
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    assert len(admin.list_topics(landed["topic"], timeout=10).topics[landed["topic"]].partitions) == 1
    res = ConfigResource(ConfigResource.Type.TOPIC, landed["topic"])
    conf = admin.describe_configs([res])[res].result()
    assert {k: conf[k].value for k in ("cleanup.policy", "retention.ms", "retention.bytes")} == {
        "cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def test_start_records_come_first_one_per_table(landed):
    values = [json.loads(m.value) for m in landed["records"]]
    start = [v for v in values if v["position"].get("snapshot")]
    assert values[:len(start)] == start
    assert [v["position"]["snapshot"] for v in start] == [True, "last"]
    assert sorted(v["tableChanges"][0]["id"] for v in start) == [f'"{landed["db"]}"."a"', f'"{landed["db"]}"."b"']
    for v in start:
        assert v["ddl"].startswith("CREATE TABLE `") and v["tableChanges"][0]["type"] == "CREATE"
        assert v["databaseName"] == landed["db"]


def test_every_schema_change_once_in_order_despite_the_kill(landed):
    recs = [m for m in landed["records"] if not json.loads(m.value)["position"].get("snapshot")]
    assert len(landed["killed"]) > len(landed["records"]) - len(recs)  # the killed run had written some changes
    assert " already written" in landed["resumed"]  # and its successor read them again: the sink dropped them
    ids = [(m.headers["obsync.pos"], m.headers.get("obsync.seq", b"0")) for m in recs]
    assert len(ids) == len(set(ids))
    by_pos: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in recs:
        v = json.loads(m.value)
        by_pos.setdefault((v["position"]["file"], v["position"]["pos"]), []).append(v)
    # one group of records per statement, at the statement's own position, in the order they ran
    assert list(by_pos) == [(p.file, p.pos) for _, p in landed["ddl_positions"]]
    for sql, p in landed["ddl_positions"]:
        group = by_pos[(p.file, p.pos)]
        if sql.startswith("RENAME TABLE a TO a_old"):  # split per pair, as Debezium's schema-change events
            db = landed["db"]
            assert [g["ddl"] for g in group] == [f"RENAME TABLE `{db}`.`a` TO `{db}`.`a_old`",
                                                 f"RENAME TABLE `{db}`.`c2` TO `{db}`.`c3`"]
            assert [g["tableChanges"][0]["previousId"] for g in group] == [
                f'"{landed["db"]}"."a"', f'"{landed["db"]}"."c2"']
        elif sql.startswith("DROP TABLE"):
            assert [g["ddl"] for g in group] == [f"DROP TABLE `{landed['db']}`.`{sql.split()[-1]}`"]
        elif sql.startswith("RENAME TABLE d TO"):
            assert [(g["ddl"], g["tableChanges"]) for g in group] == [
                (sql, [{"type": "DROP", "id": f'"{landed["db"]}"."d"', "table": None}])]
        else:
            assert [g["ddl"] for g in group] == [sql]


def rebuilt_columns(cur: Any, scratch: str, tables: dict[tuple[str, str], dict[str, Any]]
                    ) -> dict[str, list[tuple[Any, ...]]]:
    """The tables created in `scratch` from their replayed CREATE TABLE, read back from information_schema."""
    cur.execute(f"DROP DATABASE IF EXISTS {scratch}")
    cur.execute(f"CREATE DATABASE {scratch} CHARACTER SET utf8mb4")
    for (_, name), struct in sorted(tables.items()):
        cur.execute(create_table_sql(scratch, name, struct))
    out = columns_of(cur, scratch)
    cur.execute(f"DROP DATABASE {scratch}")
    return out


def test_replay_rebuilds_every_table_at_every_position(landed, mariadb):
    values = [json.loads(m.value) for m in landed["records"]]
    conn = mariadb.connect(autocommit=True)
    scratch = unique("rebuilt")
    try:
        with conn.cursor() as cur:
            before: dict[str, list[tuple[Any, ...]]] | None = None
            for what, pos, columns in landed["moments"]:
                tables = replay(values, pos)
                assert {t for (d, t) in tables} == set(columns), what
                assert all(d == landed["db"] for d, _ in tables)
                assert rebuilt_columns(cur, scratch, tables) == columns, f"after {what} ({pos})"
                if before is not None:  # one byte before the statement's end: the tables as they were before it
                    just_before = replay(values, LogPosition(pos.file, pos.pos - 1))
                    assert rebuilt_columns(cur, scratch, just_before) == before, f"before {what} ({pos})"
                before = columns
    finally:
        conn.close()


def test_cli_prints_the_tables_at_a_position(landed):
    what, pos, columns = landed["moments"][len(START) + 1]  # after ALTER TABLE a ADD COLUMN w ...
    assert what.startswith("ALTER TABLE a ADD COLUMN w")
    out = run_obsync("schema-history", str(landed["task"]), "--at", f"{pos.file}:{pos.pos}").stdout
    db = landed["db"]
    assert out.count("CREATE TABLE") == len(columns) == 3
    assert f"CREATE TABLE `{db}`.`a` (\n  `id` INT(11) NOT NULL AUTO_INCREMENT,\n  `v` INT(11) NULL DEFAULT '5',\n" \
           f"  `w` VARCHAR(20) CHARACTER SET utf8mb4 NOT NULL DEFAULT 'x',\n  PRIMARY KEY (`id`)\n) " \
           "DEFAULT CHARSET=utf8mb4;" in out
    js = json.loads(run_obsync("schema-history", str(landed["task"]), "--json").stdout)
    assert sorted(t["table"] for t in js) == sorted(landed["moments"][-1][2])
    bad = run_obsync("schema-history", str(landed["task"]), "--at", "nowhere", check=False)
    assert bad.returncode == 2 and "--at 'nowhere': not a log position" in bad.stderr

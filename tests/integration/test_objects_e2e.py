"""Choosing and shaping what a task syncs, from the user's side: task file in, Kafka messages out.

Match rules with overlapping include and exclude patterns, per-object topics (fixed, generated, existing),
row filters (pushed into full sync, evaluated on every change, updates crossing the filter), column
projection, DML types, tables created while the task streams, refused names, the dry run and CSV.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from obsync.connectors.kafka.client import KafkaSettings
from obsync.connectors.kafka.topics import ensure_topics
from tests.helpers.kafka import partition_count, read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task


def values(messages) -> list[dict]:
    return [json.loads(m.value) for m in messages if m.value is not None]


def rows_by_id(messages) -> dict[int, dict]:
    """Replay of a Default-format topic per primary key id."""
    state: dict[int, dict] = {}
    for v in values(messages):
        if v["recordType"] in ("ROW", "INSERT", "UPDATE"):
            state[int(v["postStruct"]["id"])] = v["postStruct"]
        elif v["recordType"] == "DELETE":
            state.pop(int(v["prevStruct"]["id"]), None)
    return state


def topics_on(kafka) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(timeout=10).topics)


@pytest.fixture
def shop_db(mariadb):
    db = unique("objs")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for t in ("orders_2024", "orders_2025", "orders_old"):
            cur.execute(f"CREATE TABLE {db}.{t} (id INT PRIMARY KEY, amount DECIMAL(10,2) NULL, "
                        "note VARCHAR(20) NULL, secret VARCHAR(20) NULL)")
        cur.execute(f"CREATE TABLE {db}.users (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(f"CREATE TABLE {db}.user2 (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(f"CREATE TABLE {db}.tmp_scratch (id INT PRIMARY KEY)")
        cur.execute(f"CREATE VIEW {db}.v_orders AS SELECT id FROM {db}.orders_2024")
        for t, n in (("orders_2024", 0), ("orders_2025", 100), ("orders_old", 200)):
            cur.executemany(f"INSERT INTO {db}.{t} VALUES (%s, %s, %s, 'x')",
                            [(n + i, None if i == 3 else i * 5, f"n{i}") for i in range(1, 7)])
        cur.executemany(f"INSERT INTO {db}.users VALUES (%s, %s)", [(1, "ann"), (2, "bob")])
        cur.execute(f"INSERT INTO {db}.user2 VALUES (1, 'x')")
        cur.execute(f"INSERT INTO {db}.tmp_scratch VALUES (1)")
    yield db, conn
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


def rule_task(tmp_path: Path, mariadb, kafka, db: str, **over) -> Path:
    orders_topic = unique("orders_all")
    objects = [
        {"match": f"{db}.orders_202[45]", "topic": orders_topic, "where": "amount >= 10",
         "columns": ["amount"]},
        {"match": f"{db}.user?", "topic": "U_${database}_${table}"},
        {"match": f"{db}.*"},
    ]
    return write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                      **{"objects": objects, "exclude": [f"{db}.tmp_*", f"{db}.user2"], **over})


def test_overlapping_include_and_exclude_rules_select_route_filter_and_project(tmp_path, mariadb, kafka, shop_db):
    db, conn = shop_db
    task_file = rule_task(tmp_path, mariadb, kafka, db)
    orders_topic = yaml.safe_load(task_file.read_text())["objects"][0]["topic"]

    # the dry run shows each table with the first rule that matches it
    listing = json.loads(run_obsync("objects", str(task_file), "--json").stdout)
    got = {(t["table"], t["rule"], t["topic"], t["where"], tuple(t["columns"] or ()), tuple(t["key"]))
           for t in listing["tables"]}
    assert got == {
        ("orders_2024", 0, orders_topic, "amount >= 10", ("id", "amount"), ("id",)),
        ("orders_2025", 0, orders_topic, "amount >= 10", ("id", "amount"), ("id",)),
        ("users", 1, f"U_{db}_users", None, (), ("id",)),
        ("orders_old", 2, f"Topic_{db}_orders_old", None, (), ("id",)),
    }
    assert listing["skipped"] == [{"database": db, "table": "v_orders", "type": "VIEW", "rule": 2}]
    text = run_obsync("objects", str(task_file)).stdout
    assert f"{db}.orders_2024" in text and "v_orders is a view" in text

    run_obsync("run", str(task_file), "--until-caught-up")
    with conn.cursor() as cur:  # incremental: an update crossing the filter each way, a delete
        cur.execute(f"UPDATE {db}.orders_2024 SET amount = 1 WHERE id = 2")  # 10 -> 1: leaves the filter
        cur.execute(f"UPDATE {db}.orders_2024 SET amount = 50 WHERE id = 1")  # 5 -> 50: enters it
        cur.execute(f"UPDATE {db}.orders_2025 SET amount = 99, note = 'y' WHERE id = 104")  # stays in
        cur.execute(f"UPDATE {db}.orders_2025 SET amount = NULL WHERE id = 105")  # NULL: out
        cur.execute(f"INSERT INTO {db}.orders_2025 VALUES (107, NULL, 'n', 'x'), (108, 70, 'n', 'x')")
        cur.execute(f"DELETE FROM {db}.orders_2024 WHERE id IN (4, 5)")  # both in the filter
        cur.execute(f"INSERT INTO {db}.tmp_scratch VALUES (2)")
        cur.execute(f"INSERT INTO {db}.user2 VALUES (2, 'y')")
    run_obsync("run", str(task_file), "--until-caught-up")

    msgs = read_topic(kafka.bootstrap_servers, orders_topic)
    vals = values(msgs)
    assert all(set(v["postStruct"] or v["prevStruct"]) == {"id", "amount"} for v in vals)  # projected
    ops = sorted((v["recordType"], int((v["postStruct"] or v["prevStruct"])["id"])) for v in vals)
    full_sync = [("ROW", i) for i in (2, 4, 5, 6, 102, 104, 105, 106)]  # amount >= 10, NULL out
    incremental = [("DELETE", 2), ("INSERT", 1), ("UPDATE", 104), ("DELETE", 105), ("INSERT", 108),
                   ("DELETE", 4), ("DELETE", 5)]
    assert ops == sorted(full_sync + incremental)
    replayed = rows_by_id(msgs)
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, amount FROM {db}.orders_2024 WHERE amount >= 10 UNION ALL "
                    f"SELECT id, amount FROM {db}.orders_2025 WHERE amount >= 10")
        expect = {i: {"id": str(i), "amount": str(a)} for i, a in cur.fetchall()}
    assert replayed == expect
    # the other rules
    users = values(read_topic(kafka.bootstrap_servers, f"U_{db}_users"))
    assert sorted(v["postStruct"]["name"] for v in users) == ["ann", "bob"]
    old = values(read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders_old"))
    assert len(old) == 6 and set(old[0]["postStruct"]) == {"id", "amount", "note", "secret"}
    # excluded tables and the view get no topic and no messages
    assert not {f"Topic_{db}_tmp_scratch", f"U_{db}_user2", f"Topic_{db}_user2", f"Topic_{db}_v_orders"} \
        & topics_on(kafka)


def test_dml_types_select_the_operations_sent(tmp_path, mariadb, kafka, shop_db):
    db, conn = shop_db
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.users"],
                           sync={"full": False, "incremental": True, "dml": ["insert", "delete"]})
    run_obsync("run", str(task_file), "--until-caught-up")
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.users VALUES (3, 'cy')")
        cur.execute(f"UPDATE {db}.users SET name = 'ann2' WHERE id = 1")
        cur.execute(f"DELETE FROM {db}.users WHERE id = 2")
    run_obsync("run", str(task_file), "--until-caught-up")
    got = [(v["recordType"], (v["postStruct"] or v["prevStruct"])["id"])
           for v in values(read_topic(kafka.bootstrap_servers, f"Topic_{db}_users"))]
    assert sorted(got) == [("DELETE", "2"), ("INSERT", "3")]


def test_a_table_created_while_streaming_is_picked_up_without_a_restart(tmp_path, mariadb, kafka, shop_db):
    db, conn = shop_db
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                           objects=[{"match": f"{db}.users"}, {"match": f"{db}.live_*"}],
                           exclude=[f"{db}.live_skip*"])
    proc = subprocess.Popen(obsync_cmd("run", str(task_file)), stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_topic(kafka.bootstrap_servers, f"Topic_{db}_users")) < 2:
            time.sleep(0.5)
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {db}.live_a (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute(f"CREATE TABLE {db}.live_skip1 (id INT PRIMARY KEY)")
            cur.executemany(f"INSERT INTO {db}.live_a VALUES (%s, %s)", [(i, f"v{i}") for i in range(50)])
            cur.execute(f"INSERT INTO {db}.live_skip1 VALUES (1)")
            cur.execute(f"UPDATE {db}.live_a SET v = 'changed' WHERE id = 7")
            cur.execute(f"INSERT INTO {db}.users VALUES (9, 'zed')")
        topic = f"Topic_{db}_live_a"
        deadline = time.monotonic() + 60
        msgs = []
        while time.monotonic() < deadline:
            if topic in topics_on(kafka):
                msgs = read_topic(kafka.bootstrap_servers, topic)
                if len(msgs) >= 51:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert partition_count(kafka.bootstrap_servers, topic) == 3  # created with the task's settings
    assert rows_by_id(msgs) == {i: {"id": str(i), "v": "changed" if i == 7 else f"v{i}"} for i in range(50)}
    assert f"Topic_{db}_live_skip1" not in topics_on(kafka)
    users = rows_by_id(read_topic(kafka.bootstrap_servers, f"Topic_{db}_users"))
    assert users[9] == {"id": "9", "name": "zed"}


def test_existing_topic_must_exist_and_is_never_created(tmp_path, mariadb, kafka, shop_db):
    db, _ = shop_db
    missing = unique("legacy")
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                           objects=[{"match": f"{db}.users", "existing_topic": missing}])
    proc = run_obsync("run", str(task_file), "--until-caught-up", check=False)  # refused by the precheck
    assert proc.returncode != 0
    assert f"topic {missing!r}" in proc.stdout + proc.stderr and "never creates" in proc.stdout + proc.stderr
    assert missing not in topics_on(kafka)
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [missing], 2, 1)
    run_obsync("run", str(task_file), "--until-caught-up")
    assert sorted(v["postStruct"]["name"] for v in values(read_topic(kafka.bootstrap_servers, missing))) == [
        "ann", "bob"]
    assert partition_count(kafka.bootstrap_servers, missing) == 2


def test_a_table_whose_name_cannot_be_carried_is_refused_by_name_unless_excluded(tmp_path, mariadb, kafka,
                                                                                shop_db):
    db, conn = shop_db
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {db}.`bad name` (id INT PRIMARY KEY)")
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                           objects=[{"match": f"{db}.*"}], exclude=[f"{db}.tmp_*"])
    proc = run_obsync("objects", str(task_file), check=False)
    assert proc.returncode == 2
    assert f"selects table '{db}'.'bad name', whose name obsync cannot carry: it contains space" in proc.stderr
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                           objects=[{"match": f"{db}.*"}], exclude=[f"{db}.tmp_*", f"{db}.bad*"])
    listing = json.loads(run_obsync("objects", str(task_file), "--json").stdout)
    assert "bad name" not in {t["table"] for t in listing["tables"]}


def test_an_unsupported_filter_or_unknown_column_is_refused_before_anything_is_written(tmp_path, mariadb,
                                                                                      kafka, shop_db):
    db, _ = shop_db
    for obj, message in [
        ({"match": f"{db}.users", "where": "id IN (SELECT id FROM mysql.user)"}, "objects.0"),
        ({"match": f"{db}.users", "where": "id = 1; DROP TABLE x"}, "objects.0"),
        ({"match": f"{db}.users", "columns": ["id", "nmae"]}, "has no column 'nmae'"),
    ]:
        task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[], objects=[obj])
        proc = run_obsync("run", str(task_file), "--until-caught-up", check=False)
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        # (the precheck's validate-only CreateTopics makes tansu create the topic: a tansu gap, see README)
        if f"Topic_{db}_users" in topics_on(kafka):
            assert read_topic(kafka.bootstrap_servers, f"Topic_{db}_users") == []


def test_csv_export_and_import_round_trip_with_line_numbers_in_errors(tmp_path, mariadb, kafka, shop_db):
    db, _ = shop_db
    task_file = rule_task(tmp_path, mariadb, kafka, db)
    data0 = yaml.safe_load(task_file.read_text())
    out = tmp_path / "objects.csv"
    run_obsync("objects", str(task_file), "--export-csv", str(out))
    lines = out.read_text().splitlines()
    assert lines[0] == "database,table,topic,where,columns,sharding_columns"
    assert f"{db},orders_2024,{data0['objects'][0]['topic']},amount >= 10,amount," in lines
    assert len(lines) == 5
    new_task = tmp_path / "from_csv.yaml"
    run_obsync("objects", str(task_file), "--import-csv", str(out), "--output", str(new_task))
    data = yaml.safe_load(new_task.read_text())
    assert {o["match"] for o in data["objects"]} == {f"{db}.orders_2024", f"{db}.orders_2025", f"{db}.users",
                                                     f"{db}.orders_old"}
    before = json.loads(run_obsync("objects", str(task_file), "--json").stdout)["tables"]
    after = json.loads(run_obsync("objects", str(new_task), "--json").stdout)["tables"]
    strip = lambda ts: {(t["table"], t["topic"], t["where"], tuple(t["columns"] or ()), tuple(t["key"]))  # noqa: E731 - a one-line local helper
                        for t in ts}
    assert strip(before) == strip(after)
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1] + "\n" + f"{db},users,x y z,,,\n")
    proc = run_obsync("objects", str(task_file), "--import-csv", str(bad), check=False)
    assert proc.returncode == 2 and f"{bad} line 3: topic:" in proc.stderr


def test_a_table_renamed_into_the_rules_gets_its_existing_rows_then_its_changes(tmp_path, mariadb, kafka,
                                                                                shop_db):
    db, conn = shop_db
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {db}.zz (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.executemany(f"INSERT INTO {db}.zz VALUES (%s, %s)", [(i, f"v{i}") for i in range(300)])
    task_file = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[],
                           objects=[{"match": f"{db}.users"}, {"match": f"{db}.in_*"}])
    proc = subprocess.Popen(obsync_cmd("run", str(task_file)), stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    topic = f"Topic_{db}_in_zz"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_topic(kafka.bootstrap_servers, f"Topic_{db}_users")) < 2:
            time.sleep(0.5)
        with conn.cursor() as cur:
            cur.execute(f"RENAME TABLE {db}.zz TO {db}.in_zz")
            cur.execute(f"INSERT INTO {db}.in_zz VALUES (1000, 'new')")
            cur.execute(f"UPDATE {db}.in_zz SET v = 'changed' WHERE id IN (1, 299)")
            cur.execute(f"DELETE FROM {db}.in_zz WHERE id = 2")
        expect = {i: {"id": str(i), "v": "changed" if i in (1, 299) else f"v{i}"} for i in range(300) if i != 2}
        expect[1000] = {"id": "1000", "v": "new"}
        msgs: list = []
        while time.monotonic() < deadline + 60:
            if topic in topics_on(kafka):
                msgs = read_topic(kafka.bootstrap_servers, topic)
                if rows_by_id(msgs) == expect:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert rows_by_id(msgs) == expect
    idents = [(m.headers["obsync.pos"], m.headers["obsync.seq"]) for m in msgs]
    assert len(idents) == len(set(idents))  # nothing written twice
    assert "renamed into the task's rules" in err and "backfill of its rows queued" in err

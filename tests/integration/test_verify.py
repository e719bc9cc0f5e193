"""`obsync verify` against real servers (MariaDB, tansu): a task syncs tables through `obsync run`, then rows are
taken from, added to and changed in the topic (as a rogue producer would) or in the source (with the binary log
off for that session, so the task cannot see it), and the report must name exactly those keys."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from tests.helpers.kafka import read_topic
from tests.helpers.schema_registry import TestSchemaRegistry
from tests.helpers.tasks import run_obsync, unique, write_task

KEYED = "CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, amount DECIMAL(12,2) NULL)"
BAG = "CREATE TABLE {t} (a INT NOT NULL, b VARCHAR(20) NULL)"
ROWS = [(i, f"name {i}", f"{i}.50") for i in range(1, 11)]
BAG_ROWS = [(1, "x"), (1, "x"), (2, None), (3, "y")]


def verify(task: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = run_obsync("verify", str(task), "--json", "--recheck-timeout", "20", *args, check=False)
    assert proc.returncode in (0, 1), f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def table(report: dict[str, Any], name: str) -> dict[str, Any]:
    (t,) = [t for t in report["tables"] if t["table"] == name]
    return t


def fill(cur: Any, t: str, keyed: bool = True) -> None:
    if keyed:
        cur.execute(KEYED.format(t=t))
        cur.executemany(f"INSERT INTO {t} VALUES (%s, %s, %s)", ROWS)
    else:
        cur.execute(BAG.format(t=t))
        cur.executemany(f"INSERT INTO {t} VALUES (%s, %s)", BAG_ROWS)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, mariadb: Any, kafka: Any) -> Iterator[dict[str, Any]]:
    """Six tables synced by one Default-format task: full sync, then changes from the binlog (an update, a key
    change, a delete, inserts, keyless changes), caught up."""
    db = unique("ver")
    names = ["clean", "topic", "source", "bag", "bag2", "text"]
    base = tmp_path_factory.mktemp("verify")
    task = write_task(base / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.{n}" for n in names],
                      source={"host": mariadb.host, "port": mariadb.port, "user": mariadb.user,
                              "password": mariadb.password, "server_id": 7611})
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for n in names:
            fill(cur, f"{db}.{n}", keyed=not n.startswith("bag"))
        run_obsync("run", str(task), "--until-caught-up")
        for n in names:
            t = f"{db}.{n}"
            if n.startswith("bag"):
                cur.execute(f"DELETE FROM {t} WHERE a = 1 LIMIT 1")
                cur.execute(f"INSERT INTO {t} VALUES (4, 'z'), (4, 'z')")
                cur.execute(f"UPDATE {t} SET b = 'w' WHERE a = 3")
            else:
                cur.execute(f"UPDATE {t} SET amount = NULL WHERE id = 2")
                cur.execute(f"UPDATE {t} SET id = 30 WHERE id = 3")
                cur.execute(f"DELETE FROM {t} WHERE id = 1")
                cur.execute(f"INSERT INTO {t} VALUES (11, 'eleven', 11.00)")
        run_obsync("run", str(task), "--until-caught-up")
    yield {"db": db, "task": task, "task_name": yaml.safe_load(task.read_text())["name"], "kafka": kafka,
           "mariadb": mariadb}


def test_a_clean_sync_verifies_clean(shop: dict[str, Any]) -> None:
    db = shop["db"]
    code, report, _ = verify(shop["task"], "--tables", f"{db}.clean", f"{db}.bag")
    assert code == 0 and report["match"] is True
    clean, bag = table(report, f"{db}.clean"), table(report, f"{db}.bag")
    assert (clean["rows_compared"], clean["missing_in_kafka"], clean["extra_in_kafka"], clean["different"]) == (
        10, 0, 0, 0)
    assert clean["compared_as"] == "rows by key" and clean["key"] == ["id"]
    assert bag["compared_as"] == "multiset of rows" and bag["rows_compared"] == 5 and bag["match"]
    assert report["cut"]["exact"] is True


def _partition_of(bootstrap: str, topic: str, key: bytes) -> int:
    (p,) = {m.partition for m in read_topic(bootstrap, topic) if m.key == key}
    return p


def _default_message(db: str, t: str, kind: str, prev: dict[str, Any] | None, post: dict[str, Any] | None) -> bytes:
    return json.dumps({"prevStruct": prev, "postStruct": post, "recordType": kind,
                       "allMetaData": {"db": db, "table_name": t}}).encode()


def test_rows_taken_from_added_to_and_changed_in_the_topic_are_reported(shop: dict[str, Any]) -> None:
    db, bootstrap = shop["db"], shop["kafka"].bootstrap_servers
    topic = f"Topic_{db}_topic"
    rogue = Producer({"bootstrap.servers": bootstrap})
    row4 = {"id": "4", "name": "name 4", "amount": "4.50"}
    row5 = {"id": "5", "name": "name 5", "amount": "5.50"}
    rogue.produce(topic, _default_message(db, "topic", "DELETE", row4, None), b"[4]",
                  partition=_partition_of(bootstrap, topic, b"[4]"))
    rogue.produce(topic, _default_message(db, "topic", "UPDATE", row5, {**row5, "name": "forged"}), b"[5]",
                  partition=_partition_of(bootstrap, topic, b"[5]"))
    rogue.produce(topic, _default_message(db, "topic", "INSERT", None, {"id": "99", "name": "n", "amount": None}),
                  b"[99]", partition=0)
    assert rogue.flush(30) == 0

    code, report, _ = verify(shop["task"], "--tables", f"{db}.topic")
    t = table(report, f"{db}.topic")
    assert code == 1 and report["match"] is False
    assert (t["missing_in_kafka"], t["extra_in_kafka"], t["different"], t["rows_compared"]) == (1, 1, 1, 10)
    by_kind = {d["kind"]: d for d in t["differences"]}
    assert by_kind["missing"]["key"] == {"id": "4"} and by_kind["missing"]["source"] == row4
    assert by_kind["extra"]["key"] == {"id": "99"} and by_kind["extra"]["kafka"]["id"] == "99"
    assert by_kind["extra"]["partition"] == 0 and by_kind["extra"]["position"] is None  # no obsync.pos header
    assert by_kind["different"]["key"] == {"id": "5"}
    assert by_kind["different"]["columns"] == {"name": {"source": "name 5", "kafka": "forged"}}


def test_rows_changed_in_the_source_behind_the_task_are_reported(shop: dict[str, Any]) -> None:
    db = shop["db"]
    with shop["mariadb"].connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")  # the task cannot see these
        cur.execute(f"DELETE FROM {db}.source WHERE id = 6")
        cur.execute(f"INSERT INTO {db}.source VALUES (77, 'ghost', 1.00)")
        cur.execute(f"UPDATE {db}.source SET amount = 8.75 WHERE id = 8")
    code, report, _ = verify(shop["task"], "--tables", f"{db}.source")
    t = table(report, f"{db}.source")
    assert code == 1
    assert (t["missing_in_kafka"], t["extra_in_kafka"], t["different"], t["rows_compared"]) == (1, 1, 1, 10)
    by_kind = {d["kind"]: d for d in t["differences"]}
    assert by_kind["missing"]["key"] == {"id": "77"}
    assert by_kind["missing"]["source"] == {"id": "77", "name": "ghost", "amount": "1.00"}
    extra = by_kind["extra"]
    assert extra["key"] == {"id": "6"} and extra["kafka"] == {"id": "6", "name": "name 6", "amount": "6.50"}
    assert extra["position"][0] == "snap"  # its last message is the full-sync row
    diff = by_kind["different"]
    assert diff["key"] == {"id": "8"} and diff["columns"] == {"amount": {"source": "8.75", "kafka": "8.50"}}


def test_a_table_without_a_key_is_compared_as_a_multiset(shop: dict[str, Any]) -> None:
    db = shop["db"]
    with shop["mariadb"].connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"INSERT INTO {db}.bag2 VALUES (2, NULL)")  # a second copy of a row: one missing in Kafka
        cur.execute(f"DELETE FROM {db}.bag2 WHERE a = 4 LIMIT 1")  # one copy of two: one extra in Kafka
    code, report, _ = verify(shop["task"], "--tables", f"{db}.bag2")
    t = table(report, f"{db}.bag2")
    assert code == 1 and t["compared_as"] == "multiset of rows"
    assert (t["missing_in_kafka"], t["extra_in_kafka"], t["different"]) == (1, 1, 0)
    assert sorted((d["kind"], json.dumps(d["key"], sort_keys=True)) for d in t["differences"]) == [
        ("extra", json.dumps({"a": "4", "b": "z"}, sort_keys=True)),
        ("missing", json.dumps({"a": "2", "b": None}, sort_keys=True))]


def test_what_cannot_run_exits_2_without_the_password(shop: dict[str, Any], tmp_path: Path, mariadb: Any,
                                                      kafka: Any) -> None:
    db = shop["db"]
    bad = write_task(tmp_path / "bad.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.clean"],
                     source={"host": mariadb.host, "port": mariadb.port, "user": mariadb.user,
                             "password": "Wr0ng-s3cret", "server_id": 7612})
    proc = run_obsync("verify", str(bad), check=False)
    assert proc.returncode == 2
    assert "cannot connect to" in proc.stderr and f"{mariadb.host}:{mariadb.port}" in proc.stderr
    assert "Wr0ng-s3cret" not in proc.stderr + proc.stdout
    proc = run_obsync("verify", str(shop["task"]), "--tables", "nowhere.*", check=False)
    assert proc.returncode == 2 and "--tables nowhere.*: no table the task syncs matches" in proc.stderr


def _shown(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))


def test_the_text_report_names_each_difference_with_its_key_values_and_last_message(shop: dict[str, Any],
                                                                                    tmp_path: Path) -> None:
    """What a user reads: per table the rows compared and messages read, then each difference with its key,
    the values (both, column by column, for a changed row) and where the last message for the key is."""
    db, bootstrap = shop["db"], shop["kafka"].bootstrap_servers
    with shop["mariadb"].connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")  # the task cannot see these
        cur.execute(f"DELETE FROM {db}.text WHERE id = 6")
        cur.execute(f"INSERT INTO {db}.text VALUES (77, 'ghost', NULL)")
        cur.execute(f"UPDATE {db}.text SET name = 'eight', amount = 8.75 WHERE id = 8")
    messages = read_topic(bootstrap, f"Topic_{db}_text")
    clean_messages = len(read_topic(bootstrap, f"Topic_{db}_clean"))

    def last(key: bytes) -> str:
        m = [m for m in messages if m.key == key][-1]
        return (f"(last message: partition {m.partition} offset {m.offset}, "
                f"position {_shown(json.loads(m.headers['obsync.pos']))})")

    proc = run_obsync("verify", str(shop["task"]), "--tables", f"{db}.text", f"{db}.clean", "--report",
                      str(tmp_path / "r.json"), check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    cut = json.loads((tmp_path / "r.json").read_text())["cut"]
    lines = proc.stdout.splitlines()
    m = shop["mariadb"]
    assert lines[0] == f"verify {shop['task_name']}: source mariadb {m.host}:{m.port} at {cut['file']}:{cut['pos']}"
    assert lines[1:-1] == [
        f"{db}.clean -> Topic_{db}_clean: 10 rows compared, {clean_messages} messages read: match",
        f"{db}.text -> Topic_{db}_text: 10 rows compared, {len(messages)} messages read: 1 missing in Kafka, "
        "1 extra in Kafka, 1 different",
        '  extra in Kafka: {"id": "6"} kafka {"id": "6", "name": "name 6", "amount": "6.50"} ' + last(b"[6]"),
        '  missing in Kafka: {"id": "77"} source {"id": "77", "name": "ghost", "amount": null}',
        '  different: {"id": "8"} ' + last(b"[8]"),
        '    name: source "eight", kafka "name 8"',
        '    amount: source "8.75", kafka "8.50"',
        "  note: the task is not running: its topics were read as they are",
    ]
    assert re.fullmatch(r"result: 1 of 2 tables differ \(\d+\.\d s\)", lines[-1]), lines[-1]

    proc = run_obsync("verify", str(shop["task"]), "--tables", f"{db}.text", "--max-differences", "1", "-q",
                      check=False)
    assert proc.returncode == 1 and proc.stderr == ""
    assert proc.stdout.splitlines()[1:-1] == [lines[2], lines[3], "  ... 2 more (--max-differences)", lines[-2]]


# ------------------------------------------------------------------------------------------- every format

FORMATS = ["default", "default_extend_column_type", "canal", "dataworks", "shareplex", "debezium",
           "debezium_flatten", "debezium_smt", "avro", "avro_registry"]


@pytest.fixture(scope="module")
def per_format(tmp_path_factory: pytest.TempPathFactory, mariadb: Any, kafka: Any) -> Iterator[dict[str, Any]]:
    """One small table per format, each synced by its own task (full sync, then changes from the binlog; the
    tasks run side by side), then one row changed behind the tasks (binlog off) and every task verified (side by
    side): per format, the report must name that row alone, so every other row (full-sync and binlog messages
    alike) was decoded to exactly the source's image."""
    db = unique("verfmt")
    tasks: dict[str, Path] = {}

    def each(*args: str, check: bool = True) -> dict[str, Any]:
        with ThreadPoolExecutor(len(tasks)) as pool:
            runs = {fmt: pool.submit(run_obsync, *args[:1], str(p), *args[1:], check=check)
                    for fmt, p in tasks.items()}
            return {fmt: run.result() for fmt, run in runs.items()}

    with TestSchemaRegistry() as reg, mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        for n, fmt in enumerate(FORMATS):
            fill(cur, f"{db}.{fmt}")
            options = {"schema_registry": {"url": reg.url}} if fmt == "avro_registry" else {}
            tasks[fmt] = write_task(
                tmp_path_factory.mktemp(fmt) / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.{fmt}"],
                format=fmt.removesuffix("_registry"), format_options=options,
                source={"host": mariadb.host, "port": mariadb.port, "user": mariadb.user,
                        "password": mariadb.password, "server_id": 7620 + n})
        each("run", "--until-caught-up")
        for fmt in FORMATS:
            t = f"{db}.{fmt}"
            cur.execute(f"UPDATE {t} SET amount = NULL WHERE id = 2")
            cur.execute(f"UPDATE {t} SET id = 30 WHERE id = 3")
            cur.execute(f"DELETE FROM {t} WHERE id = 1")
        each("run", "--until-caught-up")
        cur.execute("SET SESSION sql_log_bin = 0")
        for fmt in FORMATS:
            cur.execute(f"UPDATE {db}.{fmt} SET name = 'changed' WHERE id = 7")
        posts_before = sum(1 for method, _ in reg.requests if method == "POST")
        verified = each("verify", "--json", "--recheck-timeout", "20", check=False)
        posts_after = sum(1 for method, _ in reg.requests if method == "POST")
        yield {"db": db, "verified": verified, "registered": posts_after - posts_before}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_names_exactly_the_row_changed_behind_the_task(per_format: dict[str, Any], fmt: str) -> None:
    db, proc = per_format["db"], per_format["verified"][fmt]
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    t = table(json.loads(proc.stdout), f"{db}.{fmt}")
    assert (t["rows_compared"], t["missing_in_kafka"], t["extra_in_kafka"], t["different"]) == (9, 0, 0, 1), t
    (d,) = t["differences"]
    assert d["key"]["id"] in (7, "7") and list(d["columns"]) == ["name"]
    assert d["columns"]["name"] == {"source": "changed", "kafka": "name 7"}
    assert d["position"][0] == "snap" and d["partition"] is not None
    assert per_format["registered"] == 0  # verify registers no schema

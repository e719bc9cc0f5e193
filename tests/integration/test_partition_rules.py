"""Partition rules end to end: one workload on MariaDB, three tasks (hash, table, one) through `obsync run
--until-caught-up` into 4-partition topics on tansu; where every change, key and DDL statement lands."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from obsync.connectors.kafka.partitioner import partition_for
from obsync.core.positions import position_from_header
from tests.helpers.kafka import Msg, read_partition
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task

PARTITIONS = 4
FIXED = 2  # the One rule's partition (not the default 0, so that the setting is seen to work)
RULES = ("hash", "table", "one")
TABLES = ("orders", "items", "logs")


@pytest.fixture(scope="module")
def landed(tmp_path_factory, mariadb, kafka):
    """Run the workload under each rule; rule -> table -> messages (partition by partition, offset order)."""
    tmp = tmp_path_factory.mktemp("rules")
    db = unique("rules")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.orders (id INT PRIMARY KEY, cust INT NOT NULL, v INT NOT NULL)")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(f"CREATE TABLE {db}.logs (msg VARCHAR(20), n INT)")  # no key at all
    tasks = {}
    for i, rule in enumerate(RULES):
        path = tmp / rule / "task.yaml"
        path.parent.mkdir()
        tasks[rule] = write_task(
            path, db_server=mariadb, kafka=kafka, tables=[], name=unique(rule),
            source={"host": mariadb.host, "port": mariadb.port, "user": mariadb.user,
                    "password": mariadb.password, "server_id": 7100 + i},
            sync={"full": False, "incremental": True, "ddl": True},
            objects=[{"match": f"{db}.orders", "sharding_columns": ["cust"]},
                     {"match": f"{db}.items"}, {"match": f"{db}.logs"}],
            topic=f"{rule}_${{database}}_${{table}}", topics={"partitions": PARTITIONS, "replication_factor": 1},
            partitioning=rule, fixed_partition=FIXED)
    run_all(tasks)  # fixes where incremental sync starts, and the tables' schemas there: before the workload
    workload(conn, db)
    run_all(tasks)
    conn.close()
    return db, read_all(kafka.bootstrap_servers, {(rule, t): f"{rule}_{db}_{t}" for rule in RULES for t in TABLES})


def read_all(bootstrap: str, topics: dict[tuple[str, str], str]) -> dict[str, dict[str, list[Msg]]]:
    """(rule, table) -> topic, read as rule -> table -> messages; every partition read at once."""
    jobs = [(name, p) for name in topics for p in range(PARTITIONS)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        parts = list(pool.map(lambda job: read_partition(bootstrap, topics[job[0]], job[1]), jobs))
    out: dict[str, dict[str, list[Msg]]] = defaultdict(dict)
    for ((rule, table), _), msgs in zip(jobs, parts, strict=True):
        out[rule].setdefault(table, []).extend(msgs)
    return dict(out)


def run_all(tasks: dict[str, Path]) -> None:
    """`obsync run --until-caught-up` for every task at once."""
    procs = {rule: subprocess.Popen(obsync_cmd("run", str(task), "--until-caught-up"), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
             for rule, task in tasks.items()}
    for rule, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{rule}: {err[-4000:]}"


def workload(conn, db: str) -> None:
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.executemany(f"INSERT INTO {db}.orders VALUES (%s, %s, 0)", [(i, i % 4) for i in range(1, 13)])
        cur.executemany(f"INSERT INTO {db}.items VALUES (%s, %s)", [(i, f"item {i}") for i in range(1, 7)])
        cur.execute(f"INSERT INTO {db}.logs VALUES ('a', 1), ('b', 2)")
        cur.execute("COMMIT")
        cur.execute(f"UPDATE {db}.orders SET v = v + 1 WHERE id <= 6")
        cur.execute("BEGIN")
        cur.execute(f"UPDATE {db}.orders SET cust = cust + 10 WHERE id IN (2, 3)")  # sharding column: moves
        cur.execute(f"UPDATE {db}.orders SET id = 104 WHERE id = 4")  # primary key only: same cust
        cur.execute(f"DELETE FROM {db}.orders WHERE id = 5")
        cur.execute(f"UPDATE {db}.items SET id = 101 WHERE id = 1")
        cur.execute(f"UPDATE {db}.logs SET msg = 'c' WHERE n = 1")
        cur.execute("COMMIT")
        cur.execute(f"ALTER TABLE {db}.orders ADD COLUMN note VARCHAR(10) NULL")
        cur.execute(f"INSERT INTO {db}.orders VALUES (50, 1, 0, 'x')")
        cur.execute(f"RENAME TABLE {db}.orders TO {db}.orders_x, {db}.items TO {db}.items_x")
        cur.execute(f"RENAME TABLE {db}.orders_x TO {db}.orders, {db}.items_x TO {db}.items")
        cur.execute(f"INSERT INTO {db}.items VALUES (60, 'after rename')")
        # OceanBase's delayed deletion writes two identical TRUNCATEs in one transaction. MariaDB commits each
        # DDL on its own; the reader knows a transaction by its GTID, so give both statements one GTID.
        seq = uuid.uuid4().int % 10**9 + 1
        cur.execute("SET SESSION gtid_domain_id = 77")
        for _ in range(2):
            cur.execute(f"SET SESSION gtid_seq_no = {seq}")
            cur.execute(f"TRUNCATE TABLE {db}.items")
        cur.execute("SET SESSION gtid_domain_id = 0")
        cur.execute(f"INSERT INTO {db}.items VALUES (61, 'after truncate')")


def value(m: Msg) -> dict:
    return json.loads(m.value)


def order_key(m: Msg) -> tuple:
    return position_from_header(m.headers["obsync.pos"]).sort_key, int(m.headers["obsync.seq"])


def data(msgs: list[Msg]) -> list[Msg]:
    return [m for m in msgs if value(m)["recordType"] != "DDL"]


def ddl_places(msgs_by_table: dict[str, list[Msg]]) -> dict[str, Counter]:
    """DDL statement -> how many times it landed in each (table's topic, partition)."""
    out: dict[str, Counter] = defaultdict(Counter)
    for table, msgs in msgs_by_table.items():
        for m in msgs:
            v = value(m)
            if v["recordType"] == "DDL":
                out[v["postStruct"]["ddl"]][(table, m.partition)] += 1
    return out


def check_keys_in_one_partition_in_commit_order(msgs: list[Msg]) -> None:
    partition_of: dict[bytes, int] = {}
    last: dict[bytes, tuple] = {}
    for m in data(msgs):
        if m.key is None:
            continue
        assert partition_of.setdefault(m.key, m.partition) == m.partition, f"key {m.key!r} in two partitions"
        assert m.key not in last or order_key(m) > last[m.key], f"key {m.key!r} out of commit order"
        last[m.key] = order_key(m)


@pytest.mark.parametrize("rule", RULES)
def test_every_change_of_a_key_lands_in_one_partition_in_commit_order(landed, rule):
    _, got = landed
    for table in TABLES:
        check_keys_in_one_partition_in_commit_order(got[rule][table])
    # the same changes under every rule (Hash alone splits the keyless table's update: see below)
    kinds = Counter(value(m)["recordType"] for t in ("orders", "items") for m in data(got[rule][t]))
    assert kinds == {
        "INSERT": 12 + 6 + 2 + 1 + 1 + 1 + 2,  # rows; moved by cust; orders' and items' new ids; 50; 60 and 61
        "UPDATE": 6,
        "DELETE": 2 + 1 + 1 + 1,  # moved by cust; orders' and items' old ids; the deleted row
    }


def test_hash_places_rows_by_their_message_key(landed):
    _, got = landed
    for table in ("orders", "items"):
        for m in data(got["hash"][table]):
            assert m.partition == partition_for(m.key, PARTITIONS)
    # a table without any key: by the hash of the whole row, so an update is a delete of the old image
    # (in its partition) and an insert of the new one (in its own)
    logs = sorted(data(got["hash"]["logs"]), key=order_key)
    for m in logs:
        v = value(m)
        row = v["postStruct"] or v["prevStruct"]
        image = json.dumps({"msg": row["msg"], "n": int(row["n"])}, sort_keys=True).encode()
        assert m.key is None and m.partition == partition_for(image, PARTITIONS)
    assert [(value(m)["recordType"], (value(m)["postStruct"] or value(m)["prevStruct"])["msg"]) for m in logs] == [
        ("INSERT", "a"), ("INSERT", "b"), ("DELETE", "a"), ("INSERT", "c")]


def test_sharding_columns_are_the_key_and_a_change_of_them_moves_the_row(landed):
    _, got = landed
    for rule in RULES:
        orders = sorted(data(got[rule]["orders"]), key=order_key)
        for m in orders:
            v = value(m)
            row = v["postStruct"] or v["prevStruct"]
            assert m.key == f"[{row['cust']}]".encode()
            assert v["allMetaData"]["record_primary_key"] == "id"
            assert v["allMetaData"]["record_primary_value"] == row["id"]
        moved = [(value(m)["recordType"], m.key, m.partition) for m in orders
                 if (value(m)["postStruct"] or value(m)["prevStruct"])["id"] == "2"]
        assert [(k, key) for k, key, _ in moved] == [("INSERT", b"[2]"), ("UPDATE", b"[2]"), ("DELETE", b"[2]"),
                                                     ("INSERT", b"[12]")]
        if rule == "hash":
            assert [p for *_, p in moved] == [partition_for(b"[2]", 4)] * 3 + [partition_for(b"[12]", 4)]
        # a change of the primary key alone: delete and insert under the same message key
        renumbered = [(value(m)["recordType"], value(m)["allMetaData"]["record_primary_value"], m.key)
                      for m in orders if value(m)["allMetaData"]["record_primary_value"] in ("4", "104")]
        assert renumbered == [("INSERT", "4", b"[0]"), ("UPDATE", "4", b"[0]"), ("DELETE", "4", b"[0]"),
                              ("INSERT", "104", b"[0]")]


def test_table_puts_each_table_in_the_partition_of_its_name(landed):
    db, got = landed
    for table in TABLES:
        assert {m.partition for m in data(got["table"][table])} == {partition_for(f"{db}.{table}".encode(), 4)}


def test_one_keeps_the_whole_stream_in_the_fixed_partition_in_commit_order_grouped_by_transaction(landed):
    _, got = landed
    for table in TABLES:
        msgs = got["one"][table]
        assert {m.partition for m in msgs} == {FIXED}
        assert [order_key(m) for m in msgs] == sorted(order_key(m) for m in msgs)
        txns = [value(m)["allMetaData"]["uniqueId"] for m in msgs]
        runs = [t for i, t in enumerate(txns) if i == 0 or txns[i - 1] != t]
        assert len(runs) == len(set(runs)), f"a transaction is split in {table}: {runs}"
    assert len(data(got["one"]["logs"])) == 3  # the keyless update stays one UPDATE


def test_ddl_placement_per_rule(landed):
    db, got = landed
    alter = f"ALTER TABLE {db}.orders ADD COLUMN note VARCHAR(10) NULL"
    renames = (f"RENAME TABLE {db}.orders TO {db}.orders_x, {db}.items TO {db}.items_x",
               f"RENAME TABLE {db}.orders_x TO {db}.orders, {db}.items_x TO {db}.items")
    truncate = f"TRUNCATE TABLE {db}.items"
    orders_p, items_p = (partition_for(f"{db}.{t}".encode(), PARTITIONS) for t in ("orders", "items"))
    every = {t: [(t, p) for p in range(PARTITIONS)] for t in ("orders", "items")}
    expected = {  # rule -> (ALTER of one table, RENAME of two tables, TRUNCATE written twice in one transaction)
        "hash": (every["orders"], every["orders"] + every["items"], every["items"]),
        "table": ([("orders", orders_p)], [("orders", orders_p), ("items", items_p)], [("items", items_p)]),
        "one": ([("orders", FIXED)], [("orders", FIXED), ("items", FIXED)], [("items", FIXED)]),
    }
    for rule, (on_alter, on_rename, on_truncate) in expected.items():
        places = ddl_places(got[rule])
        assert sorted(places) == sorted([alter, *renames, truncate]), rule
        assert places[alter] == Counter(on_alter), rule
        for rename in renames:
            assert places[rename] == Counter(on_rename), rule
        assert places[truncate] == Counter(on_truncate), rule  # each place once: the repeat is not delivered


def test_an_unknown_sharding_column_or_a_fixed_partition_beyond_the_topic_stops_the_start(tmp_path, mariadb,
                                                                                           kafka, landed):
    db, _ = landed
    common = dict(db_server=mariadb, kafka=kafka, tables=[f"{db}.orders"],
                  topics={"partitions": PARTITIONS, "replication_factor": 1})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bad_column = write_task(tmp_path / "a" / "task.yaml", **common,
                            objects=[{"match": f"{db}.orders", "sharding_columns": ["customer"]}])
    proc = run_obsync("run", str(bad_column), "--until-caught-up", check=False)
    assert proc.returncode == 2
    assert (f"field `objects.0.sharding_columns`: table {db}.orders (matched by '{db}.orders') has no column "
            "'customer'; "
            "its columns: id, cust, v, note") in proc.stderr
    # topics.partitions allows partition 4 (`obsync check` accepts it); the existing topic has 4 partitions
    bad_partition = write_task(tmp_path / "b" / "task.yaml", **{**common, "topics": {"partitions": 2 * PARTITIONS}},
                               partitioning="one", fixed_partition=PARTITIONS)
    proc = run_obsync("run", str(bad_partition), "--until-caught-up", check=False)
    assert proc.returncode == 2
    assert f"field `fixed_partition`: 4 is not a partition of topic Topic_{db}_orders, which has 4" in proc.stderr

"""Full sync from OceanBase's own engine (seekdb): the snapshot is one consistent image at one SCN."""

from __future__ import annotations

import json

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task


def test_full_sync_from_oceanbase_lands_every_row(tmp_path, seekdb, kafka):
    db = unique("ob")
    with seekdb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.orders (id BIGINT PRIMARY KEY, name VARCHAR(30), amount DECIMAL(10,2),"
                    " at TIMESTAMP(3) NULL) PARTITION BY HASH(id) PARTITIONS 4")
        cur.execute(f"CREATE TABLE {db}.nokey (a INT, b VARCHAR(10))")
        cur.executemany(f"INSERT INTO {db}.orders VALUES (%s, %s, %s, '2024-01-02 03:04:05.678')",
                        [(i, f"名前{i}", f"{i}.50") for i in range(1, 2001)])
        cur.executemany(f"INSERT INTO {db}.nokey VALUES (%s, %s)", [(i % 3, "dup") for i in range(30)])
    task = write_task(tmp_path / "task.yaml", db_server=seekdb, kafka=kafka,
                      tables=[f"{db}.orders", f"{db}.nokey"], sync={"full": True, "incremental": False},
                      snapshot={"chunk_size": 300, "batch_size": 128})
    run_obsync("run", str(task), "--until-caught-up")

    orders = [json.loads(m.value) for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")]
    assert len(orders) == 2000
    by_id = {int(v["postStruct"]["id"]): v for v in orders}
    assert sorted(by_id) == list(range(1, 2001))
    v = by_id[42]
    assert v["recordType"] == "ROW"
    # seekdb sessions default to +08:00: 2024-01-02 03:04:05.678 there is 2024-01-01T19:04:05.678Z
    assert v["postStruct"] == {"id": "42", "name": "名前42", "amount": "42.50", "at": "1704135845.678"}
    assert v["allMetaData"]["dbType"] == "OB_MYSQL"
    assert v["allMetaData"]["record_primary_key"] == "id" and v["allMetaData"]["record_primary_value"] == "42"

    nokey = read_topic(kafka.bootstrap_servers, f"Topic_{db}_nokey")
    assert sorted((json.loads(m.value)["postStruct"]["a"], m.key) for m in nokey) == sorted(
        (str(i % 3), None) for i in range(30))

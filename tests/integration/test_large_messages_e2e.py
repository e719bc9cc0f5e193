"""A row larger than its topic accepts, on a real broker: each `large_messages` policy (MariaDB source, tansu).

tansu stores a topic's `max.message.bytes` (and reports it with DescribeConfigs) but accepts larger messages,
so without obsync's own check an oversized row would be written as is: these tests fail on such a build.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from obsync.app.embedded.process import free_port
from obsync.connectors.kafka.client import KafkaSettings
from obsync.connectors.kafka.records import DEFAULT_LANES, lane_names
from obsync.connectors.kafka.sink import KafkaSink
from obsync.connectors.kafka.topics import MessageLimits
from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition, position_to_header
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.registry import encoder_for
from obsync.runtime.progress import Progress
from obsync.steps.large_messages import LargeMessages, record_size
from obsync.steps.routing import Router, TopicLayout
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task
from tests.integration.test_metrics_e2e import value, wait_for

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4000  # the data topic's max.message.bytes
DL_LIMIT = 2500  # the dead-letter topic's
BODY = "b" * 6000
IMG = bytes(range(256)) * 12  # 3072 bytes


def create_topic(bootstrap: str, topic: str, max_bytes: int, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, partitions, 1, config={"max.message.bytes": str(max_bytes)})]
                                   ).values():
        fut.result()


@pytest.fixture
def docs(mariadb, kafka):
    """A table with two small rows and one (id 2) larger than its topic's max.message.bytes."""
    db = unique("lm")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.docs (id INT PRIMARY KEY, title VARCHAR(50) CHARACTER SET utf8mb4 NOT NULL, "
                    "body LONGTEXT CHARACTER SET utf8mb4 NULL, img LONGBLOB NULL)")
        cur.executemany(f"INSERT INTO {db}.docs VALUES (%s, %s, %s, %s)",
                        [(1, "one", "small", b"\x01"), (2, "two", BODY, IMG), (3, "three", "small", None)])
    create_topic(kafka.bootstrap_servers, f"Topic_{db}_docs", LIMIT)
    yield db, conn
    conn.close()


def task_file(tmp_path, mariadb, kafka, db, **over):
    return write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.docs"],
                      topics={"partitions": 1, "replication_factor": 1}, name=f"task_{db}", **over)


def run_until_counted(task: Path, tmp_path: Path, table: str, policy: str, count: int, then=None) -> dict:
    """Run the task with a metrics endpoint until `count` messages of `table` were handled by `policy` and
    written; `then(conn)` runs after the first is counted. Stops it with SIGTERM (rc 0)."""
    port = free_port()
    log = tmp_path / "obsync.log"
    proc = subprocess.Popen(obsync_cmd("run", str(task), "--metrics-port", str(port), "--metrics-host", "127.0.0.1"),
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=ROOT)
    try:
        def counted(n):
            return lambda s: (value(s, "obsync_large_messages_total", table=table, policy=policy) == n
                              and value(s, "obsync_phase", obsync_phase="incremental") == 1)

        s = wait_for(port, proc, log, counted(1), f"a {policy} message to be counted", timeout=60)
        if then is not None:
            then()
            s = wait_for(port, proc, log, counted(count), f"{count} {policy} messages to be counted", timeout=60)
        assert value(s, "obsync_large_messages_total", table=table, policy="fail") is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    assert rc == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"{table} at " in text and f"sent under large_messages: {policy}" in text
    return s


def post(value: bytes) -> dict:
    return json.loads(value)["postStruct"]


def test_fail_stops_with_table_key_position_and_size_and_resumes_under_another_policy(tmp_path, mariadb, kafka, docs):
    db, _conn = docs
    task = task_file(tmp_path, mariadb, kafka, db, snapshot={"chunk_size": 10, "batch_size": 1})
    proc = run_obsync("run", str(task), "--until-caught-up", check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert f"the read of {db}.docs (key id=2) at position {db}.docs/" in err
    assert f"bytes, more than the {LIMIT} bytes topic 'Topic_{db}_docs' accepts" in err
    assert "set `large_messages:` to key_only, truncate or dead_letter" in err
    assert "Traceback" not in err
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_docs")
    assert [m.key for m in msgs] in ([], [b"[1]"])  # never row 2, never anything past it
    # how to go on: another policy, and the task resumes at the row it stopped at
    task = task_file(tmp_path, mariadb, kafka, db, snapshot={"chunk_size": 10, "batch_size": 1},
                     large_messages="key_only")
    run_obsync("run", str(task), "--until-caught-up")
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_docs")
    assert [m.key for m in msgs] == [b"[1]", b"[2]", b"[3]"]
    assert post(msgs[1].value) == {"id": "2"} and json.loads(msgs[1].value)["_obsync_large"]["policy"] == "key_only"


def test_key_only_sends_the_key_and_metadata_with_a_marker(tmp_path, mariadb, kafka, docs):
    db, _conn = docs
    table = f"{db}.docs"
    task = task_file(tmp_path, mariadb, kafka, db, large_messages="key_only")
    run_until_counted(task, tmp_path, table, "key_only", 1)
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_docs")
    assert [m.key for m in msgs] == [b"[1]", b"[2]", b"[3]"]
    assert post(msgs[0].value) == {"id": "1", "title": "one", "body": "small", "img": "AQ=="}
    assert post(msgs[2].value) == {"id": "3", "title": "three", "body": "small", "img": None}
    assert "_obsync_large" not in json.loads(msgs[0].value) and "obsync.large" not in msgs[0].headers
    big = json.loads(msgs[1].value)
    marker = big["_obsync_large"]
    assert marker["policy"] == "key_only" and marker["limit"] == LIMIT and marker["size"] > LIMIT
    assert json.loads(msgs[1].headers["obsync.large"]) == marker
    assert big["postStruct"] == {"id": "2"} and big["recordType"] == "ROW"
    assert big["allMetaData"]["table_name"] == "docs" and big["allMetaData"]["db"] == db
    assert all(len(m.key) + len(m.value) < LIMIT for m in msgs)


def test_truncate_cuts_the_largest_columns_to_fit(tmp_path, mariadb, kafka, docs):
    db, _conn = docs
    table = f"{db}.docs"
    task = task_file(tmp_path, mariadb, kafka, db, large_messages="truncate")
    run_until_counted(task, tmp_path, table, "truncate", 1)
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_docs")
    assert [m.key for m in msgs] == [b"[1]", b"[2]", b"[3]"]
    big = json.loads(msgs[1].value)
    marker = big["_obsync_large"]
    # body (6000 characters) is the largest: emptied; img (3072 bytes, 4096 in base64) alone does not fit
    # either: cut to the longest prefix that fits
    assert marker["policy"] == "truncate" and marker["columns"] == {"body": 6000, "img": 3072}
    assert json.loads(msgs[1].headers["obsync.large"]) == marker
    p = big["postStruct"]
    assert p["id"] == "2" and p["title"] == "two" and p["body"] == ""
    img = base64.b64decode(p["img"])
    assert 0 < len(img) < 3072 and IMG.startswith(img)
    size = record_size(msgs[1].key, msgs[1].value, msgs[1].headers["obsync.pos"],
                       (("obsync.large", msgs[1].headers["obsync.large"]),))
    assert size <= LIMIT


def test_dead_letter_splits_the_change_and_points_to_it(tmp_path, mariadb, kafka, docs):
    db, conn = docs
    table = f"{db}.docs"
    dl = f"{db}.dead_letter"
    create_topic(kafka.bootstrap_servers, dl, DL_LIMIT, partitions=2)
    task = task_file(tmp_path, mariadb, kafka, db, large_messages="dead_letter", dead_letter_topic=dl)

    def big_update():  # a second one from the log
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {db}.docs SET body = %s WHERE id = 3", ("c" * 5000,))

    run_until_counted(task, tmp_path, table, "dead_letter", 2, then=big_update)
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_docs")
    parts = read_topic(kafka.bootstrap_servers, dl)
    assert [m.key for m in msgs] == [b"[1]", b"[2]", b"[3]", b"[3]"]
    assert len({(m.headers["obsync.pos"], m.headers["obsync.seq"]) for m in parts}) == len(parts)  # no duplicate

    for pointer, body in ((msgs[1], BODY), (msgs[3], "c" * 5000)):
        marker = json.loads(pointer.value)["_obsync_large"]
        assert json.loads(pointer.headers["obsync.large"]) == marker
        assert marker["policy"] == "dead_letter" and marker["topic"] == dl
        mine = [m for m in parts if m.key == marker["id"].encode()]
        # a consumer's reassembly: the parts with the pointer's id, by part number, concatenated
        assert sorted(int(m.headers["obsync.large.part"]) for m in mine) == list(range(marker["parts"]))
        assert {m.headers["obsync.large.parts"] for m in mine} == {str(marker["parts"]).encode()}
        assert len({m.partition for m in mine}) == 1 and marker["parts"] > 1
        value = b"".join(m.value for m in sorted(mine, key=lambda m: int(m.headers["obsync.large.part"])))
        assert len(value) == marker["bytes"] and hashlib.sha256(value).hexdigest() == marker["sha256"]
        whole = json.loads(value)
        assert whole["postStruct"]["body"] == body and whole["postStruct"]["id"] == str(pointer.key[1:-1].decode())
        assert json.loads(pointer.value)["postStruct"] == {"id": pointer.key[1:-1].decode()}
        assert all(m.headers["obsync.pos"] == pointer.headers["obsync.pos"] for m in mine)
        assert all(len(m.key) + len(m.value) + len(m.headers["obsync.pos"]) <= DL_LIMIT for m in mine)
    assert len(parts) == sum(json.loads(m.value)["_obsync_large"]["parts"] for m in (msgs[1], msgs[3]))
    whole = json.loads(b"".join(m.value for m in parts if m.key == json.loads(msgs[1].value)["_obsync_large"]
                                ["id"].encode()))
    assert whole["postStruct"] == {"id": "2", "title": "two", "body": BODY,
                                   "img": base64.b64encode(IMG).decode()}
    assert json.loads(msgs[3].value)["recordType"] == "UPDATE"

    # run again: nothing new in either topic (resumed, nothing written twice)
    run_obsync("run", str(task), "--until-caught-up")
    assert read_topic(kafka.bootstrap_servers, dl) == parts
    assert read_topic(kafka.bootstrap_servers, f"Topic_{db}_docs") == msgs


def test_a_replayed_dead_letter_change_writes_no_part_twice(kafka):
    """The sink resumes from a snapshot taken halfway through a change's parts; Bytewax replays the change."""
    topic, dl = unique("t"), unique("dl")
    create_topic(kafka.bootstrap_servers, topic, LIMIT)
    create_topic(kafka.bootstrap_servers, dl, DL_LIMIT)
    t = TableSchema("db", "docs", (Column("id", "int", "int(11)"), Column("body", "longtext", "longtext",
                                                                          charset="utf8mb4")), ("id",))
    changes = [Change(Op.INSERT, t, LogPosition("bin.000001", 100 + i, 0), after={"id": i, "body": "x" * 9000},
                      commit_time=1.0) for i in range(2)]
    enc = encoder_for("default", EncoderContext("t", "MYSQL"), {})
    limits = MessageLimits(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers))
    assert limits.load([topic, dl]) == {topic: LIMIT, dl: DL_LIMIT}
    layout = TopicLayout({("db", "docs"): topic}, {topic: 1, dl: 1})
    router = Router(enc, layout, "hash", large=LargeMessages("dead_letter", enc, limits, dl, layout.partitions.get))
    routed = router.route(changes)

    def sink():
        return KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, lane_names(DEFAULT_LANES), "task-" + topic,
                         frozenset(), lambda p: None, Progress())

    first = {lane: sink().build_part("out", lane, None) for lane, _ in routed}
    states = {}
    for lane, recs in routed:
        half = recs[: len(recs) // 2]
        first[lane].write_batch([half])
        states[lane] = first[lane].snapshot()
        first[lane].write_batch([recs[len(recs) // 2: len(recs) * 3 // 4]])  # then the process dies
        first[lane].shared.flush()
    for lane, recs in routed:  # resumed from the snapshot, everything after it replayed
        part = sink().build_part("out", lane, states[lane])
        part.write_batch([recs])
        part.close()
    parts = read_topic(kafka.bootstrap_servers, dl)
    data = read_topic(kafka.bootstrap_servers, topic)
    assert [(m.key, m.value) for m in parts] == [(r.key, r.value) for _, recs in routed for r in recs if r.topic == dl]
    assert len(data) == 2
    for pointer, change in zip(data, changes, strict=True):
        marker = json.loads(pointer.value)["_obsync_large"]
        value = b"".join(m.value for m in parts if m.key == marker["id"].encode())
        assert value == enc.encode(change, topic)[0].value  # the message the change encodes to, byte for byte
        assert marker["id"].encode() == b"%s/0/%s/0" % (topic.encode(), position_to_header(change.position))

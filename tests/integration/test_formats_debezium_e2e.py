"""The Debezium formats end to end: one MariaDB table, three tasks (`debezium`, `debezium_flatten`,
`debezium_smt`) through `obsync run --until-caught-up` (full sync, then the binlog with an update, a key
change, a delete and an ALTER TABLE) into tansu; the topics read back and decoded as the consumers do.

- `debezium`: every message read with its own JsonConverter schema (`read_connect_json`: Decimal from Base64
  and scale, MicroTimestamp, ZonedTimestamp, Bits, ...) and compared with the source rows.
- `debezium_flatten`: bare payloads, decoded with the schema a consumer knows out of band (the `debezium`
  task's), equal to the `debezium` payloads but for processing times and the prefix.
- `debezium_smt`: flat rows plus `__deleted`/`__op`/`__table`/`__db`/`__source_ts_ms`, decoded likewise.
Every delete is followed by a tombstone for the same key in the same partition.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kafka import Msg, read_topic
from tests.helpers.tasks import obsync_cmd, unique, write_task
from tests.unit.test_format_debezium import connect_value, read_connect_json

UTC = dt.UTC
FORMATS = ("debezium", "debezium_flatten", "debezium_smt")

# column, declaration, SQL literal, the value a consumer decodes
TYPES = [
    ("ti", "TINYINT", "-128", -128),
    ("iu", "INT UNSIGNED", "4294967295", 4294967295),
    ("bi", "BIGINT", "-9223372036854775808", -9223372036854775808),
    ("biu", "BIGINT UNSIGNED", "18446744073709551615", -1),  # bigint.unsigned.handling.mode=long
    ("de", "DECIMAL(65,30)", "-12345678901234567890123456789012345.123456789012345678901234567890",
     Decimal("-12345678901234567890123456789012345.123456789012345678901234567890")),
    ("de2", "DECIMAL(12,2)", "5", Decimal("5.00")),
    ("fl", "FLOAT", "1.2345678", 1.2345678),
    ("db", "DOUBLE", "0.30000000000000004", 0.30000000000000004),
    ("b1", "BIT(1)", "b'1'", True),
    ("b10", "BIT(10)", "b'1000000001'", 513),
    ("ch", "CHAR(10)", "'a😀中'", "a😀中"),
    ("tx", "TEXT", "'x\\ty😀\\n'", "x\ty😀\n"),
    ("bn", "BINARY(4)", "x'ff00fe'", b"\xff\x00\xfe\x00"),
    ("bl", "BLOB", "x'00ffc3'", b"\x00\xff\xc3"),
    ("d", "DATE", "'2024-02-29'", dt.date(2024, 2, 29)),
    ("t6", "TIME(6)", "'-838:59:58.999999'", -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999)),
    ("dt6", "DATETIME(6)", "'2024-01-02 03:04:05.000006'", dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
    ("dt0", "DATETIME", "'9999-12-31 23:59:59'", dt.datetime(9999, 12, 31, 23, 59, 59)),
    # written in a +05:00 session
    ("ts3", "TIMESTAMP(3) NULL", "'2024-01-02 03:04:05.120'", dt.datetime(2024, 1, 1, 22, 4, 5, 120000, tzinfo=UTC)),
    ("y", "YEAR", "2024", 2024),
    ("js", "JSON", "'{\"b\": [1, 2.5], \"a\": \"x\"}'", '{"b": [1, 2.5], "a": "x"}'),
    ("en", "ENUM('a','B','c d')", "'c d'", "c d"),
    ("st", "SET('x','y','z')", "'z,x'", "x,z"),
    ("nul", "INT", "NULL", None),
]
EXPECTED = {c: v for c, _, _, v in TYPES}


@pytest.fixture(scope="module")
def landed(tmp_path_factory, mariadb, kafka):
    """Run the workload under the three formats: format -> (table topic messages, schema-change messages)."""
    tmp = tmp_path_factory.mktemp("dbz")
    db = unique("dbz")
    table = f"{db}.t"
    cols = ", ".join(f"`{c}` {decl}" for c, decl, _, _ in TYPES)
    insert = (f"INSERT INTO {table} (id, {', '.join(f'`{c}`' for c, _, _, _ in TYPES)}) VALUES "
              "(%d, " + ", ".join(lit.replace("%", "%%") for _, _, lit, _ in TYPES) + ")")
    conn = mariadb.connect(autocommit=True)
    tasks, prefixes = {}, {}
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+05:00'")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, {cols})")
        cur.execute(insert % 1)
        for i, fmt in enumerate(FORMATS):
            prefixes[fmt] = unique(fmt.replace("_", "-"))
            path = tmp / fmt / "task.yaml"
            path.parent.mkdir()
            tasks[fmt] = write_task(
                path, db_server=mariadb, kafka=kafka, tables=[table], name=unique(fmt),
                source={"host": mariadb.host, "port": mariadb.port, "user": mariadb.user,
                        "password": mariadb.password, "server_id": 7200 + i},
                sync={"full": True, "incremental": True, "ddl": True},
                topic=f"{fmt}_${{database}}_${{table}}", format=fmt,
                format_options={"topic_prefix": prefixes[fmt]})
        run_all(tasks)  # row 1 by full sync
        cur.execute(insert % 2)
        cur.execute(f"UPDATE {table} SET y = 2025 WHERE id = 2")
        cur.execute(f"UPDATE {table} SET id = 3 WHERE id = 2")  # key change: delete, tombstone, create
        cur.execute(f"DELETE FROM {table} WHERE id = 1")
        # A run before the ALTER: the first run had nothing to stream, so it did not fix the table's schema at
        # the log start (`BinlogReader.prepare` skips that when start == stop_at); a DDL before the next run
        # would otherwise be read as the schema of the rows before it.
        run_all(tasks)
        cur.execute(f"ALTER TABLE {table} ADD COLUMN note VARCHAR(10) NULL")
        cur.execute(f"INSERT INTO {table} (id, note) VALUES (4, 'hi')")
        run_all(tasks)
    conn.close()
    return db, {fmt: (read_topic(kafka.bootstrap_servers, f"{fmt}_{db}_t"),
                      read_topic(kafka.bootstrap_servers, prefixes[fmt]), prefixes[fmt]) for fmt in FORMATS}


def run_all(tasks: dict[str, Path]) -> None:
    """`obsync run --until-caught-up` for every task at once."""
    procs = {fmt: subprocess.Popen(obsync_cmd("run", str(task), "--until-caught-up"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
             for fmt, task in tasks.items()}
    for fmt, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{fmt}: {err[-4000:]}"


def by_key(messages: list[Msg], decode_key) -> dict[Any, list[Msg]]:
    """Messages per key id, in partition order; every key stays in one partition."""
    out: dict[Any, list[Msg]] = {}
    for m in messages:
        out.setdefault(decode_key(m.key)["id"], []).append(m)
    for ident, ms in out.items():
        assert len({m.partition for m in ms}) == 1, f"key {ident} in several partitions"
    return out


def assert_tombstones_follow_deletes(per_key: dict[Any, list[Msg]], is_delete) -> None:
    for ident, ms in per_key.items():
        for i, m in enumerate(ms):
            if m.value is not None and is_delete(m):
                assert i + 1 < len(ms) and ms[i + 1].value is None, f"no tombstone after the delete of {ident}"
                assert ms[i + 1].key == m.key and ms[i + 1].offset == m.offset + 1


def test_debezium_messages_decode_to_the_source_rows(landed) -> None:
    db, results = landed
    messages, schema_changes, prefix = results["debezium"]
    per_key = by_key(messages, read_connect_json)
    ops = {k: [None if m.value is None else read_connect_json(m.value)["op"] for m in ms] for k, ms in per_key.items()}
    assert ops == {1: ["r", "d", None], 2: ["c", "u", "d", None], 3: ["c"], 4: ["c"]}
    assert_tombstones_follow_deletes(per_key, lambda m: json.loads(m.value)["payload"]["op"] == "d")
    events = {(k, i): read_connect_json(m.value) for k, ms in per_key.items() for i, m in enumerate(ms) if m.value}
    row = {"id": 1, **EXPECTED}
    assert events[(1, 0)]["after"] == row and events[(1, 0)]["before"] is None
    assert events[(1, 1)]["before"] == row and events[(1, 1)]["after"] is None
    assert events[(2, 0)]["after"] == {**row, "id": 2}
    assert events[(2, 1)]["before"] == {**row, "id": 2} and events[(2, 1)]["after"] == {**row, "id": 2, "y": 2025}
    assert events[(2, 2)]["before"] == {**row, "id": 2, "y": 2025}
    assert events[(3, 0)]["after"] == {**row, "id": 3, "y": 2025}
    assert events[(4, 0)]["after"] == {**{c: None for c in EXPECTED}, "id": 4, "note": "hi"}  # the ALTERed table
    snap, log = events[(1, 0)]["source"], events[(2, 0)]["source"]
    assert (snap["snapshot"], snap["db"], snap["table"], snap["name"], snap["connector"]) == (
        "true", db, "t", prefix, "mysql")
    assert (log["snapshot"], log["db"], log["table"]) == ("false", db, "t")
    assert "." in log["file"] and log["row"] == 0
    assert log["pos"] > 0 and log["server_id"] > 0 and log["ts_ms"] % 1000 == 0
    # the schema-change topic: the table's CREATE TABLE from the full sync, then the ALTER, keyed by database
    assert len(schema_changes) == 2
    snapshot_ddl = read_connect_json(schema_changes[0].value)
    assert snapshot_ddl["ddl"].startswith("CREATE TABLE `t`") and snapshot_ddl["source"]["snapshot"] == "true"
    assert [c["type"] for c in snapshot_ddl["tableChanges"]] == ["CREATE"]
    key, value = read_connect_json(schema_changes[1].key), read_connect_json(schema_changes[1].value)
    assert key == {"databaseName": db}
    assert value["databaseName"] == db and "ADD COLUMN note" in value["ddl"]
    assert value["source"]["table"] == "t"
    [change] = value["tableChanges"]  # the table after the ALTER, as Debezium describes it
    assert (change["type"], change["id"], change["table"]["primaryKeyColumnNames"]) == ("ALTER", f'"{db}"."t"', ["id"])
    assert [(c["name"], c["position"]) for c in change["table"]["columns"]] == [
        (name, i) for i, name in enumerate(["id", *EXPECTED, "note"], 1)]


def test_flatten_payloads_equal_the_debezium_ones(landed) -> None:
    _, results = landed
    schemaful, _, dbz_prefix = results["debezium"]
    flat, schema_changes, prefix = results["debezium_flatten"]

    def comparable(raw: bytes | None, name: str) -> Any:
        if raw is None:
            return None
        p = json.loads(raw)
        p = p.get("payload", p)
        for k in ("ts_ms", "ts_us", "ts_ns"):
            p.pop(k)
        assert p["source"].pop("name") == name
        if p["source"]["snapshot"] == "true":  # processing time during full sync
            for k in ("ts_ms", "ts_us", "ts_ns"):
                p["source"].pop(k)
        return p

    expected = {(json.loads(m.key)["payload"]["id"], m.offset): comparable(m.value, dbz_prefix) for m in schemaful}
    assert all(set(json.loads(m.key)) == {"id"} for m in flat)  # bare key payloads
    got = {(json.loads(m.key)["id"], m.offset): comparable(m.value, prefix) for m in flat}
    assert sorted(k[0] for k in got) == sorted(k[0] for k in expected)
    assert sorted(map(json.dumps, got.values())) == sorted(map(json.dumps, expected.values()))
    # decoded with the schema a consumer knows: the same rows
    envelope_schema = json.loads(schemaful[0].value)["schema"]
    decoded = [connect_value(envelope_schema, json.loads(m.value)) for m in flat
               if m.value is not None and json.loads(m.key)["id"] == 1]
    assert decoded[0]["after"] == {"id": 1, **EXPECTED}
    assert_tombstones_follow_deletes(by_key(flat, json.loads), lambda m: json.loads(m.value)["op"] == "d")
    assert [json.loads(m.key) for m in schema_changes] == [{"databaseName": json.loads(schema_changes[0].key)
                                                            ["databaseName"]}] * 2
    ddls = [json.loads(m.value)["ddl"] for m in schema_changes]
    assert ddls[0].startswith("CREATE TABLE `t`") and "ADD COLUMN note" in ddls[1]


def test_smt_rows_are_flat_with_the_added_fields(landed) -> None:
    db, results = landed
    schemaful = results["debezium"][0]
    messages, schema_changes, _ = results["debezium_smt"]
    value_schema = {**json.loads(schemaful[0].value)["schema"]["fields"][1], "optional": False}
    per_key = by_key(messages, json.loads)

    def row(m: Msg) -> dict[str, Any] | None:
        if m.value is None:
            return None
        v = json.loads(m.value)
        # ExtractNewRecordState's order: the row, __deleted, then the add.fields
        assert list(v)[-5:] == ["__deleted", "__op", "__table", "__db", "__source_ts_ms"]
        meta = {k: v.pop(k) for k in ("__op", "__table", "__db", "__source_ts_ms", "__deleted")}
        assert (meta["__table"], meta["__db"]) == ("t", db) and type(meta["__source_ts_ms"]) is int
        assert meta["__deleted"] == ("true" if meta["__op"] == "d" else "false")
        fields = {f["field"] for f in value_schema["fields"]}
        return {"__op": meta["__op"], **connect_value(value_schema, {k: x for k, x in v.items() if k in fields})}

    rows = {k: [row(m) for m in ms] for k, ms in per_key.items() if k != 4}
    base = {"id": 1, **EXPECTED}
    assert rows == {
        1: [{"__op": "r", **base}, {"__op": "d", **base}, None],
        2: [{"__op": "c", **base, "id": 2}, {"__op": "u", **base, "id": 2, "y": 2025},
            {"__op": "d", **base, "id": 2, "y": 2025}, None],
        3: [{"__op": "c", **base, "id": 3, "y": 2025}],
    }
    assert json.loads(per_key[4][0].value)["note"] == "hi"
    assert_tombstones_follow_deletes(per_key, lambda m: json.loads(m.value)["__op"] == "d")
    assert len(schema_changes) == 2 and "ADD COLUMN note" in json.loads(schema_changes[1].value)["ddl"]
    assert json.loads(schema_changes[0].value)["ddl"].startswith("CREATE TABLE `t`")

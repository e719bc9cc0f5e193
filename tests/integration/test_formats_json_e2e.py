"""The JSON formats end to end: a task per format syncs one MariaDB table through `obsync run` (full sync,
then inserts, updates, a key change and a delete from the binlog), and the topic, decoded the way that
format's consumers read it, replays to exactly the source table.

The four tasks read the same table at once (one server id each), so the module costs two rounds of runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers.kafka import Msg, read_topic
from tests.helpers.tasks import run_obsync, unique, write_task

FORMATS = ("default_extend_column_type", "canal", "dataworks", "shareplex")
EPOCH = dt.datetime(1970, 1, 1)
Row = tuple[int, str, Decimal | None, dt.datetime | None, bytes | None]  # id, name, amount, paid (UTC), raw

TABLE = """CREATE TABLE {t} (
  id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4 NOT NULL, amount DECIMAL(12,2) NULL,
  paid TIMESTAMP(3) NULL, raw VARBINARY(8) NULL)"""
SEED = [(1, "咖啡 ☕", "12.50", "2023-11-14 22:13:20.500", b"\x00\xff"),
        (2, "tea", "20.00", None, b"\x80"),
        (3, "água", None, "2024-02-29 00:00:00.001", None)]
CHANGES = [
    "INSERT INTO {t} VALUES (4, 'new\\nline', 7.25, NULL, x'c3a9')",
    "UPDATE {t} SET amount = NULL, raw = x'0001', name = 'tea 2' WHERE id = 2",
    "UPDATE {t} SET paid = '2025-01-01 12:00:00.250' WHERE id = 4",  # NULL -> value: `old` holds a null
    "UPDATE {t} SET id = 30 WHERE id = 3",  # a key change: DELETE 3, INSERT 30
    "DELETE FROM {t} WHERE id = 1",
]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, mariadb: Any, kafka: Any) -> Iterator[dict[str, Any]]:
    """One table synced by a task per format: full sync, changes, catch-up. Yields each format's messages
    (every partition, each in offset order) and the source rows."""
    db = unique("fmt")
    table = f"{db}.t"
    tasks = {}
    for n, fmt in enumerate(FORMATS):
        base = tmp_path_factory.mktemp(fmt)
        source = {"host": mariadb.host, "port": mariadb.port, "user": mariadb.user, "password": mariadb.password,
                  "server_id": 7500 + n}  # tasks that run at once need their own replica ids
        tasks[fmt] = write_task(base / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table], format=fmt,
                                source=source, topic=f"{fmt}_${{database}}_${{table}}")

    def run_all() -> None:
        with ThreadPoolExecutor(len(tasks)) as pool:
            for done in [pool.submit(run_obsync, "run", str(p), "--until-caught-up") for p in tasks.values()]:
                done.result()

    with mariadb.connect(autocommit=True, init_command="SET time_zone = '+00:00'") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(TABLE.format(t=table))
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", SEED)
        run_all()  # the seed rows by full sync
        for statement in CHANGES:
            cur.execute(statement.format(t=table))
        run_all()  # the changes from the binlog
        cur.execute(f"SELECT id, name, amount, paid, raw FROM {table}")
        rows = {r[0]: tuple(r) for r in cur.fetchall()}
    with ThreadPoolExecutor(len(FORMATS)) as pool:
        read = {fmt: pool.submit(read_topic, kafka.bootstrap_servers, f"{fmt}_{db}_t") for fmt in FORMATS}
        yield {"messages": {fmt: r.result() for fmt, r in read.items()}, "rows": rows}


# ------------------------------------------------------------------------------------ consumers' decoding


def _epoch_seconds(text: str | None) -> dt.datetime | None:
    return None if text is None else EPOCH + dt.timedelta(seconds=float(Decimal(text)))


def _b64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _dec(text: Any) -> Decimal | None:
    return None if text is None else Decimal(str(text))


def from_default_text(r: dict[str, Any]) -> Row:
    """A row as the Default format (and SharePlex) renders it."""
    return int(r["id"]), r["name"], _dec(r["amount"]), _epoch_seconds(r["paid"]), _b64(r["raw"])


def replay_default_extend(messages: list[Msg]) -> dict[int, Row]:
    state: dict[str, Row] = {}
    for m in messages:
        v = json.loads(m.value)
        if v["recordType"] in ("ROW", "INSERT", "UPDATE"):
            post = dict(v["postStruct"])
            assert post.pop("__light_type") == {
                "id": {"schemaType": "INT", "columnType": "int(11)"},
                "name": {"schemaType": "VARCHAR", "columnType": "varchar(40)"},
                "amount": {"schemaType": "DECIMAL", "columnType": "decimal(12,2)"},
                "paid": {"schemaType": "TIMESTAMP", "columnType": "timestamp(3)"},
                "raw": {"schemaType": "VARBINARY", "columnType": "varbinary(8)"},
            }
            state[m.key.decode()] = from_default_text(post)  # type: ignore[union-attr]  # default-format row messages always have a key
        elif v["recordType"] == "DELETE":
            assert "__light_type" not in v["prevStruct"]
            state.pop(m.key.decode(), None)  # type: ignore[union-attr]  # default-format row messages always have a key
    return {row[0]: row for row in state.values()}


def replay_canal(messages: list[Msg]) -> dict[int, Row]:
    """What Flink's `canal-json` reader makes of the stream, materialized by primary key: INSERT rows of
    `data`; UPDATE retracts the before row (`old`, its nulls filled from `data`) and adds `data`; DELETE
    retracts `data`; a DDL other than CREATE would fail the job (none is sent here)."""
    state: dict[tuple[str, ...], dict[str, Any]] = {}
    for m in messages:
        v = json.loads(m.value)
        assert not v["isDdl"], f"Flink's canal-json reader fails on {v['type']} without ignore-parse-errors"
        key = lambda row, v=v: tuple(row[k] for k in v["pkNames"])  # noqa: E731 - a one-line helper of this message
        if v["type"] == "INSERT":
            for row in v["data"]:
                state[key(row)] = row
        elif v["type"] == "UPDATE":
            for row, old in zip(v["data"], v["old"], strict=True):
                before = {**row, **{k: o for k, o in old.items() if o is not None}}
                retracted = state.pop(key(before))
                assert {k: x for k, x in retracted.items() if old.get(k, "") is not None} == \
                    {k: x for k, x in before.items() if old.get(k, "") is not None}
                state[key(row)] = row
        elif v["type"] == "DELETE":
            for row in v["data"]:
                assert state.pop(key(row)) == row
        else:
            raise AssertionError(f"Flink's canal-json reader fails on type {v['type']}")
    return {int(r["id"]): (int(r["id"]), r["name"], _dec(r["amount"]),
                           None if r["paid"] is None else dt.datetime.fromisoformat(r["paid"]),
                           None if r["raw"] is None else r["raw"].encode("latin-1"))
            for r in state.values()}


def replay_dataworks(messages: list[Msg]) -> dict[int, Row]:
    """Apply INSERT / DELETE and UPDATE_BEFORE + UPDATE_AFTER pairs; numbers read as exact decimals."""
    state: dict[int, dict[str, Any]] = {}
    pending: dict[str, Any] | None = None
    for m in messages:
        v = json.loads(m.value, parse_float=Decimal)
        p = v["payload"]
        op = p["op"]
        assert v["version"] == "2.0" and (op == "UPDATE_AFTER") == (pending is not None)
        if op == "INSERT":
            state[p["after"]["dataColumn"]["id"]] = p["after"]["dataColumn"]
        elif op == "UPDATE_BEFORE":
            pending = p["before"]["dataColumn"]
            assert state[pending["id"]] == pending
        elif op == "UPDATE_AFTER":
            assert pending is not None
            after = p["after"]["dataColumn"]
            assert after["id"] == pending["id"]  # key changes arrive as DELETE + INSERT
            state[after["id"]] = after
            pending = None
        elif op == "DELETE":
            assert state.pop(p["before"]["dataColumn"]["id"]) == p["before"]["dataColumn"]
        else:
            raise AssertionError(f"unexpected op {op}")
    return {r["id"]: (r["id"], r["name"], _dec(r["amount"]),
                      None if r["paid"] is None else EPOCH + dt.timedelta(milliseconds=r["paid"]), _b64(r["raw"]))
            for r in state.values()}


def replay_shareplex(messages: list[Msg]) -> dict[int, Row]:
    """Apply INSERT by `data`, UPDATE BEFORE/AFTER and DELETE by the before image's `key`."""
    state: dict[str, dict[str, Any]] = {}
    for m in messages:
        v = json.loads(m.value)
        op, data, key = v["meta"]["op"], v["data"], v["key"]
        if op == "INSERT":
            assert key is None
            state[data["id"]] = data
        elif op == "UPDATE BEFORE":
            assert state[key["id"]] == data
        elif op == "UPDATE AFTER":
            state.pop(key["id"])
            state[data["id"]] = data
        elif op == "DELETE":
            assert state.pop(key["id"]) == data
        else:
            raise AssertionError(f"unexpected op {op}")
    return {int(r["id"]): from_default_text(r) for r in state.values()}


REPLAY: dict[str, Callable[[list[Msg]], dict[int, Row]]] = {
    "default_extend_column_type": replay_default_extend,
    "canal": replay_canal,
    "dataworks": replay_dataworks,
    "shareplex": replay_shareplex,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_topic_replays_to_the_source_table(synced: dict[str, Any], fmt: str) -> None:
    assert sorted(REPLAY[fmt](synced["messages"][fmt]).items()) == sorted(synced["rows"].items())
    assert sorted(synced["rows"]) == [2, 4, 30]


def test_each_format_says_what_happened(synced: dict[str, Any]) -> None:
    """Per format, the operations in the topic: 3 rows by full sync, then 5 statements (the key change is a
    delete and an insert)."""
    ops: dict[str, list[str]] = {}
    for fmt, messages in synced["messages"].items():
        values = [json.loads(m.value) for m in messages]
        ops[fmt] = sorted(
            v["recordType"] if fmt == "default_extend_column_type"
            else v["type"] if fmt == "canal"
            else v["payload"]["op"] if fmt == "dataworks"
            else v["meta"]["op"]
            for v in values)
    assert ops == {
        "default_extend_column_type": ["DELETE", "DELETE", "INSERT", "INSERT", "ROW", "ROW", "ROW", "UPDATE",
                                       "UPDATE"],
        "canal": ["DELETE", "DELETE", "INSERT", "INSERT", "INSERT", "INSERT", "INSERT", "UPDATE", "UPDATE"],
        "dataworks": ["DELETE", "DELETE", "INSERT", "INSERT", "INSERT", "INSERT", "INSERT", "UPDATE_AFTER",
                      "UPDATE_AFTER", "UPDATE_BEFORE", "UPDATE_BEFORE"],
        "shareplex": ["DELETE", "DELETE", "INSERT", "INSERT", "INSERT", "INSERT", "INSERT", "UPDATE AFTER",
                      "UPDATE AFTER", "UPDATE BEFORE", "UPDATE BEFORE"],
    }

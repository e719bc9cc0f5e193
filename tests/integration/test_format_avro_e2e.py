"""The avro format end to end: `obsync run --until-caught-up` from MariaDB into tansu, read back the way a consumer
does: each message's schema fetched from the registry by the id in the message (or, without a registry, from
the schema topic by the fingerprint in the message) and decoded with fastavro, then compared with the rows.

No schema-registry server can be installed here: `tests.helpers.schema_registry` is a registry-compatible HTTP
service (ids, versions, BACKWARD compatibility, basic auth) running in the test process.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any

import pytest

from obsync.formats.avro.registry import SchemaRegistryClient
from obsync.formats.avro.wire import read, split_confluent, split_single_object
from tests.helpers.kafka import Msg, read_topic
from tests.helpers.schema_registry import TestSchemaRegistry
from tests.helpers.tasks import run_obsync, unique, write_task

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1)
WIDE = Context(prec=100)  # exact for DECIMAL(65,30)

COLUMNS = ("id INT PRIMARY KEY, amount DECIMAL(65,30), price DECIMAL(12,2) NOT NULL, made DATETIME(6), "
           "ms DATETIME(3), ts TIMESTAMP(3) NULL, d DATE, tm TIME(6), name VARCHAR(20), data VARBINARY(8)")
INSERT = "INSERT INTO {t} (id, amount, price, made, ms, ts, d, tm, name, data) VALUES ({v})"


def row(ident: int, amount: str, price: str, made: str, name: str | None) -> dict[str, Any]:
    """A row as SQL literals (`sql`) and as a consumer decodes it (`decoded`: Debezium's values in Avro)."""
    made_dt = dt.datetime.fromisoformat(made)
    return {
        "sql": f"{ident}, {amount}, {price}, '{made}', '{made}', '{made}', '{made[:10]}', '{made[11:]}', "
               + ("NULL" if name is None else f"'{name}'") + f", x'0a{ident:02x}'",
        "decoded": {
            "id": ident,
            "amount": Decimal(amount).quantize(Decimal("1E-30"), context=WIDE),
            "price": Decimal(price).quantize(Decimal("0.01"), context=WIDE),
            "made": (made_dt - EPOCH) // dt.timedelta(microseconds=1),  # io.debezium.time.MicroTimestamp
            "ms": (made_dt - EPOCH) // dt.timedelta(milliseconds=1),  # io.debezium.time.Timestamp (DATETIME(3))
            # written in a +05:00 session: the TIMESTAMP is 5 hours earlier in UTC (io.debezium.time.ZonedTimestamp)
            "ts": (made_dt - dt.timedelta(hours=5)).isoformat(timespec="milliseconds") + "Z",
            "d": (made_dt.date() - EPOCH.date()).days,  # io.debezium.time.Date
            "tm": (made_dt - made_dt.replace(hour=0, minute=0, second=0, microsecond=0))
            // dt.timedelta(microseconds=1),  # io.debezium.time.MicroTime
            "name": name,
            "data": bytes([10, ident]),
        },
    }


ROWS = {
    1: row(1, "-12345678901234567890123456789012345.123456789012345678901234567890", "5", "2024-01-02 03:04:05.000006",
           "a😀中"),
    2: row(2, "0.000000000000000000000000000001", "0.1", "2023-06-30 23:59:59.999999", None),
    3: row(3, "99999999999999999999999999999999999", "9999999999.99", "1970-01-01 05:00:01.000000", "x"),
}
UPDATED_1 = row(1, "1.5", "7.25", "2024-01-02 03:04:05.500000", "changed")
ROW_4 = row(4, "42", "1", "2025-12-31 23:59:59.123456", "with note")


def prepare(cur: Any, db: str) -> str:
    cur.execute("SET time_zone = '+05:00'")
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE TABLE {db}.t ({COLUMNS})")
    for ident in (1, 2):
        cur.execute(INSERT.format(t=f"{db}.t", v=ROWS[ident]["sql"]))
    return f"{db}.t"


def change_rows(cur: Any, table: str) -> None:
    """Insert, update, delete."""
    cur.execute(INSERT.format(t=table, v=ROWS[3]["sql"]))
    cur.execute(f"UPDATE {table} SET amount = 1.5, price = 7.25, made = '2024-01-02 03:04:05.5', "
                f"ms = '2024-01-02 03:04:05.5', ts = '2024-01-02 03:04:05.5', tm = '03:04:05.5', "
                f"name = 'changed' WHERE id = 1")
    cur.execute(f"DELETE FROM {table} WHERE id = 2")


def change_schema(cur: Any, table: str) -> None:
    """Add a column and insert a row that fills it."""
    cur.execute(f"ALTER TABLE {table} ADD COLUMN note VARCHAR(20) NULL")
    cur.execute(INSERT.format(t=table, v=ROW_4["sql"] + ", 'hello'").replace("data)", "data, note)"))


def sync_in_three_runs(cur: Any, table: str, task: Any, *args: str,
                       after_rows: Callable[[], None] | None = None) -> str:
    """Full sync; the row changes; the schema change: each followed by a run until caught up (`obsync run` with
    `args` too; `after_rows` called after the second run). (The schema change comes after a run that streamed
    from the binlog: a DDL made before the task's first binlog run is not in its schema history yet, and the
    binlog source refuses the rows written before it.) Returns the logs."""
    logs = run_obsync("run", str(task), "--until-caught-up", *args).stderr
    change_rows(cur, table)
    logs += run_obsync("run", str(task), "--until-caught-up", *args).stderr
    if after_rows is not None:
        after_rows()
    change_schema(cur, table)
    return logs + run_obsync("run", str(task), "--until-caught-up", *args).stderr


def by_key(messages: list[tuple[Msg, Any, Any]]) -> dict[int, list[tuple[str, Any]]]:
    """id -> [(op or "tombstone", value)] in offset order (one key's messages share a partition)."""
    out: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    for _msg, key, value in sorted(messages, key=lambda m: (m[0].partition, m[0].offset)):
        out[key["id"]].append(("tombstone", None) if value is None else (value["op"], value))
    return dict(out)


def check_changes(changes: dict[int, list[tuple[str, Any]]]) -> None:
    """The decoded messages are the rows, exactly: DECIMAL to the last digit, times as Debezium writes them."""
    assert {k: [op for op, _ in v] for k, v in changes.items()} == {
        1: ["r", "u"], 2: ["r", "d", "tombstone"], 3: ["c"], 4: ["c"]}
    assert changes[1][0][1]["after"] == ROWS[1]["decoded"]
    assert changes[1][1][1]["before"] == ROWS[1]["decoded"]
    assert changes[1][1][1]["after"] == UPDATED_1["decoded"]
    assert changes[2][0][1]["after"] == ROWS[2]["decoded"]
    assert changes[2][1][1]["before"] == ROWS[2]["decoded"] and changes[2][1][1]["after"] is None
    assert changes[3][0][1]["after"] == ROWS[3]["decoded"]
    for _op, value in [*changes[1], *changes[2][:2], *changes[3]]:
        assert "note" not in (value["after"] or value["before"])  # written before the ALTER
    assert changes[4][0][1]["after"] == {**ROW_4["decoded"], "note": "hello"}
    amount = changes[1][0][1]["after"]["amount"]
    assert str(amount) == "-12345678901234567890123456789012345.123456789012345678901234567890"
    assert changes[1][0][1]["source"]["snapshot"] == "true" and changes[3][0][1]["source"]["snapshot"] == "false"


def test_avro_with_schema_registry_round_trip(tmp_path, mariadb, kafka):
    db = unique("avro")
    with TestSchemaRegistry(user="obsync", password="s3cret-pw") as reg:
        with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
            table = prepare(cur, db)
            task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                              name=f"{db}_task", format="avro",
                              sync={"full": True, "incremental": True, "ddl": True},
                              format_options={"schema_registry": {"url": reg.url, "user": "obsync",
                                                                  "password": "s3cret-pw"}})
            logs = sync_in_three_runs(cur, table, task)
        assert "s3cret-pw" not in logs

        # a consumer that knows only the registry: every schema fetched by the id in the message
        consumer = SchemaRegistryClient(reg.url, "obsync", "s3cret-pw")
        topic = f"Topic_{db}_t"

        def decode(message: bytes | None) -> Any:
            if message is None:
                return None
            schema_id, payload = split_confluent(message)
            return read(payload, consumer.schema(schema_id))

        msgs = read_topic(kafka.bootstrap_servers, topic)
        check_changes(by_key([(m, decode(m.key), decode(m.value)) for m in msgs]))

        # schema evolution: the ALTER made a second value version (BACKWARD: `note` optional, default null)
        assert len(reg.subjects[f"{topic}-value"]) == 2 and len(reg.subjects[f"{topic}-key"]) == 1
        new_value = json.loads(reg.schemas[reg.subjects[f"{topic}-value"][-1] - 1])
        value_record = new_value["fields"][1]["type"]  # `after`: a reference to the `before` record
        assert value_record == ["null", f"{db}_task.{db}.t.Value"]
        fields = {f["name"]: f for f in new_value["fields"][0]["type"][1]["fields"]}
        assert fields["note"] == {"name": "note", "type": ["null", "string"], "default": None}
        assert fields["amount"]["type"][1]["logicalType"] == "decimal"

        # the DDL went to the schema-change topic (`topic_prefix`, the task name), in Avro too, after the table's
        # CREATE TABLE from the full sync
        snapshot_ddl, ddl = read_topic(kafka.bootstrap_servers, f"{db}_task")
        assert decode(ddl.key) == decode(snapshot_ddl.key) == {"databaseName": db}
        assert decode(snapshot_ddl.value)["ddl"].startswith("CREATE TABLE `t`")
        assert [c["type"] for c in decode(snapshot_ddl.value)["tableChanges"]] == ["CREATE"]
        assert "ADD COLUMN note" in decode(ddl.value)["ddl"]
        assert [c["name"] for c in decode(ddl.value)["tableChanges"][0]["table"]["columns"]][-1] == "note"


@pytest.mark.parametrize("run_as", ["one worker", "two workers", "two processes"])
def test_avro_without_registry_uses_the_schema_topic(tmp_path, mariadb, kafka, run_as):
    """Also when the log's row changes are encoded by their lanes' workers (two workers, or two processes): each
    schema's record is written where the log is read, with the first change that uses it."""
    db = unique("avro")
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        table = prepare(cur, db)
        task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                          name=f"{db}_task", format="avro", format_options={"topic_prefix": f"{db}_pfx"},
                          **({"workers": 2} if run_as == "two workers" else {}))

        def lanes_encoded() -> None:  # the insert, update and delete: the first written where read, with its schemas
            state = tmp_path / "state"
            statuses = [state / "process-0/status.json", state / "process-1/status.json"] \
                if run_as == "two processes" else [state / "status.json"]
            encoded = sum(json.loads(f.read_text()).get("log_changes_encoded", {}).get("total", 0) for f in statuses)
            assert encoded == (0 if run_as == "one worker" else 2), [f.read_text() for f in statuses]

        sync_in_three_runs(cur, table, task, *(["--processes", "2"] if run_as == "two processes" else []),
                           after_rows=lanes_encoded)

    # a consumer reads the schema topic into fingerprint -> schema first
    schemas = {m.key.decode(): json.loads(m.value) for m in read_topic(kafka.bootstrap_servers, f"{db}_pfx.schemas")}
    assert len(schemas) == 3  # the key schema, the value schema before and after the ALTER

    def decode(message: bytes | None) -> Any:
        if message is None:
            return None
        fp, payload = split_single_object(message)
        return read(payload, schemas[fp.hex()])

    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_t")
    assert all(m.key[:2] == b"\xc3\x01" for m in msgs)
    check_changes(by_key([(m, decode(m.key), decode(m.value)) for m in msgs]))



def test_avro_added_not_null_column_with_default_is_backward_compatible(tmp_path, mariadb, kafka):
    """`ADD COLUMN c INT NOT NULL DEFAULT 0` under a registry in BACKWARD mode (Confluent's default): the new
    value schema carries the column default (as Debezium's does), so the registry accepts it (a new required
    field without a default would be refused) and the task goes on with rows that carry `c`."""
    db = unique("avrodef")
    with TestSchemaRegistry() as reg:
        reg.config[""] = "BACKWARD"
        with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
            table = prepare(cur, db)
            task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                              name=f"{db}_task", format="avro",
                              sync={"full": True, "incremental": True, "ddl": True},
                              format_options={"schema_registry": {"url": reg.url}})
            run_obsync("run", str(task), "--until-caught-up")
            cur.execute(INSERT.format(t=table, v=ROWS[3]["sql"]))
            run_obsync("run", str(task), "--until-caught-up")
            cur.execute(f"ALTER TABLE {table} ADD COLUMN c INT NOT NULL DEFAULT 0, "
                        f"ADD COLUMN s VARCHAR(10) NOT NULL DEFAULT 'it''s', "
                        f"ADD COLUMN at_ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP")
            cur.execute(INSERT.format(t=table, v=ROW_4["sql"]))  # c and s take their defaults
            cur.execute(f"UPDATE {table} SET c = 7 WHERE id = 1")
            run_obsync("run", str(task), "--until-caught-up")

        consumer = SchemaRegistryClient(reg.url)
        topic = f"Topic_{db}_t"

        def decode(message: bytes | None) -> Any:
            if message is None:
                return None
            schema_id, payload = split_confluent(message)
            return read(payload, consumer.schema(schema_id))

        changes = by_key([(m, decode(m.key), decode(m.value)) for m in read_topic(kafka.bootstrap_servers, topic)])
        assert {k: [op for op, _ in v] for k, v in changes.items()} == {1: ["r", "u"], 2: ["r"], 3: ["c"], 4: ["c"]}
        def without_ts(row: dict) -> dict:
            assert isinstance(row["at_ts"], str) and row["at_ts"].endswith("Z")  # the row's own time, not the default
            return {k: v for k, v in row.items() if k != "at_ts"}

        assert changes[3][0][1]["after"] == ROWS[3]["decoded"]  # before the ALTER: no c
        assert without_ts(changes[4][0][1]["after"]) == {**ROW_4["decoded"], "c": 0, "s": "it's"}
        assert without_ts(changes[1][1][1]["before"]) == {**ROWS[1]["decoded"], "c": 0, "s": "it's"}
        assert without_ts(changes[1][1][1]["after"]) == {**ROWS[1]["decoded"], "c": 7, "s": "it's"}

        # the registry took the new value schema under BACKWARD: c and s are required, with their defaults
        assert reg.level(f"{topic}-value") == "BACKWARD"
        assert len(reg.subjects[f"{topic}-value"]) == 2
        new_value = json.loads(reg.schemas[reg.subjects[f"{topic}-value"][-1] - 1])
        fields = {f["name"]: f for f in new_value["fields"][0]["type"][1]["fields"]}
        assert fields["c"] == {"name": "c", "type": {"type": "int", "connect.default": 0}, "default": 0}
        assert fields["s"] == {"name": "s", "type": {"type": "string", "connect.default": "it's"},
                               "default": "it's"}
        # a NOT NULL TIMESTAMP defaulting to CURRENT_TIMESTAMP gets the epoch, as Debezium's schema has it
        assert fields["at_ts"]["default"] == "1970-01-01T00:00:00Z"
        old = json.loads(reg.schemas[reg.subjects[f"{topic}-value"][0] - 1])
        assert reg.incompatibilities(f"{topic}-value", old, None) == []

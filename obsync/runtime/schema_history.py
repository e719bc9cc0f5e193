"""The schema-history topic's start and its reading (record shapes: `obsync.formats.schema_history`).

The start (each synced table's CREATE TABLE) is written when the task is prepared, before the dataflow runs, so
it precedes every schema change the log adds (those go through the Kafka sink, which drops what a resumed run
already wrote). The start is made exactly once across crashes the same way: the topic is read first; when it
holds the start's last record (`"snapshot": "last"`) or any other record, the start is complete; otherwise only
the tables without a start record are written, in order, by an idempotent producer (a crash leaves a prefix,
the next start writes the rest, the last one marked).

A table added to the task's selection (`obsync reload`, or the task file changed while the task was stopped) gets
its CREATE record the same way, written before the new selection is recorded in the start point, at the source's
log position then (`write_history_added`): a crash before the selection is recorded makes the next attempt write
only what the topic does not already describe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from obsync.connectors.kafka.client import idempotent_producer
from obsync.connectors.kafka.records import POS_HEADER, SEQ_HEADER, TASK_HEADER
from obsync.connectors.kafka.tail import read_messages
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.connectors.mysql.snapshot.plan import show_create
from obsync.core.errors import SinkError
from obsync.core.positions import LogPosition, SnapshotPosition, position_to_header
from obsync.core.schema import TableSchema
from obsync.formats.debezium.table_changes import table_change, table_id
from obsync.formats.schema_history import create_record, replay

log = logging.getLogger(__name__)

START_STREAM = "schema-history"  # the `obsync.pos` chunk of start records: a stream of their own for the sink


def iter_history(conf: dict[str, Any], topic: str, timeout: float = 120.0) -> Iterator[dict[str, Any]]:
    """The record values of the history topic (partition 0), in order."""
    for m in read_messages(conf, topic, 0, timeout=timeout):
        if m.value is None:
            continue
        try:
            yield json.loads(m.value)
        except ValueError:
            raise SinkError(f"{topic}[0] offset {m.offset}: not a schema-history record (not JSON)") from None


def read_history(conf: dict[str, Any], topic: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Every record value of the history topic (partition 0), in order."""
    return list(iter_history(conf, topic, timeout))


def _start_complete(records: Iterator[dict[str, Any]], have: set[str]) -> bool:
    """Read the topic's start records into `have` (their table ids); True once a record shows the start is
    complete (the last start record, or any record after the start), reading no further."""
    for r in records:
        if r.get("position", {}).get("snapshot") in (None, False, "last"):
            return True
        have.update(i["id"] for i in r.get("tableChanges") or ())
    return False


def write_history_start(conf: dict[str, Any], topic: str, task_name: str, task_id: str, sql: Endpoint,
                        tables: Mapping[tuple[str, str], TableSchema], position: LogPosition) -> int:
    """Write the start records the topic lacks (see the module); how many were written."""
    have: set[str] = set()
    if _start_complete(iter_history(conf, topic), have):
        return 0
    todo = [tables[k] for k in sorted(tables) if table_id(*k) not in have]
    n = _write_creates(conf, topic, task_name, task_id, sql, todo, position, start=True)
    if n:
        log.info("schema history: the CREATE TABLE of %d tables written to %s at %s", n, topic, position)
    return n


def write_history_added(conf: dict[str, Any], topic: str, task_name: str, task_id: str, sql: Endpoint,
                        tables: Mapping[tuple[str, str], TableSchema], position: LogPosition) -> int:
    """The CREATE record of each of `tables` (just added to the task's selection) that the topic does not
    already describe as it is now, at `position` (where the task takes the new selection in); how many were
    written. Nothing while the topic's start is incomplete (the start, written next, describes every table).
    Idempotent: a crash after some records leaves them in the topic, and the next call writes the others."""
    have: set[str] = set()
    values = list(iter_history(conf, topic))
    if not _start_complete(iter(values), have):
        return 0
    known = replay(values)
    todo = [tables[k] for k in sorted(tables)
            if known.get(k) != json.loads(json.dumps(table_change("CREATE", k[0], k[1], tables[k])["table"]))]
    n = _write_creates(conf, topic, task_name, task_id, sql, todo, position, start=False)
    if n:
        log.info("schema history: the CREATE TABLE of %d added tables written to %s at %s", n, topic, position)
    return n


def _write_creates(conf: dict[str, Any], topic: str, task_name: str, task_id: str, sql: Endpoint,
                   todo: list[TableSchema], position: LogPosition, start: bool) -> int:
    """Write a CREATE record of each of `todo` at `position` (start records when `start`, the last marked) with
    an idempotent producer, in order; how many were written."""
    if not todo:
        return 0
    failed: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(err.str())

    producer = idempotent_producer({**conf, "enable.idempotence": True, "acks": "all",
                                    "logger": logging.getLogger("obsync.rdkafka")}, topic)
    conn = connect(sql)
    try:
        for i, table in enumerate(todo):
            mark: bool | str = ("last" if i == len(todo) - 1 else True) if start else False
            key, value = create_record(task_name, position, table, show_create(conn, table), snapshot=mark)
            # not a log position: the sink, which writes the log's records here, must not take it for one
            pos = SnapshotPosition(START_STREAM, (table.db, table.name))
            producer.produce(topic, value, key, partition=0, on_delivery=on_delivery, headers=[
                (TASK_HEADER, task_id.encode()), (POS_HEADER, position_to_header(pos)), (SEQ_HEADER, b"0")])
            producer.poll(0)
    finally:
        conn.close()
        left = producer.flush(60)
    if failed or left:
        raise SinkError(f"cannot write the schema history's CREATE TABLE records to topic {topic}: "
                        f"{failed[0] if failed else f'{left} records not acknowledged within 60 s'}; start the task "
                        "again (the records written are kept, the others written then)")
    return len(todo)

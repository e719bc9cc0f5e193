"""`BinlogSource` in Bytewax: batches as items, the gate, stop_at, coalescing small batches, and resuming a partition
from its snapshot."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from obsync.connectors.mysql.binlog import current_log_position
from obsync.connectors.mysql.binlog.source import BinlogSource
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.core.changes import Change, Op


@pytest.fixture
def source_db(mariadb: Any) -> Iterator[tuple[Endpoint, str, Any]]:
    ep = Endpoint(mariadb.host, mariadb.port, mariadb.user, mariadb.password)
    name = f"bs_{uuid.uuid4().hex[:8]}"
    conn = connect(ep)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(f"CREATE TABLE {name}.t (id INT PRIMARY KEY, v VARCHAR(10))")
    yield ep, name, conn
    conn.close()


def _sql(conn: Any, *stmts: str) -> None:
    with conn.cursor() as cur:
        for s in stmts:
            cur.execute(s)


def test_the_source_emits_batches_until_stop_at_after_the_gate_opens(source_db: tuple, tmp_path: Any) -> None:
    ep, name, conn = source_db
    start = current_log_position(ep)
    _sql(conn, *(f"INSERT INTO {name}.t VALUES ({i}, 'v{i}')" for i in range(1, 8)))
    stop = current_log_position(ep)
    opened_at: list[float] = []
    t0 = time.monotonic()

    def gate() -> bool:
        if time.monotonic() - t0 < 1.0:
            return False
        opened_at.append(time.monotonic())
        return True

    out: list[Any] = []
    flow = Dataflow("binlog_source_test")
    batches = op.input("in", flow, BinlogSource(ep, server_id=9301, tables=[(name, "t")],
                                                history_dir=str(tmp_path), start=start, stop_at=stop,
                                                batch_size=3, gate=gate))
    op.output("out", batches, TestingSink(out))
    run_main(flow)
    assert opened_at and len(opened_at) == 1
    assert all(isinstance(b, list) and 0 < len(b) <= 3 for b in out)
    changes: list[Change] = [c for b in out for c in b]
    assert [(c.op, c.after) for c in changes] == [(Op.INSERT, {"id": i, "v": f"v{i}"}) for i in range(1, 8)]


def test_a_partition_rebuilt_from_its_snapshot_continues_after_the_last_batch(source_db: tuple) -> None:
    ep, name, conn = source_db
    start = current_log_position(ep)
    _sql(conn, "BEGIN", *(f"INSERT INTO {name}.t VALUES ({i}, 'x')" for i in range(1, 11)), "COMMIT")
    stop = current_log_position(ep)
    source = BinlogSource(ep, server_id=9302, tables=[(name, "t")], history_dir=None, start=start,
                          stop_at=stop, batch_size=4)
    assert source.list_parts() == ["log"]

    def next_items(part: Any) -> list[Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            items = part.next_batch()
            if items:
                return items
            time.sleep(0.02)
        raise AssertionError("no batch")

    part = source.build_part("in", "log", None)
    first = next_items(part)
    state = part.snapshot()
    part.close()
    assert [c.after["id"] for c in first[0]] == [1, 2, 3, 4]

    part = source.build_part("in", "log", state)
    ids: list[int] = []
    try:
        while True:
            for batch in next_items(part):
                ids += [c.after["id"] for c in batch]
    except StopIteration:
        pass
    part.close()
    assert ids == list(range(5, 11))


def test_after_a_small_batch_the_partition_takes_what_arrives_within_the_coalescing_window_as_one(
        source_db: tuple) -> None:
    ep, name, conn = source_db
    start = current_log_position(ep)
    source = BinlogSource(ep, server_id=9303, tables=[(name, "t")], history_dir=None, start=start, batch_size=3,
                          coalesce=2.0)
    part = source.build_part("in", "log", None)
    try:
        assert part.next_batch() == []  # starts the reader
        _sql(conn, *(f"INSERT INTO {name}.t VALUES ({i}, 'x')" for i in range(1, 6)))  # five transactions
        time.sleep(1.0)

        def ids(items: list[Any]) -> list[list[int]]:
            return [[c.after["id"] for c in batch] for batch in items]

        assert ids(part.next_batch()) == [[1, 2, 3]]  # a full batch: the next is taken at once
        assert ids(part.next_batch()) == [[4, 5]]
        small_at = time.monotonic()
        _sql(conn, f"INSERT INTO {name}.t VALUES (6, 'x')")
        time.sleep(0.5)
        _sql(conn, f"INSERT INTO {name}.t VALUES (7, 'x')")
        time.sleep(0.5)
        assert part.next_batch() == []  # within 2 s of the small batch: nothing taken, though 6 and 7 were read
        awake = part.next_awake()
        assert awake is not None and datetime.now(UTC) < awake <= datetime.now(UTC) + timedelta(seconds=2)
        time.sleep(max(0.0, (awake - datetime.now(UTC)).total_seconds()) + 0.05)
        assert ids(part.next_batch()) == [[6, 7]]  # both, in order, as one batch
        assert time.monotonic() - small_at >= 2.0
    finally:
        part.close()

"""SnapshotSource as a Bytewax source: batches per chunk, StreamDone per chunk, resume from snapshots."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, cluster_main, run_main

from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot import SnapshotPlan, plan_snapshot
from obsync.connectors.mysql.snapshot.source import SnapshotSource
from obsync.core.changes import Change, StreamDone
from obsync.core.positions import SnapshotPosition


@pytest.fixture(params=["mariadb", "seekdb"])
def planned(request: pytest.FixtureRequest) -> Iterator[tuple[Endpoint, SnapshotPlan]]:
    """Tables `a` (int key, 25 rows) and `n` (no key, 7 rows), planned in chunks of 10."""
    server = request.getfixturevalue(request.param)
    ep = Endpoint(server.host, server.port, server.user, server.password)
    conn = connect(ep)
    db = f"snaps_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.a (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"INSERT INTO {db}.a VALUES " + ",".join(f"({i}, 'v{i}')" for i in range(25)))
        cur.execute(f"CREATE TABLE {db}.n (v INT)")
        cur.execute(f"INSERT INTO {db}.n VALUES " + ",".join(f"({i})" for i in range(7)))
    schemas = [load_table_schema(conn, db, t) for t in ("a", "n")]
    plan = plan_snapshot(conn, detect_dialect(conn), schemas, chunk_size=10)
    yield ep, plan
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {db}")
    conn.close()


def drain(part: object) -> list[list]:
    """Every item of a partition until StopIteration (no waiting partitions here)."""
    items: list[list] = []
    while True:
        try:
            got = part.next_batch()  # type: ignore[attr-defined]  # a partition of either source type
        except StopIteration:
            return items
        assert len(got) <= 1  # one batch per call
        items += got


@pytest.mark.parametrize("workers", [1, 2])
def test_dataflow_emits_each_row_once_in_batches_then_stream_done_per_chunk(
        planned: tuple[Endpoint, SnapshotPlan], workers: int) -> None:
    ep, plan = planned
    out: list[list] = []
    flow = Dataflow("snapshot_source_test")
    op.output("out", op.input("snap", flow, SnapshotSource(ep, plan, batch_size=4)), TestingSink(out))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)

    per_chunk: dict[str, list] = defaultdict(list)
    for item in out:
        assert isinstance(item, list) and item
        if isinstance(item[0], StreamDone):
            assert len(item) == 1
            per_chunk[item[0].stream.removeprefix("snapshot:")].append(item[0])
        else:
            assert all(isinstance(c, Change) for c in item) and len(item) <= 4
            chunk = item[0].position.chunk
            assert all(c.position.chunk == chunk for c in item)
            per_chunk[chunk].extend(item)
    assert sorted(per_chunk) == sorted(plan.chunk_ids)
    for cid, items in per_chunk.items():
        assert isinstance(items[-1], StreamDone) and not any(isinstance(i, StreamDone) for i in items[:-1])
        assert items[-1].stream == SnapshotPosition(cid, ()).stream
        keys = [c.position.key for c in items[:-1]]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
    changes = [c for items in per_chunk.values() for c in items[:-1]]
    a, n = (t.full_name for t in plan.tables)
    assert sorted(c.after["id"] for c in changes if c.table.full_name == a) == list(range(25))
    assert sorted(c.after["v"] for c in changes if c.table.full_name == n) == list(range(7))


def test_partition_resumes_after_the_last_batch_of_its_snapshot(planned: tuple[Endpoint, SnapshotPlan]) -> None:
    ep, plan = planned
    source = SnapshotSource(ep, plan, batch_size=3)
    for cid in plan.chunk_ids:
        everything = drain(source.build_part("snap", cid, None))
        part = source.build_part("snap", cid, None)
        first = part.next_batch()
        state = json.loads(json.dumps(part.snapshot()))
        part.close()
        resumed = drain(source.build_part("snap", cid, state))
        assert resumed[-1] == everything[-1] == [StreamDone(SnapshotPosition(cid, ()).stream)]
        if plan.table_of(cid).mode == "ordinal" and plan.dialect != "oceanbase":
            # MySQL/MariaDB, no key: the scan restarts under a later attempt, after everything written before
            assert [c.after for b in resumed[:-1] for c in b] == [c.after for b in everything[:-1] for c in b]
            attempt, ordinal = resumed[0][0].position.key
            assert ordinal == 1 and attempt > first[0][0].position.key[0] > everything[0][0].position.key[0]
        else:
            assert first + resumed == everything, cid


def test_finished_partition_emits_stream_done_again_and_stops(planned: tuple[Endpoint, SnapshotPlan]) -> None:
    ep, plan = planned
    source = SnapshotSource(ep, plan, batch_size=100)
    cid = plan.chunk_ids[0]
    part = source.build_part("snap", cid, None)
    [batch] = part.next_batch()
    assert len(batch) == 10  # the whole chunk; the reader knows it is exhausted
    assert part.snapshot()["done"] is True
    assert part.next_batch() == [[StreamDone(SnapshotPosition(cid, ()).stream)]]
    with pytest.raises(StopIteration):
        part.next_batch()

    again = source.build_part("snap", cid, part.snapshot())
    assert again.next_batch() == [[StreamDone(SnapshotPosition(cid, ()).stream)]]
    with pytest.raises(StopIteration):
        again.next_batch()
    assert again.snapshot() == part.snapshot()


def test_a_worker_reads_one_chunk_at_a_time_by_default(planned: tuple[Endpoint, SnapshotPlan]) -> None:
    ep, plan = planned
    source = SnapshotSource(ep, plan, batch_size=4)
    one, two = (source.build_part("snap", cid, None) for cid in plan.chunk_ids[:2])
    assert len(one.next_batch()[0]) == 4
    assert two.next_batch() == []  # waits without opening a connection
    assert two.next_awake() is not None and two.next_awake() > datetime.now(UTC)
    drain(one)
    assert len(two.next_batch()[0]) == 4 and two.next_awake() is None
    two.close()

    wide = SnapshotSource(ep, plan, batch_size=4, chunks_per_worker=2)
    p1, p2 = (wide.build_part("snap", cid, None) for cid in plan.chunk_ids[:2])
    assert p1.next_batch() and p2.next_batch()
    p1.close()
    p2.close()

"""Snapshot read throughput: a 10-column table read by the snapshot reader, on MariaDB and on seekdb.

    python -m bench.snapshot_bench [--rows 200000] [--chunk-size 50000] [--batch-size 2000]
                                   [--mariadb-port P] [--seekdb-port P] [--only mariadb|seekdb]

Starts the servers it needs in a temporary directory unless given ports of running ones (user root, no
password). Prints rows/s for:
  raw         pymysql unbuffered `SELECT *` with its default decoders (the ceiling)
  keyset      the chunk queries the reader runs, rows only (no canonical values, no Change objects)
  reader      ChunkReader: the same queries, canonical values and Change objects (what the source emits)
  reader-str  ChunkReader on the same table keyed by a VARCHAR (rows ordered by their UTF-8 bytes)
  source      SnapshotSource in a 1-worker Bytewax dataflow into a counting sink
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot.keys import KeySql, select_sql, table_sql
from obsync.connectors.mysql.snapshot.plan import SnapshotPlan, plan_snapshot
from obsync.connectors.mysql.snapshot.reader import ChunkReader
from obsync.connectors.mysql.values import use_sql_decoders

DDL = """CREATE TABLE {t} (
  id BIGINT NOT NULL, a INT NOT NULL, b BIGINT NOT NULL, c VARCHAR(64) NOT NULL, d DECIMAL(12,2) NOT NULL,
  e DOUBLE NOT NULL, f DATETIME(3) NOT NULL, g TIMESTAMP(6) NOT NULL DEFAULT '2024-01-01 00:00:00',
  h DATE NOT NULL, i TINYINT NOT NULL, PRIMARY KEY ({pk}))"""


def load(ep: Endpoint, rows: int) -> None:
    conn = connect(ep)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS bench_snap")
        cur.execute("CREATE DATABASE bench_snap CHARACTER SET utf8mb4")
        cur.execute(DDL.format(t="bench_snap.t", pk="id"))
        step = 2000
        for lo in range(0, rows, step):
            vals = ",".join(
                f"({i},{i % 1000},{i * 7},'name-{i}',{i / 100:.2f},{i / 3!r},'2024-05-06 07:08:09.123',"
                f"'2024-01-02 03:04:05.{i % 1000000:06d}','2024-02-{i % 28 + 1:02d}',{i % 100})"
                for i in range(lo, min(lo + step, rows)))
            cur.execute(f"INSERT INTO bench_snap.t VALUES {vals}")
        cur.execute(DDL.format(t="bench_snap.s", pk="c"))
        cur.execute("INSERT INTO bench_snap.s SELECT * FROM bench_snap.t")
    conn.close()


def rate(label: str, fn: Any, *args: Any, expect: int) -> None:
    """Run `fn(*args) -> (rows, wall seconds)`; print rows/s and this process's CPU time per row (the
    client's share, which does not depend on what else runs on the machine)."""
    cpu0 = time.process_time()
    n, seconds = fn(*args)
    cpu = time.process_time() - cpu0
    status = "" if n == expect else f"  (!! {n} rows, expected {expect})"
    print(f"  {label:11} {n / seconds:>10,.0f} rows/s  {cpu / max(n, 1) * 1e6:5.1f} us CPU/row  "
          f"({n} rows in {seconds:.2f} s){status}", flush=True)


def bench_raw(ep: Endpoint, table: str) -> tuple[int, float]:
    conn = pymysql.connect(**ep.pymysql_kwargs(), charset="utf8mb4", cursorclass=pymysql.cursors.SSCursor)
    t0 = time.perf_counter()
    n = 0
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        while batch := cur.fetchmany(2000):
            n += len(batch)
    dt = time.perf_counter() - t0
    conn.close()
    return n, dt


def bench_keyset(ep: Endpoint, plan: SnapshotPlan, batch_size: int) -> tuple[int, float]:
    """The reader's queries without canonicalisation or Change objects."""
    conn = connect(ep)
    use_sql_decoders(conn)
    if plan.dialect == "oceanbase":
        with conn.cursor() as cur:
            cur.execute("SET SESSION ob_query_timeout = 3600000000")
    t0 = time.perf_counter()
    n = 0
    for chunk in plan.chunks:
        tp = plan.table(chunk.table)
        schema = tp.schema
        cols = [schema.column(c) for c in schema.key_columns]
        native = KeySql.of(cols, ["native"] * len(cols))
        base = f"SELECT {select_sql(schema.columns)} FROM {table_sql(schema.db, schema.name, plan.scn)}"
        kidx = [schema.column_names.index(c) for c in schema.key_columns]
        last: Any = None
        while True:
            conds, params = [], []
            for op, key in ((">", last if last is not None else chunk.lo), ("<=", chunk.hi)):
                if key is not None:
                    c, p = native.compare(op, key)  # type: ignore[arg-type]  # op is '>' or '<='
                    conds.append(f"({c})")
                    params += p
            where = (" WHERE " + " AND ".join(conds)) if conds else ""
            with conn.cursor() as cur:
                cur.execute(f"{base}{where} ORDER BY {native.order_by} LIMIT {batch_size}", params)
                rows = cur.fetchall()
            n += len(rows)
            if len(rows) < batch_size:
                break
            last = tuple(rows[-1][i] for i in kidx)
    dt = time.perf_counter() - t0
    conn.close()
    return n, dt


def bench_reader(ep: Endpoint, plan: SnapshotPlan, batch_size: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for cid in plan.chunk_ids:
        reader = ChunkReader(ep, plan, cid, batch_size)
        while (batch := reader.next_batch()) is not None:
            n += len(batch)
        reader.close()
    return n, time.perf_counter() - t0


def bench_source(ep: Endpoint, plan: SnapshotPlan, batch_size: int) -> tuple[int, float]:
    from bytewax import operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import run_main

    from obsync.connectors.mysql.snapshot.source import SnapshotSource
    from obsync.core.changes import Change

    count = [0]

    class _Count(StatelessSinkPartition):
        def write_batch(self, items: list) -> None:
            count[0] += sum(sum(1 for c in b if isinstance(c, Change)) for b in items)

    class _Sink(DynamicSink):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Count:
            return _Count()

    flow = Dataflow("snapshot_bench")
    s = op.input("snap", flow, SnapshotSource(ep, plan, batch_size))
    op.output("count", s, _Sink())
    t0 = time.perf_counter()
    run_main(flow)
    return count[0], time.perf_counter() - t0


def run(name: str, ep: Endpoint, rows: int, chunk_size: int, batch_size: int) -> None:
    print(f"{name}: loading {rows} rows ...", flush=True)
    load(ep, rows)
    conn = connect(ep)
    dialect = detect_dialect(conn)
    t0 = time.perf_counter()
    plan = plan_snapshot(conn, dialect, [load_table_schema(conn, "bench_snap", "t")], chunk_size)
    plan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    splan = plan_snapshot(conn, dialect, [load_table_schema(conn, "bench_snap", "s")], chunk_size)
    splan_s = time.perf_counter() - t0
    conn.close()
    print(f"{name} ({dialect}): {len(plan.chunks)} chunks of {chunk_size}, batches of {batch_size}; "
          f"planning {plan_s:.2f} s (varchar key: {splan_s:.2f} s)", flush=True)
    rate("raw", bench_raw, ep, "bench_snap.t", expect=rows)
    rate("keyset", bench_keyset, ep, plan, batch_size, expect=rows)
    rate("reader", bench_reader, ep, plan, batch_size, expect=rows)
    rate("reader-str", bench_reader, ep, splan, batch_size, expect=rows)
    rate("source", bench_source, ep, plan, batch_size, expect=rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--chunk-size", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=2_000)
    ap.add_argument("--mariadb-port", type=int)
    ap.add_argument("--seekdb-port", type=int)
    ap.add_argument("--only", choices=("mariadb", "seekdb"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="obsync-snapbench-") as tmp:
        for name in ("mariadb", "seekdb"):
            if args.only and args.only != name:
                continue
            port = getattr(args, f"{name}_port")
            server = None
            if port is None:
                from obsync.app.embedded.mariadb import MariaDBServer
                from obsync.app.embedded.seekdb import SeekDBServer

                server = (MariaDBServer(Path(tmp) / name) if name == "mariadb"
                          else SeekDBServer(Path(tmp) / name))
                port = server.port
            try:
                run(name, Endpoint("127.0.0.1", port, "root", ""), args.rows, args.chunk_size, args.batch_size)
            finally:
                if server is not None:
                    server.close()


if __name__ == "__main__":
    main()

"""The stage rates end-to-end sync is bounded by, in one process, on the e2e bench's table (`bench.e2e`).

    python -m bench.stages [--rows 200000] [--format default] [--partitions 3] [--repeat 3]

Starts a MariaDB (binlog_row_metadata=MINIMAL) and a tansu broker, writes `--rows` rows of the 10-column table
of `bench.e2e` in 5,000-row transactions, then measures each stage alone on those rows:

  select      the snapshot reader: keyset SELECTs, canonical values, Change objects (`ChunkReader`)
  binlog      the log reader: read + row decode into Change objects (`BinlogReader`)
  encode      shape + encode + route of the snapshot rows and of the log rows (`Shaper`, `Router`): what the
              dataflow's middle steps do per row, without the engine
  lanes/log   shape + `Router.pick` of the log rows: what stays on the worker reading the log when a run has
              several workers (each row's partition, grouped by lane); then `pickle` of those lane batches (as
              they cross to another process, twice as Bytewax does) and `expand/log`, unpickling them and
              `Router.expand`: the encoding done by the workers writing the lanes
  produce     the Kafka sink writing the encoded snapshot records and flushing (`KafkaSink` lanes): position
              headers, deduplication bookkeeping, delivery reports, librdkafka (its threads included)

For each: rows/s (wall) and CPU µs per row (this process's CPU time, all threads, for `binlog` (the reader
decodes in a thread of its own) and `produce` (librdkafka's threads); the calling thread's for `select` and
`encode`). CPU per row does not depend on what else the machine runs; wall rates do. The best (least CPU) of
`--repeat` passes of `encode` and `produce` is printed. The sums of the CPU per row bound what one process can do:
full sync needs select + encode + produce, incremental binlog + encode/log + produce.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from bench.e2e import DDL, insert_rows
from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.tansu import TansuBroker
from obsync.connectors.kafka.records import OutItem, OutRecord
from obsync.connectors.kafka.sink import KafkaSink
from obsync.connectors.mysql.binlog import BinlogReader, current_log_position
from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot.plan import plan_snapshot
from obsync.connectors.mysql.snapshot.reader import ChunkReader
from obsync.core.changes import Item
from obsync.formats.base import EncoderContext
from obsync.formats.registry import encoder_for
from obsync.runtime.progress import Progress
from obsync.steps.large_messages import LargeMessages
from obsync.steps.routing import LaneWork, Router, TopicLayout
from obsync.steps.shaping import Shaper
from obsync.task.config import ObjectConfig
from obsync.task.selection import Selection

TOPIC = "Topic_bench_t"


def line(label: str, rows: int, wall: float, cpu: float) -> None:
    print(f"  {label:9} {rows / wall:>10,.0f} rows/s  {cpu / max(rows, 1) * 1e6:6.2f} us CPU/row  "
          f"({rows} rows in {wall:.2f} s)", flush=True)


def read_snapshot(ep: Endpoint, batch_size: int) -> tuple[list[list[Item]], float, float]:
    conn = connect(ep)
    plan = plan_snapshot(conn, detect_dialect(conn), [load_table_schema(conn, "bench", "t")], 50_000)
    conn.close()
    batches: list[list[Item]] = []
    t0, c0 = time.perf_counter(), time.thread_time()
    for cid in plan.chunk_ids:
        reader = ChunkReader(ep, plan, cid, batch_size)
        while (batch := reader.next_batch()) is not None:
            batches.append(list(batch))
        reader.close()
    return batches, time.perf_counter() - t0, time.thread_time() - c0


def read_log(ep: Endpoint, start: Any, stop: Any, hist: Path) -> tuple[list[list[Item]], float, float]:
    reader = BinlogReader(ep, server_id=4243, tables=[("bench", "t")], history_dir=str(hist), start=start,
                          stop_at=stop, batch_size=500)
    batches: list[list[Item]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    while not reader.finished:
        b = reader.poll(1.0)
        if b:
            batches.append(list(b))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    reader.close()
    return batches, wall, cpu


def best(repeat: int, fn: Callable[[], tuple[int, float, float]]) -> tuple[int, float, float]:
    runs = [fn() for _ in range(repeat)]
    return min(runs, key=lambda r: r[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--format", default="default")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="obsync-stages-"))
    db = MariaDBServer(base / "mariadb")
    broker = TansuBroker(base / "tansu")
    try:
        conn = db.connect(autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
            cur.execute(DDL)
        ep = Endpoint(db.host, db.port, "root", "")
        start = current_log_position(ep)
        insert_rows(conn, 1, args.rows)
        stop = current_log_position(ep)
        print(f"table bench.t: {args.rows} rows, 10 columns; MariaDB binlog_row_metadata=MINIMAL; tansu broker; "
              f"format {args.format}, {args.partitions} partitions", flush=True)

        snap, wall, cpu = read_snapshot(ep, 2000)
        n_snap = sum(len(b) for b in snap)
        line("select", n_snap, wall, cpu)
        log_batches, wall, cpu = read_log(ep, start, stop, base / "history")
        n_log = sum(len(b) for b in log_batches)
        line("binlog", n_log, wall, cpu)

        encoder = encoder_for(args.format, EncoderContext("bench", "MYSQL"))
        layout = TopicLayout({("bench", "t"): TOPIC}, {TOPIC: args.partitions})
        shaper = Shaper(Selection([ObjectConfig(match="bench.t")]))
        # messages checked against the topic's size limit, as in a task (`large_messages`)
        router = Router(encoder, layout, "hash", large=LargeMessages("fail", encoder, lambda topic: 1_048_588))

        def encode(batches: list[list[Item]]) -> tuple[list[list[tuple[str, list[OutItem]]]], float, float]:
            out = []
            t0, c0 = time.perf_counter(), time.thread_time()
            for b in batches:
                out.append(router.route(shaper.shape(b)))
            return out, time.perf_counter() - t0, time.thread_time() - c0

        routed: list[list[tuple[str, list[OutItem]]]] = []

        def enc_snap() -> tuple[int, float, float]:
            nonlocal routed
            routed, w, c = encode(snap)
            return n_snap, w, c

        line("encode", *best(args.repeat, enc_snap))
        snap.clear()  # the routed records are kept for `produce`; the changes are not needed any more
        n, w, c = best(args.repeat, lambda: (n_log, *encode(log_batches)[1:]))
        line("encode/log", n, w, c)

        def timed(fn: Callable[[], Any]) -> tuple[int, float, float]:
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            return n_log, time.perf_counter() - t0, time.thread_time() - c0

        lanes: list[Any] = []
        line("lanes/log", *best(args.repeat, lambda: timed(
            lambda: lanes.__setitem__(slice(None), [w for b in log_batches for _, w in router.pick(shaper.shape(b))]))))
        blobs: list[bytes] = []

        def crossing() -> None:  # Bytewax pickles an item crossing processes twice (timely: size, then bytes)
            fresh = [LaneWork(w.lane, w.items) for w in lanes]  # nothing kept from an earlier pass
            blobs[:] = [pickle.dumps(w) for w in fresh]
            for w in fresh:
                pickle.dumps(w)
        line("pickle", *best(args.repeat, lambda: timed(crossing)))
        line("expand/log", *best(args.repeat, lambda: timed(lambda: [router.expand(pickle.loads(b)) for b in blobs])))
        log_batches.clear()
        lanes.clear()
        blobs.clear()

        passes = iter(range(1, 1000))

        def produce() -> tuple[int, float, float]:
            # a topic of its own for each pass (so that a pass finds nothing written before it)
            topic = f"{TOPIC}_{next(passes)}"
            admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result()
            layout.partitions[topic] = args.partitions
            batches: list[list[tuple[str, list[OutItem]]]] = []
            for batch in routed:
                lanes: dict[str, list[OutItem]] = {}
                for _, records in batch:
                    for r in records:
                        if isinstance(r, OutRecord):
                            lanes.setdefault(layout.lane(topic, r.partition), []).append(r._replace(topic=topic))
                batches.append(list(lanes.items()))
            sink = KafkaSink({"bootstrap.servers": broker.bootstrap_servers}, layout.parts(), f"bench-{time.time()}",
                             frozenset(), lambda lane: None, listener=Progress(interval=1e9))
            parts = {name: sink.build_part("kafka", name, None) for name in layout.parts()}
            # open the partitions first: reading a partition's tail on first sight is not the per-row cost
            for p in range(args.partitions):
                parts[layout.lane(topic, p)].open(topic, p)
            t0, c0 = time.perf_counter(), time.process_time()
            for batch in batches:
                for name, records in batch:
                    parts[name].write_batch([records])
            for p in parts.values():
                p.snapshot()  # flushes: every message acknowledged
            return n_snap, time.perf_counter() - t0, time.process_time() - c0

        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        line("produce", *best(args.repeat, produce))
    finally:
        broker.close()
        db.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the dataflow's steps after the log reader cost per row, by the size of the batches they get.

    python -m bench.batch_sizes [--rows 20000] [--sizes 1 2 5 25 100] [--format default]

Starts a MariaDB (binlog_row_metadata=MINIMAL) and a tansu broker, writes `--rows` single-row transactions of
`bench.e2e`'s table (a loop in the server), reads them back with a `BinlogReader`, then for each size feeds them
in batches of that size through shape + `Router.route` and the Kafka sink's lanes (`KafkaSink`, 3 partitions; a
topic of its own per size), and flushes. Printed per size: CPU µs per row of the process (librdkafka's threads
included) and of the calling thread, split into route (shape + encode + route) and sink (`write_batch`); and wall
µs per row. The Bytewax engine's own cost per batch comes on top. Under a steady trickle of small transactions
the batch size is what the binlog partition hands out (`obsync.connectors.mysql.binlog.source`, coalescing).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from bench.e2e import DDL
from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.tansu import TansuBroker
from obsync.connectors.kafka.sink import KafkaSink
from obsync.connectors.mysql.binlog import BinlogReader, current_log_position
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.changes import Change
from obsync.formats.base import EncoderContext
from obsync.formats.registry import encoder_for
from obsync.runtime.progress import Progress
from obsync.steps.routing import Router, TopicLayout
from obsync.steps.shaping import Shaper
from obsync.task.config import ObjectConfig
from obsync.task.selection import Selection

PARTITIONS = 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 5, 25, 100])
    ap.add_argument("--format", default="default")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="obsync-batch-sizes-"))
    db = MariaDBServer(base / "mariadb", extra_args=("--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"))
    broker = TansuBroker(base / "tansu")
    try:
        ep = Endpoint(db.host, db.port, "root", "")
        conn = db.connect(autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
            cur.execute(DDL)
        start = current_log_position(ep)
        with conn.cursor() as cur:  # one autocommit INSERT per row, looped in the server
            cur.execute(f"BEGIN NOT ATOMIC FOR k IN 1..{args.rows} DO INSERT INTO bench.t (id,a,b,c,d,e,f,h,i) "
                        "VALUES (k, k % 1000, k * 7, CONCAT('name-', k), k / 100, k / 3, '2024-05-06 07:08:09.123', "
                        "'some text here', k % 100); END FOR; END")
        stop = current_log_position(ep)
        reader = BinlogReader(ep, server_id=4245, tables=[("bench", "t")], history_dir=str(base / "history"),
                              start=start, stop_at=stop, batch_size=500)
        changes: list[Change] = []
        while not reader.finished:
            changes += reader.poll(1.0)
        reader.close()
        n = len(changes)
        print(f"{n} single-row transactions of bench.t; format {args.format}; {PARTITIONS} partitions", flush=True)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        encoder = encoder_for(args.format, EncoderContext("bench", "MYSQL"))
        shaper = Shaper(Selection([ObjectConfig(match="bench.t")]))
        for size in args.sizes:
            topic = f"Topic_batches_{size}"
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
            layout = TopicLayout({("bench", "t"): topic}, {topic: PARTITIONS})
            router = Router(encoder, layout, "hash")
            sink = KafkaSink({"bootstrap.servers": broker.bootstrap_servers}, layout.parts(), f"bench-{time.time()}",
                             frozenset(), lambda lane: None, listener=Progress(interval=1e9))
            parts = {name: sink.build_part("kafka", name, None) for name in layout.parts()}
            for p in range(PARTITIONS):  # reading a partition's tail on first sight is not the per-row cost
                parts[layout.lane(topic, p)].open(topic, p)
            t0, c0, tc0 = time.perf_counter(), time.process_time(), time.thread_time()
            route = 0.0
            for i in range(0, n, size):
                r0 = time.thread_time()
                routed = router.route(shaper.shape(changes[i:i + size]))
                route += time.thread_time() - r0
                for name, records in routed:
                    parts[name].write_batch([records])
            thread = time.thread_time() - tc0
            for part in parts.values():
                part.snapshot()  # flushes: every message acknowledged
            us = 1e6 / n
            print(f"  batches of {size:4}: {(time.process_time() - c0) * us:5.1f} us CPU/row (the calling thread "
                  f"{thread * us:5.1f}: route {route * us:5.1f}, sink {(thread - route) * us:5.1f}), "
                  f"wall {(time.perf_counter() - t0) * us:5.1f} us/row", flush=True)
    finally:
        broker.close()
        db.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

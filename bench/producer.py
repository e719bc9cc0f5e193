"""CPU a message costs librdkafka and the producing thread, by compression, with a format's real records.

    python -m bench.producer [--format debezium] [--compression lz4 none snappy zstd] [--gap 0.02 --chunk 300]

Starts a tansu broker, encodes 20,000 snapshot rows of `bench.encode_default`'s 10-column row in the format (as
the dataflow routes them: keys, values and partitions), and writes them `--repeat` times to a 3-partition topic
of its own per compression with the sink's producer settings (idempotence, acks=all, linger.ms 20, one delivery
report per message), then flushes. `--gap S --chunk N` sleeps S seconds after every N messages: the bursty
arrival of a lane's batches, at which librdkafka sends more, smaller produce batches. Prints messages/s and the
CPU µs per message of this process's Python threads and of librdkafka's (`rdk:*`), from /proc. Allocator
settings go in the environment (e.g. `GLIBC_TUNABLES=glibc.malloc.trim_threshold=8388608:...`): this is how the
allocator experiment in docs/performance.md ("Tried and left out") was measured.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.e2e import thread_cpu_seconds
from bench.encoders import changes
from bench.stages import Encoding
from obsync.app.embedded.tansu import TansuBroker
from obsync.connectors.kafka.records import OutRecord


def cpu_since(before: dict[int, tuple[str, float]]) -> dict[str, float]:
    """This process's CPU seconds since `before` (`thread_cpu_seconds`): librdkafka's threads and the others."""
    now: dict[int, tuple[str, float]] = {}
    thread_cpu_seconds(os.getpid(), now)
    out = {"python": 0.0, "librdkafka": 0.0}
    for tid, (kind, cpu) in now.items():
        out["librdkafka" if kind == "librdkafka" else "python"] += cpu - before.get(tid, (kind, 0.0))[1]
    return out


def records(fmt: str, rows: int = 20_000) -> list[OutRecord]:
    items = changes(rows)["snapshot row"]
    enc = Encoding(fmt, ("shop", "orders"), "t", 3)
    return [r for i in range(0, rows, 2000) for _, batch in enc.router.route(enc.shaper.shape(items[i:i + 2000]))
            for r in batch if isinstance(r, OutRecord)]


def write(bootstrap: str, recs: list[OutRecord], compression: str, repeat: int, gap: float, chunk: int) -> str:
    topic = f"bench_producer_{compression}_{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 20, "batch.num.messages": 10000, "compression.type": compression,
                         "queue.buffering.max.kbytes": 65536})
    acked = [0]

    def report(err: object, msg: object) -> None:
        acked[0] += 1

    producer.produce(topic, b"warm-up", partition=0, on_delivery=report)
    producer.flush()
    before: dict[int, tuple[str, float]] = {}
    thread_cpu_seconds(os.getpid(), before)
    t0 = time.perf_counter()
    n = 0
    for _ in range(repeat):
        for r in recs:
            while True:
                try:
                    producer.produce(topic, r.value, r.key, r.partition, report)
                    break
                except BufferError:
                    producer.poll(0.01)
            n += 1
            if n % 1000 == 0:
                producer.poll(0)
            if gap and n % chunk == 0:
                time.sleep(gap)
    producer.flush()
    wall, cpu = time.perf_counter() - t0, cpu_since(before)
    assert acked[0] == n + 1, f"{acked[0] - 1} of {n} messages acknowledged"
    return (f"{compression:7} {n / wall:9,.0f} msg/s   Python {cpu['python'] / n * 1e6:5.2f} us/msg   "
            f"librdkafka {cpu['librdkafka'] / n * 1e6:5.2f} us/msg")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", default="debezium")
    ap.add_argument("--compression", nargs="+", default=["lz4", "none", "snappy", "zstd"])
    ap.add_argument("--repeat", type=int, default=10, help="times the 20,000 records are written")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds slept after every --chunk messages")
    ap.add_argument("--chunk", type=int, default=300)
    args = ap.parse_args()
    recs = records(args.format)
    print(f"{len(recs)} {args.format} records, {sum(len(r.value or b'') for r in recs) / len(recs):,.0f} value "
          f"bytes on average, written {args.repeat} times; gap {args.gap} s every {args.chunk}; "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}", flush=True)
    with tempfile.TemporaryDirectory(prefix="obsync-bench-producer-") as d:
        broker = TansuBroker(Path(d))
        try:
            for compression in args.compression:
                print(write(broker.bootstrap_servers, recs, compression, args.repeat, args.gap, args.chunk),
                      flush=True)
        finally:
            broker.close()


if __name__ == "__main__":
    main()

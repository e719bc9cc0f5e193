"""End-to-end throughput and memory: source -> obsync (1 worker) -> Kafka, on servers started here.

    python -m bench.e2e [--rows 200000] [--txn-rows 1000000]

Prints full-sync rows/s and incremental rows/s (messages divided by the span between the first and the
last message's Kafka timestamp, so process start-up is excluded; the wall time of each command is printed
too) and the peak RSS of each `obsync run` process. With --txn-rows N it also streams one transaction of N
rows through incremental sync and prints that run's peak RSS (the memory bound for huge transactions).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.tansu import TansuBroker

ROOT = Path(__file__).resolve().parents[1]
DDL = """CREATE TABLE bench.t (
  id BIGINT PRIMARY KEY, a INT NOT NULL, b BIGINT NOT NULL, c VARCHAR(64) NOT NULL, d DECIMAL(12,2) NOT NULL,
  e DOUBLE NOT NULL, f DATETIME(3) NOT NULL, g TIMESTAMP NOT NULL DEFAULT '2024-01-01 00:00:00',
  h TEXT NULL, i TINYINT NOT NULL)"""


def insert_rows(conn, start: int, count: int, chunk: int = 5000) -> None:
    with conn.cursor() as cur:
        for lo in range(start, start + count, chunk):
            hi = min(lo + chunk, start + count)
            cur.execute("INSERT INTO bench.t (id,a,b,c,d,e,f,h,i) SELECT seq, seq % 1000, seq * 7, "
                        "CONCAT('name-', seq), seq / 100, seq / 3, '2024-05-06 07:08:09.123', "
                        "IF(seq % 3 = 0, NULL, 'some text here'), seq % 100 "
                        f"FROM bench.seq_{lo}_to_{hi - 1}")


def span(bootstrap: str, topic: str, after: dict[int, int]) -> tuple[int, float, dict[int, int]]:
    """Messages past `after` offsets, first-to-last timestamp span in s, and the new end offsets."""
    parts = len(AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{time.time()}", "enable.partition.eof": True,
                  "enable.auto.commit": False})
    n, lo, hi, ends = 0, float("inf"), 0.0, {}
    for p in range(parts):
        c.assign([TopicPartition(topic, p, after.get(p, 0))])
        ends[p] = after.get(p, 0)
        while True:
            m = c.poll(5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise RuntimeError(m.error().str())
            n += 1
            ts = m.timestamp()[1] / 1000
            lo, hi = min(lo, ts), max(hi, ts)
            ends[p] = m.offset() + 1
    c.close()
    return n, hi - lo, ends


def run(task: Path, *extra: str) -> tuple[float, int]:
    """Run `obsync run TASK --until-caught-up`; wall seconds and peak RSS in MB."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "obsync", "run", str(task), "--until-caught-up", *extra],
                            cwd=ROOT, stderr=open(task.parent / "obsync.log", "ab"))
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"obsync failed; see {task.parent / 'obsync.log'}")
    return time.monotonic() - t0, usage.ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--txn-rows", type=int, default=0, help="also stream one transaction of this many rows")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="obsync-bench-"))
    db = MariaDBServer(base / "mariadb")
    broker = TansuBroker(base / "tansu")
    conn = db.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE bench")
        cur.execute(DDL)
    insert_rows(conn, 1, args.rows)
    task = base / "task.yaml"
    task.write_text(yaml.safe_dump({
        "name": "bench", "source": {"host": db.host, "port": db.port, "user": "root", "password": ""},
        "target": {"bootstrap_servers": broker.bootstrap_servers}, "objects": [{"match": "bench.t"}],
        "topics": {"partitions": 3}, "state_dir": str(base / "state"), "epoch_seconds": 5}))
    topic = "Topic_bench_t"
    print(f"table bench.t: {args.rows} rows, 10 columns; MariaDB binlog_row_metadata=MINIMAL; tansu broker")

    wall, rss = run(task)
    n, secs, ends = span(broker.bootstrap_servers, topic, {})
    print(f"full sync:        {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s "
          f"(command wall {wall:.1f}s incl. start-up), peak RSS {rss} MB")

    insert_rows(conn, args.rows + 1, args.rows)
    wall, rss = run(task)
    n, secs, ends = span(broker.bootstrap_servers, topic, ends)
    print(f"incremental sync: {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s "
          f"(command wall {wall:.1f}s incl. start-up), peak RSS {rss} MB")

    if args.txn_rows:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            insert_rows(conn, 2 * args.rows + 1, args.txn_rows, chunk=100_000)
            cur.execute("COMMIT")
        wall, rss = run(task)
        n, secs, ends = span(broker.bootstrap_servers, topic, ends)
        print(f"one {args.txn_rows}-row transaction: {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s, "
              f"peak RSS {rss} MB")
    broker.close()
    db.close()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

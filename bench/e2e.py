"""End-to-end throughput and memory: source -> obsync (1 worker) -> Kafka, on servers started here.

    python -m bench.e2e [--rows 200000] [--txn-rows 1000000]

Prints full-sync rows/s and incremental rows/s (messages divided by the span between the first and the
last message's Kafka timestamp, so process start-up is excluded; the wall time of each command is printed
too) and the peak RSS of each `obsync run` process. With --txn-rows N it also streams one transaction of N
rows through incremental sync and prints that run's peak RSS (the memory bound for huge transactions).

For each run it also prints the CPU time obsync used per row (user + system of its processes, start-up
included: it does not depend on what else the machine runs, unlike the rates) and the cores used during the
command by obsync, the source (MariaDB) and the broker (tansu): their CPU seconds over the command's wall time.
`python -m bench.stages` measures the stages (SELECT, binlog read + decode, encode, produce) alone.
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


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a running process has used so far (0 when unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run:
    """One `obsync run TASK --until-caught-up`: wall seconds, obsync's CPU seconds and peak RSS (MB), and the
    CPU seconds the source and the broker used meanwhile."""

    def __init__(self, task: Path, servers: dict[str, int | None], *extra: str) -> None:
        before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "obsync", "run", str(task), "--until-caught-up", *extra],
                                cwd=ROOT, stderr=open(task.parent / "obsync.log", "ab"))
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"obsync failed; see {task.parent / 'obsync.log'}")
        self.wall = time.monotonic() - t0
        self.cpu = usage.ru_utime + usage.ru_stime  # the process and the task process it waited for
        self.rss = usage.ru_maxrss // 1024
        self.servers = {name: cpu_seconds(pid) - before[name] for name, pid in servers.items()}

    def line(self, rows: int, idle: Run | None = None) -> str:
        cores = ", ".join(f"{name} {cpu / self.wall:.2f}" for name, cpu in self.servers.items())
        net = f", {(self.cpu - idle.cpu) / max(rows, 1) * 1e6:.1f} without" if idle is not None else ""
        return (f"obsync CPU {self.cpu / max(rows, 1) * 1e6:.1f} us/row with start-up{net}; cores used: obsync "
                f"{self.cpu / self.wall:.2f}, {cores}")


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

    servers = {"source": db.pid, "broker": broker.pid}
    full = Run(task, servers)
    n_full, full_secs, ends = span(broker.bootstrap_servers, topic, {})
    idle = Run(task, servers)  # caught up already: start-up and stop alone
    insert_rows(conn, args.rows + 1, args.rows)
    incr = Run(task, servers)
    n, secs, ends = span(broker.bootstrap_servers, topic, ends)
    print(f"full sync:        {n_full} rows in {full_secs:.2f}s = {n_full / full_secs:,.0f} rows/s "
          f"(command wall {full.wall:.1f}s incl. start-up), peak RSS {full.rss} MB\n    {full.line(n_full, idle)}")
    print(f"incremental sync: {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s "
          f"(command wall {incr.wall:.1f}s incl. start-up), peak RSS {incr.rss} MB\n    {incr.line(n, idle)}")
    print(f"start-up and stop alone (nothing to sync): {idle.wall:.1f}s wall, {idle.cpu:.2f}s CPU")

    if args.txn_rows:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            insert_rows(conn, 2 * args.rows + 1, args.txn_rows, chunk=100_000)
            cur.execute("COMMIT")
        r = Run(task, servers)
        n, secs, ends = span(broker.bootstrap_servers, topic, ends)
        print(f"one {args.txn_rows}-row transaction: {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s, "
              f"peak RSS {r.rss} MB\n    {r.line(n)}")
    broker.close()
    db.close()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

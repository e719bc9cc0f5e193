"""End-to-end throughput and memory: source -> obsync -> Kafka, on servers started here.

    python -m bench.e2e [--rows 200000] [--txn-rows 1000000] [--processes 1 2] [--formats default debezium avro]
                        [--partitions 3] [--log-txn-rows 5000]

Prints full-sync rows/s and incremental rows/s (messages divided by the span between the first and the
last message's Kafka timestamp, so process start-up is excluded; the wall time of each command is printed
too) and the peak RSS of each task process. With --processes 1 2 it runs the same data once per count: a
table of its own (same rows, same inserts) synced by `obsync run --processes N` (N = 1: plain `obsync run`),
and ends with a table side by side; with --formats F1 F2 ... likewise once per format (each with the first
process count given). With --txn-rows N it also streams one transaction of N
rows through incremental sync and prints that run's peak RSS (the memory bound for huge transactions).
The incremental backlog is written in transactions of 5,000 rows; `--log-txn-rows 1` writes it as single-row
transactions (an OLTP source's log: per row a GTID, a table map, a rows and an XID event).

For each run it also prints the CPU time obsync used per row (user + system of its processes, start-up
included: it does not depend on what else the machine runs, unlike the rates) and the cores used by obsync
(all its processes together), the source (MariaDB) and the broker (tansu): their CPU seconds, sampled every
0.1 s from /proc, over the span from the first to the last message (start-up excluded), and over the whole
command. Per task process (the child `obsync run` starts, which runs the dataflow) it prints its CPU seconds,
its cores over that span, how long its threads were runnable but waiting for a core over that span (as
cores: schedstat's run delay; high when other jobs take the cores) and its peak RSS (VmHWM), and its CPU
seconds by kind of thread (by the threads' names): the engine's workers (the dataflow's steps: reading chunks,
encoding, the sink's produce calls and delivery reports), the engine's I/O between processes, librdkafka's
threads (compression, requests, acknowledgements) and Python threads (the main one and obsync's own, such as
the log reader, `obsync-binlog`).
`python -m bench.stages` measures the stages (SELECT, binlog read + decode, encode, produce) alone;
`python -m bench.speed` measures both on the same rows and servers and compares them (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.tansu import TansuBroker
from obsync.connectors.mysql.binlog import current_log_position
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.positions import LogPosition

ROOT = Path(__file__).resolve().parents[1]
DDL = """CREATE TABLE bench.t (
  id BIGINT PRIMARY KEY, a INT NOT NULL, b BIGINT NOT NULL, c VARCHAR(64) NOT NULL, d DECIMAL(12,2) NOT NULL,
  e DOUBLE NOT NULL, f DATETIME(3) NOT NULL, g TIMESTAMP NOT NULL DEFAULT '2024-01-01 00:00:00',
  h TEXT NULL, i TINYINT NOT NULL)"""


def insert_rows(conn, start: int, count: int, chunk: int = 5000, table: str = "bench.t") -> None:
    with conn.cursor() as cur:
        for lo in range(start, start + count, chunk):
            hi = min(lo + chunk, start + count)
            cur.execute(f"INSERT INTO {table} (id,a,b,c,d,e,f,h,i) SELECT seq, seq % 1000, seq * 7, "
                        "CONCAT('name-', seq), seq / 100, seq / 3, '2024-05-06 07:08:09.123', "
                        "IF(seq % 3 = 0, NULL, 'some text here'), seq % 100 "
                        f"FROM bench.seq_{lo}_to_{hi - 1}")


def span(bootstrap: str, topic: str, after: dict[int, int]) -> tuple[int, float, float, dict[int, int]]:
    """Messages past `after` offsets, the first and last message's timestamps (epoch s), and the new end
    offsets."""
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
    return n, lo, hi, ends


def stat_name_and_cpu(stat: str) -> tuple[str, float]:
    """A /proc/.../stat line's command name and user + system CPU seconds."""
    fields = stat.rsplit(")", 1)[1].split()
    return stat[stat.index("(") + 1:stat.rindex(")")], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a running process has used so far (0 when unknown)."""
    try:
        return stat_name_and_cpu(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, IndexError, ValueError):
        return 0.0


def task_files(pid: int, name: str) -> list[Path]:
    """/proc/PID/task/*/NAME of each thread of `pid` (none once it has exited: its /proc entry is gone, which a
    glob raises on while it lists it)."""
    try:
        return list(Path(f"/proc/{pid}/task").glob(f"*/{name}"))
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux: /proc/PID/task/TID/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in task_files(p, "children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def task_process(pid: int) -> int | None:
    """The cluster index of a task process (the child `obsync run` runs the dataflow in), else None."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"OBSYNC_RUN_CHILD=1" not in env:
        return None
    return int(argv[argv.index(b"--process-id") + 1]) if b"--process-id" in argv else 0


def run_queue_seconds(pid: int, seen: dict[int, float]) -> float:
    """Seconds the threads of `pid` have spent runnable but waiting for a core (schedstat's run delay), each
    thread's last value kept in `seen` (by thread id) so that threads that ended still count."""
    for stat in task_files(pid, "schedstat"):
        try:
            seen[int(stat.parent.name)] = int(stat.read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return sum(seen.values())


# a thread's kind by its name (/proc/PID/task/TID/comm): Bytewax's timely worker threads run the dataflow's
# steps (reading chunks, encoding, routing, the sink's produce calls and delivery reports); its send/recv
# threads move batches between processes; librdkafka's threads compress, send and read acknowledgements;
# the rest are Python's: the main thread (which waits for the engine) and obsync's own (the log reader, which
# reads and decodes the binary log, progress, watchers)
THREAD_KINDS = (("timely:work", "engine workers"), ("timely:", "engine I/O"), ("rdk:", "librdkafka"))


def thread_kind(name: str) -> str:
    return next((kind for prefix, kind in THREAD_KINDS if name.startswith(prefix)), "Python threads")


def thread_cpu_seconds(pid: int, seen: dict[int, tuple[str, float]]) -> None:
    """Each thread of `pid`: its kind (`thread_kind`) and user + system CPU seconds, kept in `seen` (by thread
    id) so that threads that ended still count."""
    for stat in task_files(pid, "stat"):
        try:
            name, cpu = stat_name_and_cpu(stat.read_text())
            seen[int(stat.parent.name)] = (thread_kind(name), cpu)
        except (OSError, IndexError, ValueError):
            continue


def by_kind(threads: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds by thread kind, the largest first."""
    out: dict[str, float] = {}
    for kind, cpu in threads.values():
        out[kind] = out.get(kind, 0.0) + cpu
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def peak_rss_mb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


@dataclass
class TaskProcess:
    """What was last seen of one task process: CPU seconds and peak RSS (MB)."""

    cpu: float = 0.0
    rss: int = 0
    waiting: float = 0.0  # seconds runnable but waiting for a core
    threads: dict[int, float] = field(default_factory=dict)
    thread_cpu: dict[int, tuple[str, float]] = field(default_factory=dict)  # thread id -> (kind, CPU seconds)


@dataclass
class Sampler:
    """Every 0.1 s: the CPU seconds so far of obsync (`root` and its descendants), of each task process, and of
    the servers, with the time; and each task process's peak RSS."""

    root: int
    servers: dict[str, int | None]
    seen: dict[int, TaskProcess] = field(default_factory=dict)  # by cluster index
    series: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _index: dict[int, int | None] = field(default_factory=dict)  # pid -> cluster index (None: not yet seen as one)
    _cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds last seen (kept once it exits)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            now = time.time()
            point = {name: cpu_seconds(pid) for name, pid in self.servers.items()}
            for pid in [self.root, *descendants(self.root)]:
                if self._index.get(pid) is None:  # asked again until it is one: between fork and exec it is not
                    self._index[pid] = task_process(pid)
                cpu = cpu_seconds(pid)
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu)
                k = self._index[pid]
                if k is not None:
                    t = self.seen.setdefault(k, TaskProcess())
                    t.cpu, t.rss = self._cpu[pid], max(t.rss, peak_rss_mb(pid))
                    t.waiting = run_queue_seconds(pid, t.threads)
                    thread_cpu_seconds(pid, t.thread_cpu)
            point["obsync"] = sum(self._cpu.values())
            point.update({f"process {k}": t.cpu for k, t in self.seen.items()})
            point.update({f"process {k} waiting": t.waiting for k, t in self.seen.items()})
            self.series.append((now, point))

    def stop(self) -> dict[int, TaskProcess]:
        self._stop.set()
        self._thread.join()
        return dict(sorted(self.seen.items()))

    def cores(self, lo: float, hi: float) -> dict[str, float]:
        """Cores used by each sampled name between epoch times `lo` and `hi` (from the samples around them)."""
        before = [s for s in self.series if s[0] <= lo] or self.series[:1]
        after = [s for s in self.series if s[0] >= hi] or self.series[-1:]
        (t0, a), (t1, b) = before[-1], after[0]
        return {name: (b[name] - a.get(name, 0.0)) / max(t1 - t0, 1e-9) for name in b}


class Run:
    """One `obsync run TASK --until-caught-up [--processes N]`: wall seconds, obsync's CPU seconds (every
    process) and peak RSS (MB, the largest process), each task process's CPU and peak RSS, and the CPU seconds
    the source and the broker used meanwhile."""

    def __init__(self, task: Path, servers: dict[str, int | None], processes: int = 1, *extra: str) -> None:
        before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        if processes > 1:
            extra = ("--processes", str(processes), *extra)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "obsync", "run", str(task), "--until-caught-up", *extra],
                                cwd=ROOT, stderr=open(task.parent / "obsync.log", "ab"))
        self.sampler = Sampler(proc.pid, servers)
        _, status, usage = os.wait4(proc.pid, 0)
        self.wall = time.monotonic() - t0
        self.processes = self.sampler.stop()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"obsync failed; see {task.parent / 'obsync.log'}")
        self.cpu = usage.ru_utime + usage.ru_stime  # every process it (and they) waited for
        self.rss = usage.ru_maxrss // 1024
        self.servers = {name: cpu_seconds(pid) - before[name] for name, pid in servers.items()}
        self.window: dict[str, float] = {}

    def measured(self, lo: float, hi: float) -> None:
        """The span the messages' timestamps cover (epoch s): cores are also given for it alone."""
        self.window = self.sampler.cores(lo, hi)

    def cores(self) -> str:
        """Cores used between the first and the last message (start-up excluded)."""
        return ", ".join(f"{name} {self.window.get(name, 0.0):.2f}" for name in ("obsync", *self.servers))

    def peaks(self) -> str:
        return " / ".join(f"{t.rss}" for t in self.processes.values()) or f"{self.rss}"

    def line(self, rows: int, idle: Run | None = None) -> str:
        net = f", {(self.cpu - idle.cpu) / max(rows, 1) * 1e6:.1f} without" if idle is not None else ""
        whole = ", ".join([f"obsync {self.cpu / self.wall:.2f}"] +
                          [f"{name} {cpu / self.wall:.2f}" for name, cpu in self.servers.items()])
        each = "; ".join(f"process {k}: {t.cpu:.1f}s CPU, {self.window.get(f'process {k}', 0.0):.2f} cores "
                         f"while syncing (+{self.window.get(f'process {k} waiting', 0.0):.2f} waiting for a core), "
                         f"peak RSS {t.rss} MB" for k, t in self.processes.items())
        threads = "; ".join(f"process {k}: " + ", ".join(f"{kind} {cpu:.1f}s" for kind, cpu in
                                                          by_kind(t.thread_cpu).items() if cpu >= 0.05)
                            for k, t in self.processes.items())
        return (f"obsync CPU {self.cpu / max(rows, 1) * 1e6:.1f} us/row with start-up{net}\n"
                f"    cores used while syncing (first to last message): {self.cores()}; over the whole command: "
                f"{whole}\n    task processes: {each}\n    their CPU by thread (start-up included): {threads}")


@dataclass
class Result:
    processes: int
    full_rate: float
    full: Run
    incr_rate: float
    incr: Run
    fmt: str = "default"
    idle: Run | None = None  # a run with nothing to sync: start-up and stop alone
    txn: Run | None = None  # the run that streamed one --txn-rows transaction


class Hooks(Protocol):
    """What a caller runs right before each sync of `bench_one`, on the rows that sync will carry
    (`bench.speed`: the stages alone)."""

    def before_full(self, table: tuple[str, str]) -> None:
        """The table holds the rows full sync is about to read."""

    def before_incremental(self, table: tuple[str, str], start: LogPosition, stop: LogPosition) -> None:
        """The log holds, between `start` and `stop`, the inserts incremental sync is about to read."""


def table_and_task(base: Path, db: MariaDBServer, broker: TansuBroker, conn, run_no: int, rows: int, fmt: str,
                   partitions: int = 3) -> Path:
    """Table t<run_no> of the database `bench` with `rows` rows, and the task file syncing it (its topic of `partitions`
    partitions, state in `<base>/run<run_no>/state`): the task file's path."""
    make_table(conn, run_no, rows)
    return task_file(base, db, broker, f"run{run_no}", {"match": f"bench.t{run_no}"}, fmt, partitions)


def make_table(conn, run_no: int, rows: int) -> None:
    """Table t<run_no> of the database `bench` (`DDL`'s columns) with `rows` rows, keys 1 to `rows`."""
    table = f"bench.t{run_no}"
    with conn.cursor() as cur:
        cur.execute(DDL.replace("bench.t ", f"{table} "))
    insert_rows(conn, 1, rows, table=table)


def format_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A `--formats` item, `NAME` or `NAME:OPTION=VALUE,...` (e.g. `debezium:schemas_enable=false`): the format's
    name and its `format_options` (each value read as YAML)."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--formats {spec}: {item!r} is not OPTION=VALUE")
        options[key] = yaml.safe_load(value)
    return name, options


def task_file(base: Path, db: MariaDBServer, broker: TansuBroker, work_name: str, obj: dict[str, Any], fmt: str,
              partitions: int = 3) -> Path:
    """A task file syncing the tables of one `objects` entry (`obj`) in `fmt`, its topics of `partitions`
    partitions, in `<base>/<work_name>` (its state there too): the file's path."""
    work = base / work_name
    work.mkdir()
    task = work / "task.yaml"
    name, options = format_spec(fmt)
    task.write_text(yaml.safe_dump({
        "name": f"bench{work_name.removeprefix('run')}",
        "source": {"host": db.host, "port": db.port, "user": "root", "password": ""},
        "target": {"bootstrap_servers": broker.bootstrap_servers}, "objects": [obj],
        "topics": {"partitions": partitions}, "state_dir": str(work / "state"), "epoch_seconds": 5, "format": name,
        **({"format_options": options} if options else {})}))
    return task


def bench_one(base: Path, db: MariaDBServer, broker: TansuBroker, conn, rows: int, processes: int, txn_rows: int,
              run_no: int, fmt: str = "default", hooks: Hooks | None = None, partitions: int = 3,
              log_txn_rows: int = 5000) -> Result:
    """Full sync then incremental backlog of `rows` rows each, on a table and task of their own (its topic of
    `partitions` partitions); the backlog written in transactions of `log_txn_rows` rows."""
    table = f"bench.t{run_no}"
    task = table_and_task(base, db, broker, conn, run_no, rows, fmt, partitions)
    topic = f"Topic_bench_t{run_no}"
    print(f"--- {processes} process{'es' if processes > 1 else ''}, format {fmt} (table {table}, "
          f"{partitions} partitions, load {load()})",
          flush=True)

    servers = {"source": db.pid, "broker": broker.pid}
    if hooks is not None:
        hooks.before_full(("bench", f"t{run_no}"))
    full = Run(task, servers, processes)
    n_full, lo, hi, ends = span(broker.bootstrap_servers, topic, {})
    full.measured(lo, hi)
    full_secs = hi - lo
    idle = Run(task, servers, processes)  # caught up already: start-up and stop alone
    print(f"full sync:        {n_full} rows in {full_secs:.2f}s = {n_full / full_secs:,.0f} rows/s "
          f"(command wall {full.wall:.1f}s incl. start-up)\n    {full.line(n_full, idle)}", flush=True)
    ep = Endpoint(db.host, db.port, "root", "")
    start = current_log_position(ep)
    insert_rows(conn, rows + 1, rows, chunk=log_txn_rows, table=table)
    if hooks is not None:
        hooks.before_incremental(("bench", f"t{run_no}"), start, current_log_position(ep))
    incr = Run(task, servers, processes)
    n, lo, hi, ends = span(broker.bootstrap_servers, topic, ends)
    incr.measured(lo, hi)
    secs = hi - lo
    print(f"incremental sync: {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s "
          f"(command wall {incr.wall:.1f}s incl. start-up)\n    {incr.line(n, idle)}")
    print(f"start-up and stop alone (nothing to sync): {idle.wall:.1f}s wall, {idle.cpu:.2f}s CPU", flush=True)
    result = Result(processes, n_full / full_secs, full, n / secs, incr, fmt, idle)

    if txn_rows:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            insert_rows(conn, 2 * rows + 1, txn_rows, chunk=100_000, table=table)
            cur.execute("COMMIT")
        r = Run(task, servers, processes)
        n, lo, hi, ends = span(broker.bootstrap_servers, topic, ends)
        r.measured(lo, hi)
        secs = hi - lo
        print(f"one {txn_rows}-row transaction: {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s\n    {r.line(n)}",
              flush=True)
        result.txn = r
    return result


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def servers(prefix: str) -> Iterator[tuple[Path, MariaDBServer, TansuBroker, Any]]:
    """A work directory, a MariaDB with an empty database `bench`, a tansu broker and a connection
    (autocommit); all removed on leaving."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    db = broker = None
    try:
        db = MariaDBServer(base / "mariadb")
        broker = TansuBroker(base / "tansu")
        conn = db.connect(autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
        yield base, db, broker, conn
    finally:
        if broker is not None:
            broker.close()
        if db is not None:
            db.close()
        shutil.rmtree(base, ignore_errors=True)


def header(rows: int) -> str:
    return (f"{rows} rows per table, 10 columns; MariaDB binlog_row_metadata=MINIMAL; tansu broker; "
            f"{os.cpu_count()} cores; load {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--txn-rows", type=int, default=0, help="also stream one transaction of this many rows")
    ap.add_argument("--processes", type=int, nargs="+", default=[1], metavar="N",
                    help="run the same data with each of these process counts, in this order (e.g. 1 2)")
    ap.add_argument("--formats", nargs="+", default=["default"], metavar="FORMAT",
                    help="run the same data with each of these formats, in this order (e.g. default debezium avro); "
                         "NAME:OPTION=VALUE,... gives format_options (e.g. debezium:schemas_enable=false)")
    ap.add_argument("--partitions", type=int, default=3, help="partitions of the table's topic (default 3)")
    ap.add_argument("--log-txn-rows", type=int, default=5000, metavar="N",
                    help="rows per transaction of the incremental backlog (default 5000; 1: single-row transactions, "
                         "each with its own GTID, table map and XID events)")
    args = ap.parse_args()
    if args.log_txn_rows < 1:
        ap.error("--log-txn-rows must be at least 1")
    runs = ([(n, args.formats[0]) for n in args.processes] if len(args.formats) == 1 else
            [(args.processes[0], f) for f in args.formats])
    with servers("obsync-bench-") as (base, db, broker, conn):
        print(header(args.rows), flush=True)
        results = [bench_one(base, db, broker, conn, args.rows, n, args.txn_rows, i, f,
                             partitions=args.partitions, log_txn_rows=args.log_txn_rows)
                   for i, (n, f) in enumerate(runs, 1)]
    if len(args.formats) > 1:
        print("\n| format | full sync rows/s | x default | incremental rows/s | x default |\n|---|---|---|---|---|")
        for r in results:
            print(f"| {r.fmt} | {r.full_rate:,.0f} | {r.full_rate / results[0].full_rate:.2f} | {r.incr_rate:,.0f} | "
                  f"{r.incr_rate / results[0].incr_rate:.2f} |")
    elif len(results) > 1:
        print("\n| processes | full sync rows/s | cores while syncing | peak RSS MB per process | "
              "incremental rows/s | cores while syncing | peak RSS MB per process |\n|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r.processes} | {r.full_rate:,.0f} | {r.full.cores()} | {r.full.peaks()} | {r.incr_rate:,.0f} | "
                  f"{r.incr.cores()} | {r.incr.peaks()} |")
    print(f"load at the end: {load()}")


if __name__ == "__main__":
    main()

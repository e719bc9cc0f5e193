"""Latency under a steady load: source commit -> Kafka, on servers started here.

    python -m bench.latency [--rate 5000] [--seconds 30] [--tick-ms 1] [--format default]
    python -m bench.latency --writer python [--writers 4] ...

Starts a MariaDB (binlog_row_metadata=MINIMAL) and a tansu broker, runs `obsync run` (incremental sync of an
empty table of `bench.e2e`'s 10 columns, task defaults, hash over 3 partitions), and once a first row has come
through, writes `--rate` single-row transactions per second for `--seconds` seconds (autocommit INSERTs). It
prints the rate actually achieved and p50/p95/p99/max of, per row:

  commit -> Kafka timestamp   the message's Kafka timestamp (CreateTime: set by obsync's producer when the
                              message is handed to it; LogAppendTime if the broker sets it) minus the commit time
  commit -> consumed          when a consumer of the topic (its own process, fetch.wait.max.ms=5) got the message
                              minus the commit time: the message was acknowledged by then, so this bounds the
                              commit -> acknowledgement latency from above

Writers (`--writer`):

  server (default)  one connection runs a `BEGIN NOT ATOMIC` loop in MariaDB: every `--tick-ms` it inserts the
                    rows due by the wall clock (row k at t0 + (k - 1) / rate), each in its own autocommit
                    transaction, then `DO SLEEP` until the next tick. Each row carries its commit time: column
                    `b` is set to the server's clock (SYSDATE(6), epoch µs) as the INSERT runs, a few µs before
                    its commit; latencies are computed from that value in the consumed message. No client
                    round trip per row, so the load costs the machine little besides the server's own work.
  python            `--writers` Python processes, each with its own connection, share one schedule; the commit
                    time is the writer's wall clock when the server answered its INSERT (a few hundred µs after
                    the commit; the median statement round trip is printed), kept by key in memory. The writers'
                    CPU competes with obsync's on a small machine.

Binlog event timestamps (`allMetaData.timestamp` in the default format, `source.ts_ms` in debezium's) have
one-second resolution on MariaDB; with the default format the bench counts the messages whose carried commit
second agrees with the commit time it uses (python: between the writer's clock before and after the statement).
Also printed: the cores used by obsync, MariaDB and tansu during the load, and obsync's CPU per row, in all and by
thread of its task process (by the thread's OS name, which Python threads inherit from the thread that started
them: the first `timely:work-0` is the Bytewax worker, the next the binlog reader's; `rdk:*` are librdkafka's).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import pymysql
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.e2e import DDL, ROOT, Sampler, descendants, load, task_process
from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.tansu import TansuBroker

TOPIC = "Topic_bench_t"
INSERT = ("INSERT INTO bench.t (id,a,b,c,d,e,f,h,i) VALUES (%s, %s, %s, %s, %s, %s, '2024-05-06 07:08:09.123', "
          "'some text here', %s)")


def writer(host: str, port: int, index: int, writers: int, first: int, rows: int, rate: float, pipe: Any) -> None:
    """Once connected, say so and take the start time t0; insert ids first+index, first+index+writers, ... each
    at its slot of the shared schedule (id k at t0 + (k - first) / rate), in autocommit; send back (ids, before,
    after) wall-clock times."""
    conn = pymysql.connect(host=host, port=port, user="root", password="", autocommit=True)
    cur = conn.cursor()
    pipe.send("connected")
    t0 = pipe.recv()
    ids, before, after = array("q"), array("d"), array("d")
    clock, sleep = time.time, time.sleep
    for k in range(first + index, first + rows, writers):
        due = t0 + (k - first) / rate
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        b = clock()
        cur.execute(INSERT, (k, k % 1000, k * 7, f"name-{k}", k / 100, k / 3, k % 100))
        a = clock()
        ids.append(k)
        before.append(b)
        after.append(a)
    conn.close()
    pipe.send((ids.tobytes(), before.tobytes(), after.tobytes()))


def stamped(value: dict[str, Any]) -> int:
    """Column `b` of the row a message carries (the default format's postStruct, debezium's after), else -1."""
    row = value.get("postStruct") or (value.get("payload") or value).get("after") or {}
    b = row.get("b")
    return -1 if b is None else int(b)


def consumer(bootstrap: str, topic: str, expect: int, deadline: float, ready: Any, out: Any) -> None:
    """Read the topic from the start until `expect` messages came (or `deadline`); send back per message:
    id, Kafka timestamp (ms), its type, the time it was received, the commit second the message carries,
    the row's column `b` (the server writer's commit time, epoch µs)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while True:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and md.partitions:
            break
        time.sleep(0.1)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"latency-{time.time()}", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 5, "fetch.min.bytes": 1, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    ids, ts, recv, carried, stamps = array("q"), array("q"), array("d"), array("q"), array("q")
    ts_type = set()
    signalled = False
    while len(ids) < expect and time.time() < deadline:
        for m in c.consume(1000, 0.05):
            now = time.time()
            if m.error():
                raise RuntimeError(m.error().str())
            kind, ms = m.timestamp()
            ts_type.add(kind)
            key = json.loads(m.key())
            ids.append(key[0] if isinstance(key, list) else (key.get("payload") or key)["id"])
            ts.append(ms)
            recv.append(now)
            value = json.loads(m.value()) or {}
            meta = value.get("allMetaData") or {}
            carried.append(int(meta.get("timestamp") or -1))
            stamps.append(stamped(value))
        if not signalled and len(ids):
            ready.set()
            signalled = True
    c.close()
    out.send((ids.tobytes(), ts.tobytes(), recv.tobytes(), carried.tobytes(), stamps.tobytes(), sorted(ts_type)))


def paced_loop(rows: int, rate: float, tick: float) -> str:
    """A MariaDB compound statement inserting ids 1..rows in single-row autocommit transactions, row k at
    t0 + (k - 1) / rate by the server's wall clock, the rows due at each tick inserted together, then a sleep
    to the next tick; column `b` holds each row's commit time (epoch µs, the server's clock as it is inserted)."""
    return f"""BEGIN NOT ATOMIC
  DECLARE t0 DECIMAL(20,6) DEFAULT UNIX_TIMESTAMP(SYSDATE(6));
  DECLARE k BIGINT DEFAULT 1;
  DECLARE due BIGINT;
  WHILE k <= {rows} DO
    SET due = LEAST({rows}, FLOOR((UNIX_TIMESTAMP(SYSDATE(6)) - t0) * {rate}) + 1);
    WHILE k <= due DO
      INSERT INTO bench.t (id,a,b,c,d,e,f,h,i) VALUES (k, k % 1000,
        CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED), CONCAT('name-', k), k / 100, k / 3,
        '2024-05-06 07:08:09.123', 'some text here', k % 100);
      SET k = k + 1;
    END WHILE;
    IF k <= {rows} THEN
      DO SLEEP({tick} - MOD(UNIX_TIMESTAMP(SYSDATE(6)) - t0, {tick}));
    END IF;
  END WHILE;
END"""


def server_writer(host: str, port: int, rows: int, rate: float, tick: float, done: Any) -> None:
    """Run `paced_loop` on its own connection; say when it returned."""
    conn = pymysql.connect(host=host, port=port, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(paced_loop(rows, rate, tick))
    conn.close()
    done.send("done")


def task_pid(root: int) -> int:
    """The task process (the child `obsync run` runs the dataflow in), else `root`."""
    for pid in descendants(root):
        if task_process(pid) is not None:
            return pid
    return root


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of each thread of `pid`, with its name (Linux: /proc/PID/task/TID/stat)."""
    out = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(stat.parent.name)] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return out


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def summary(label: str, values: list[float]) -> str:
    v = sorted(values)
    return (f"  {label:26} p50 {pct(v, 50) * 1e3:7.1f} ms  p95 {pct(v, 95) * 1e3:7.1f} ms  "
            f"p99 {pct(v, 99) * 1e3:7.1f} ms  max {v[-1] * 1e3:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=5000, help="single-row transactions per second")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--writer", choices=("server", "python"), default="server",
                    help="server: a paced loop inside MariaDB (default); python: --writers client processes")
    ap.add_argument("--tick-ms", type=float, default=1.0, help="server writer: the pacing tick (ms)")
    ap.add_argument("--writers", type=int, default=4,
                    help="python writer: processes (connections) sharing the schedule")
    ap.add_argument("--format", default="default",
                    help="the task's format: default or debezium (JSON keys); the commit-second check needs default")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                    help="a top-level task setting, e.g. epoch_seconds=5 (may be repeated)")
    ap.add_argument("--kafka", action="append", default=[], metavar="KEY=VALUE",
                    help="a producer setting (target.properties), e.g. linger.ms=5 (may be repeated)")
    ap.add_argument("--py-spy", metavar="FILE", help="also record a py-spy profile of the task process during the "
                    "load (.svg flame graph, .json speedscope, else collapsed stacks; py-spy must be installed)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="obsync-latency-"))
    # no fsync per commit (the log is still written at each commit): the writers' pace then depends on the CPU,
    # not on this machine's disk; obsync reads the same binlog either way
    db = MariaDBServer(base / "mariadb", extra_args=("--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"))
    broker = TansuBroker(base / "tansu")
    proc = None
    try:
        conn = db.connect(autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
            cur.execute(DDL)
        task = base / "task.yaml"
        spec: dict[str, Any] = {
            "name": "latency", "source": {"host": db.host, "port": db.port, "user": "root", "password": ""},
            "target": {"bootstrap_servers": broker.bootstrap_servers}, "objects": [{"match": "bench.t"}],
            "topics": {"partitions": 3}, "state_dir": str(base / "state"), "format": args.format}
        spec["target"]["properties"] = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in args.kafka)}
        for kv in args.set:
            k, _, v = kv.partition("=")
            spec[k] = yaml.safe_load(v)
        task.write_text(yaml.safe_dump(spec))
        rows = int(args.rate * args.seconds)
        by = (f"a loop in the server ({args.tick_ms:g} ms ticks)" if args.writer == "server" else
              f"{args.writers} Python writer process(es)")
        print(f"{args.rate:,.0f} single-row transactions/s for {args.seconds:g} s ({rows} rows) from {by}; "
              f"format {args.format}; {os.cpu_count()} cores; load {load()}", flush=True)
        log = open(base / "obsync.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "obsync", "run", str(task)], cwd=ROOT, stderr=log)
        servers = {"source": db.pid, "broker": broker.pid}
        sampler = Sampler(proc.pid, servers)

        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        c_recv, c_send = ctx.Pipe(duplex=False)
        cons = ctx.Process(target=consumer, args=(broker.bootstrap_servers, TOPIC, rows + 1,
                                                  time.time() + 120 + args.seconds * 3, ready, c_send))
        cons.start()
        with conn.cursor() as cur:  # a first row: once it is consumed, obsync is following the log
            cur.execute(INSERT, (0, 0, 0, "warm-up", 0, 0, 0))
        if not ready.wait(120):
            sys.exit(f"no message within 120 s; see {base / 'obsync.log'}")
        time.sleep(1)

        spy: subprocess.Popen[bytes] | None = None

        def start_spy() -> None:
            nonlocal spy
            if args.py_spy:
                spy = subprocess.Popen(["py-spy", "record", "-o", args.py_spy, "-f",
                                        {".svg": "flamegraph", ".json": "speedscope"}.get(Path(args.py_spy).suffix,
                                                                                          "raw"),
                                        "-d", str(int(args.seconds)), "-r", "200",
                                        "-p", str(task_pid(proc.pid))], stdout=subprocess.DEVNULL)

        commit: dict[int, float] = {}
        before: dict[int, float] = {}
        tpid = task_pid(proc.pid)
        threads0 = thread_cpu(tpid)
        if args.writer == "python":
            pipes, procs = [], []
            for w in range(args.writers):
                r, s = ctx.Pipe()
                p = ctx.Process(target=writer, args=(db.host, db.port, w, args.writers, 1, rows, args.rate, s))
                p.start()
                pipes.append(r)
                procs.append(p)
            for r in pipes:
                r.recv()
            t0 = time.time() + 0.1
            for r in pipes:
                r.send(t0)
            start_spy()
            for r in pipes:
                ib, bb, ab = r.recv()
                wids, b, a = array("q"), array("d"), array("d")
                wids.frombytes(ib)
                b.frombytes(bb)
                a.frombytes(ab)
                commit.update(zip(wids, a, strict=True))
                before.update(zip(wids, b, strict=True))
            for p in procs:
                p.join()
        else:
            r, s = ctx.Pipe(duplex=False)
            loop = ctx.Process(target=server_writer, args=(db.host, db.port, rows, args.rate, args.tick_ms / 1000, s))
            loop.start()
            start_spy()
            r.recv()
            loop.join()
            with conn.cursor() as cur:  # the commit times the rows carry, as committed
                cur.execute("SELECT id, b FROM bench.t WHERE id > 0")
                commit = {k: b / 1e6 for k, b in cur.fetchall()}
            t0 = commit[1]
        if spy is not None:
            spy.wait()
        ib, tb, rb, cb, sb, kinds = c_recv.recv()
        threads1 = thread_cpu(tpid)
        cons.join()
        ids, ts, recv, carried, stamps = array("q"), array("q"), array("d"), array("q"), array("q")
        ids.frombytes(ib)
        ts.frombytes(tb)
        recv.frombytes(rb)
        carried.frombytes(cb)
        stamps.frombytes(sb)
        if args.writer == "server":  # latency from the commit time each message itself carries
            commit.update((k, stamps[i] / 1e6) for i, k in enumerate(ids) if k in commit and stamps[i] >= 0)

        first, last = min(commit.values()), max(commit.values())
        seen = {k: i for i, k in enumerate(ids) if k in commit}
        to_ts = [ts[i] / 1000 - commit[k] for k, i in seen.items()]
        to_recv = [recv[i] - commit[k] for k, i in seen.items()]
        done = max(recv[i] for i in seen.values())
        time.sleep(0.3)  # a sample after the last message
        sampler.stop()
        window = sampler.cores(first, last)
        busy = sampler.cores(first, done)["obsync"] * (done - first)  # obsync's CPU seconds until the last message
        late = [k for k in commit if commit[k] - (t0 + (k - 1) / args.rate) > 0.05]
        kind = {1: "CreateTime", 2: "LogAppendTime"}
        rtt = sorted(commit[k] - before[k] for k in before)
        trip = (f"; statement round trip p50 {pct(rtt, 50) * 1e3:.2f} ms, p99 {pct(rtt, 99) * 1e3:.2f} ms"
                if rtt else "")
        print(f"achieved: {len(commit)} rows committed in {last - first:.2f} s = {len(commit) / (last - first):,.0f} "
              f"rows/s ({len(late)} committed over 50 ms behind their slot){trip}")
        print(f"messages: {len(seen)} of {len(commit)} rows consumed; Kafka timestamps: "
              f"{', '.join(kind.get(k, str(k)) for k in kinds)}")
        if args.format == "default":
            ok = sum(1 for k, i in seen.items() if int(before.get(k, commit[k])) <= carried[i] <= int(commit[k]))
            print(f"commit second carried in the message (allMetaData.timestamp) agrees with the commit time: "
                  f"{ok} of {len(seen)}")
        print(summary("commit -> Kafka timestamp", to_ts))
        print(summary("commit -> consumed", to_recv))
        print("cores during the load: " + ", ".join(f"{n} {window.get(n, 0.0):.2f}" for n in ("obsync", *servers)))
        print(f"obsync CPU per row (first commit to last message, all its threads): {busy / len(seen) * 1e6:.0f} us, "
              f"so one core would carry at most about {len(seen) / busy:,.0f} rows/s of such transactions")
        used = sorted(((c - threads0.get(t, ("", 0.0))[1], t, name) for t, (name, c) in threads1.items()),
                      reverse=True)
        print("  by thread of the task process (load start to last message): " + ", ".join(
            f"{name}[{t}{' main' if t == tpid else ''}] {c / len(seen) * 1e6:.0f} us" for c, t, name in used
            if c / len(seen) * 1e6 >= 1))
        print(f"load at the end: {load()}", flush=True)
        if len(seen) < len(commit):
            sys.exit(f"{len(commit) - len(seen)} rows never arrived; see {base / 'obsync.log'}")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.close()
        db.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

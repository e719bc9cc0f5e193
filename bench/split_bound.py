"""The most a cluster's full sync could gain if each process wrote the rows of the chunks it reads.

    python -m bench.split_bound [--rows 300000] [--formats default] [--rounds 2]

In a cluster, a full-sync row is read by the worker its chunk falls to and written by the process holding its
partition's sink lane, so about half of the rows cross processes. The lever docs/performance.md once proposed
for full sync ("What bounds the targets here") is that each process write its own chunks' rows, nothing
crossing, at one process's CPU a row on every core. Building it needs several writers per Kafka partition in the
sink's state; this measures what it could give before anyone builds it. Each round syncs, on tables of their
own (`bench.e2e`'s 10 columns, `--rows` rows, topics of 3 partitions), in this order:

  1 process    one task, `obsync run --until-caught-up`
  2 processes  one task, `--processes 2` (the cluster as it is)
  halves       two independent one-process tasks started at once, each syncing half of the table (`where` on
               the key, a topic of its own): nothing crosses between them, they share only the machine and the
               servers, which is all the lever could remove

Rates are rows/s from the messages' Kafka timestamps, first to last message of the run's topics (start-up
excluded). obsync's CPU a row is every process's, less that of the same tasks run again with nothing to sync
(start-up and stop). The final table gives medians over the rounds and each mode's ratio to the cluster's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.e2e import ROOT, load, make_table, servers, span, task_file

MODES = ("1 process", "2 processes", "halves")


def run_tasks(tasks: list[Path], processes: int) -> float:
    """`obsync run TASK --until-caught-up` for each task at once: their CPU seconds (every process)."""
    extra = ["--processes", str(processes)] if processes > 1 else []
    procs = [subprocess.Popen([sys.executable, "-m", "obsync", "run", str(t), "--until-caught-up", *extra], cwd=ROOT,
                              stderr=open(t.parent / "obsync.log", "ab")) for t in tasks]
    cpu = 0.0
    for proc, task in zip(procs, tasks, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"obsync failed; see {task.parent / 'obsync.log'}")
        cpu += usage.ru_utime + usage.ru_stime  # every process it (and they) waited for
    return cpu


def rate(bootstrap: str, topics: list[str]) -> tuple[int, float]:
    """Messages in `topics` and rows/s from the first to the last message of them all."""
    n, lo, hi = 0, float("inf"), 0.0
    for topic in topics:
        k, first, last, _ = span(bootstrap, topic, {})
        n, lo, hi = n + k, min(lo, first), max(hi, last)
    return n, n / (hi - lo)


def one(base: Path, db, broker, conn, n: int, rows: int, fmt: str, mode: str) -> tuple[float, float]:
    """Table t<n> synced in `mode`: (rows/s, obsync's CPU us a row)."""
    make_table(conn, n, rows)
    table = f"bench.t{n}"
    if mode == "halves":
        halves = [(f"run{n}a", f"Topic_bench_t{n}a", f"id <= {rows // 2}"),
                  (f"run{n}b", f"Topic_bench_t{n}b", f"id > {rows // 2}")]
        tasks = [task_file(base, db, broker, work, {"match": table, "topic": topic, "where": where}, fmt)
                 for work, topic, where in halves]
        topics = [topic for _, topic, _ in halves]
    else:
        tasks = [task_file(base, db, broker, f"run{n}", {"match": table}, fmt)]
        topics = [f"Topic_bench_t{n}"]
    processes = 2 if mode == "2 processes" else 1
    cpu = run_tasks(tasks, processes)
    idle = run_tasks(tasks, processes)  # caught up already: start-up and stop alone
    written, rows_per_s = rate(broker.bootstrap_servers, topics)
    if written != rows:
        sys.exit(f"{mode}: {written} messages for {rows} rows of {table}")
    return rows_per_s, (cpu - idle) / rows * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--formats", nargs="+", default=["default"], metavar="FORMAT")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with servers("obsync-split-") as (base, db, broker, conn):
        print(f"{args.rows} rows a table, 10 columns, topics of 3 partitions; {os.cpu_count()} cores; "
              f"load {load()}", flush=True)
        n = 0
        for r in range(args.rounds):
            for fmt in args.formats:
                for mode in MODES:
                    n += 1
                    t0 = time.monotonic()
                    got = one(base, db, broker, conn, n, args.rows, fmt, mode)
                    results.setdefault((fmt, mode), []).append(got)
                    print(f"round {r + 1}, {fmt}, {mode} (table t{n}): {got[0]:,.0f} rows/s, obsync CPU "
                          f"{got[1]:.1f} us a row ({time.monotonic() - t0:.0f} s)", flush=True)
    print("\n| format | mode | rows/s, median (each round) | x 2 processes | obsync CPU a row, median |\n"
          "|---|---|---|---|---|")
    for fmt in args.formats:
        cluster = statistics.median(x for x, _ in results[(fmt, "2 processes")])
        for mode in MODES:
            runs = results[(fmt, mode)]
            med = statistics.median(x for x, _ in runs)
            print(f"| {fmt} | {mode} | {med / 1000:.1f}k ({', '.join(f'{x / 1000:.1f}k' for x, _ in runs)}) | "
                  f"{med / cluster:.2f} | {statistics.median(c for _, c in runs):.1f} us |")
    print(f"load at the end: {load()}")


if __name__ == "__main__":
    main()

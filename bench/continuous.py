"""A task left running: its full sync, then a backlog of the log read by the same run, on servers started here.

    python -m bench.continuous [--rows 200000] [--processes 2] [--formats default] [--rounds 3] [--compare DIR]

`bench.e2e` and `bench.speed` run full sync and incremental sync as two `--until-caught-up` commands, so the
incremental one starts afresh, with what a run that has only the log to read chooses (in a cluster, where each
sink lane is written: `obsync.steps.lane_placement`). A task in service runs once: `obsync run` does its full
sync and then follows the log in the same run, with what was chosen at its start. This measures that run:

1. a table of its own (`bench.e2e`'s 10 columns) with `--rows` rows, a topic of 3 partitions;
2. `obsync run TASK [--processes N]`, left running; once it has written the rows (each process's status.json),
3. `--rows` more rows inserted (5,000-row transactions), read by the same run; then SIGTERM.

It prints the full sync's and the log's rows/s, from the messages' Kafka timestamps (first to last message of
each). With `--compare DIR` (another checkout of obsync, its compiled modules built in place) each round runs
DIR's code first, then this checkout's, on tables of their own: an A/B on the same servers, alternated. Tables
are named so that each topic's crc32 (`records.lane_of`) starts its lanes on an even lane, the case where an
even split of the lanes by name gives process 0 two of the three partitions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from bench.e2e import ROOT, insert_rows, load, servers, span, table_and_task

PATIENCE = 600.0  # s: a run that has not written what it must by then failed


def even_tables(start: int = 1) -> Iterator[int]:
    """Numbers n, from `start`, whose topic `Topic_bench_t<n>` starts its lanes on an even lane."""
    n = start
    while True:
        if zlib.crc32(f"Topic_bench_t{n}".encode()) % 16 % 2 == 0:
            yield n
        n += 1


def written(state: Path, processes: int) -> int:
    """Messages the run's processes have written so far, by their status files (0 until they exist)."""
    total = 0
    for k in range(processes):
        status = state / (f"process-{k}" if processes > 1 else "") / "status.json"
        try:
            total += json.loads(status.read_text())["messages_written"]
        except (OSError, ValueError, KeyError):
            pass
    return total


def run_once(base: Path, db, broker, conn, n: int, rows: int, processes: int, fmt: str,
             code: Path) -> tuple[float, float]:
    """Full sync then the log, in one run of `code`'s obsync: (full sync rows/s, log rows/s)."""
    table = f"bench.t{n}"
    task = table_and_task(base, db, broker, conn, n, rows, fmt)
    work = task.parent
    extra = ["--processes", str(processes)] if processes > 1 else []
    log = work / "obsync.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "obsync", "run", str(task), *extra], cwd=code,
                                env=dict(os.environ, PYTHONPATH=str(code)), stdout=out, stderr=out)
    deadline = time.monotonic() + PATIENCE
    try:
        for want in (rows, 2 * rows):
            while written(work / "state", processes) < want:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"obsync did not write {want} messages; see {log}")
                time.sleep(0.5)
            if want == rows:
                n_full, lo, hi, ends = span(broker.bootstrap_servers, f"Topic_bench_t{n}", {})
                insert_rows(conn, rows + 1, rows, table=table)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    n_log, lo2, hi2, _ = span(broker.bootstrap_servers, f"Topic_bench_t{n}", ends)
    return n_full / (hi - lo), n_log / (hi2 - lo2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--formats", nargs="+", default=["default"], metavar="FORMAT")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", type=Path, default=None, metavar="DIR",
                    help="another checkout of obsync: each round runs it first, then this one")
    args = ap.parse_args()
    codes = ([("other", args.compare.resolve())] if args.compare else []) + [("this", ROOT)]
    tables = even_tables()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with servers("obsync-continuous-") as (base, db, broker, conn):
        print(f"{args.rows} rows, then {args.rows} more read by the same run; {args.processes} process(es); "
              f"3 partitions; load {load()}", flush=True)
        for r in range(args.rounds):
            for fmt in args.formats:
                for name, code in codes:
                    n = next(tables)
                    full, log_rate = run_once(base, db, broker, conn, n, args.rows, args.processes, fmt, code)
                    results.setdefault((fmt, name), []).append((full, log_rate))
                    print(f"round {r + 1}, {fmt}, {name} ({code}), table t{n}: full sync {full:,.0f} rows/s, "
                          f"then the log in the same run {log_rate:,.0f} rows/s", flush=True)
    print("\n| format | code | full sync rows/s, each round | the log in the same run, rows/s, each round |\n"
          "|---|---|---|---|")
    for (fmt, name), runs in results.items():
        print(f"| {fmt} | {name} | {', '.join(f'{f / 1000:.1f}k' for f, _ in runs)} | "
              f"{', '.join(f'{x / 1000:.1f}k' for _, x in runs)} |")
    print(f"load at the end: {load()}")


if __name__ == "__main__":
    main()

"""Start-up: how long a task takes to start, catch up and stop, with 1 and with N processes.

    python -m bench.startup [--processes 1 2] [--repeat 4]

Starts one MariaDB and one tansu broker, and for each process count a 1,000-row table and a task syncing it,
whose full sync is done first. Then, `--repeat` rounds (the process counts reversed every other round):

  idle         `obsync run --until-caught-up [--processes N]` with nothing to sync: start-up and stop alone
  one change   one row updated, then the same command: it starts, writes that change, has it acknowledged
               and stops; also how long after the command started the change was produced (its message's
               Kafka timestamp, the producer's clock)

Prints each run's wall seconds and the medians. The figures are the time a restart costs (a task started
again after a stop, a fault or a rollout) and the floor of every `--until-caught-up` run; docs/performance.md
keeps them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.e2e import ROOT, servers, span, table_and_task


def run(task: Path, processes: int, log: Path) -> float:
    """One `obsync run TASK --until-caught-up [--processes N]`: its wall seconds."""
    extra = ["--processes", str(processes)] if processes > 1 else []
    t0 = time.monotonic()
    with open(log, "ab") as err:
        subprocess.run([sys.executable, "-m", "obsync", "run", str(task), "--until-caught-up", *extra], cwd=ROOT,
                       stderr=err, check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2], metavar="N")
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    figures: dict[tuple[int, str], list[float]] = {}
    with servers("obsync-startup-") as (base, db, broker, conn):
        tasks: dict[int, tuple[Path, str, dict[int, int]]] = {}
        for k, n in enumerate(args.processes, 1):
            task = table_and_task(base, db, broker, conn, k, 1000, "default")
            run(task, n, task.parent / "obsync.log")  # the full sync
            topic = f"Topic_bench_t{k}"
            tasks[n] = (task, topic, span(broker.bootstrap_servers, topic, {})[3])
        for r in range(args.repeat):
            for n in (args.processes if r % 2 == 0 else list(reversed(args.processes))):
                task, topic, ends = tasks[n]
                k = args.processes.index(n) + 1
                log = task.parent / "obsync.log"
                idle = run(task, n, log)
                with conn.cursor() as cur:
                    cur.execute(f"UPDATE bench.t{k} SET a = a + 1 WHERE id = {r + 1}")
                began = time.time()
                one = run(task, n, log)
                count, first, _, ends = span(broker.bootstrap_servers, topic, ends)
                if count != 1:
                    sys.exit(f"expected the one change in {topic}, found {count} messages; see {log}")
                tasks[n] = (task, topic, ends)
                for name, value in (("idle", idle), ("one change", one), ("produced after", first - began)):
                    figures.setdefault((n, name), []).append(value)
                print(f"round {r + 1}, {n} process{'es' if n > 1 else ''}: idle {idle:.2f} s; one change {one:.2f} s, "
                      f"produced {first - began:.2f} s after the start", flush=True)
    print("\nmedians (s):")
    print("| processes | idle start and stop | one change: start to stop | one change: start to produced |")
    print("|---|---|---|---|")
    for n in args.processes:
        med = [statistics.median(figures[(n, name)]) for name in ("idle", "one change", "produced after")]
        print(f"| {n} | " + " | ".join(f"{m:.2f}" for m in med) + " |")


if __name__ == "__main__":
    main()

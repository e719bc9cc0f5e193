"""The performance figures in one command: each stage alone and end to end, on the same rows and servers.

    python -m bench.speed [--rows 200000] [--processes 1 2] [--formats default] [--repeat 1] [--txn-rows N]

Starts one MariaDB (binlog_row_metadata=MINIMAL) and one tansu broker. Each run is `bench.e2e`'s: a table of
its own with `--rows` rows of the 10-column table, a full sync of it by `obsync run --until-caught-up`, then
`--rows` more rows inserted (5,000-row transactions) and synced as an incremental backlog; end-to-end rates
are taken from the messages' Kafka timestamps (start-up excluded). Right before each sync the stages it is
bounded by are measured alone (`bench.stages`), in this process, on the rows that sync carries:

  before full sync    select (the snapshot reader on the table), encode (shape + encode + route of those rows),
                      produce (the Kafka sink writing them to a topic of its own, flushed)
  before incremental  binlog (the log reader reading + decoding the inserts just made), encode/log (the same
                      shape + encode + route of those log rows)

so that the machine's other jobs weigh on both sides of each ratio. A run is made for each process count of
`--processes` and each format of `--formats`; `--repeat N` makes N rounds, the order of the process counts
reversed every other round, and the final tables give medians over the rounds (ratios: the median of each
run's ratio). `--txn-rows N` also streams one N-row transaction after the first round's incremental sync
and gives that run's peak RSS per task process.

The final tables: each sync's rate, the stage rate it is bounded by (full sync: select; incremental: binlog)
and their ratio against issue 15's targets (full sync >= 0.75 x select, incremental >= 1.0 x binlog); obsync's
CPU per row (start-up and stop taken off: a run with nothing to sync is subtracted); the cores used by obsync
(all its processes), the source and the broker between the first and the last message; the peak RSS of each
task process; and each stage's rate and CPU per row. The load average is printed at the start and the end.

Two figures say whether a target is within reach of the machine's cores at all (`budget_us`, `ceiling`), both
from what the run measured: the CPU a row may cost obsync for the target's rate on the cores the source and the
broker leave it (`allows`), and the ratio obsync's own CPU per row would reach if it kept all those cores busy
(`at all free cores`). A ceiling below the target means obsync's CPU per row must fall, not only its
scheduling improve.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.e2e import Result, bench_one, header, load, servers
from bench.stages import Encoding, Rate, produce, read_log, read_snapshot
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.positions import LogPosition

PARTITIONS = 3  # as `bench.e2e`'s task
SYNCS = (("full sync", "select", 0.75), ("incremental", "binlog", 1.0))  # sync, the stage bounding it, target
RSS_LIMIT = 300  # MB, issue 15
STAGES = ("select", "binlog", "encode", "encode/log", "produce")
SERVERS = ("obsync", "source", "broker")


def machine_cores() -> int:
    """The cores this process may run on (what obsync, the source and the broker share)."""
    return len(os.sched_getaffinity(0))


def budget_us(cores: float, servers: float, target_rate: float) -> float:
    """The CPU µs a row may cost obsync to sync `target_rate` rows/s on the `cores` the servers leave after
    using `servers` of them (0 when they leave none)."""
    return max(cores - servers, 0.0) / max(target_rate, 1e-9) * 1e6


def ceiling(cores: float, servers: float, us_per_row: float, stage_rate: float) -> float:
    """The ratio to `stage_rate` that `us_per_row` of obsync CPU a row allows on the cores the servers leave."""
    return max(cores - servers, 0.0) / max(us_per_row, 1e-9) * 1e6 / max(stage_rate, 1e-9)


@dataclass
class StageHooks:
    """`bench.e2e.Hooks`: the stages measured right before each sync, on the rows it carries."""

    ep: Endpoint
    bootstrap: str
    fmt: str
    work: Path
    rates: dict[str, Rate] = field(default_factory=dict)

    def before_full(self, table: tuple[str, str]) -> None:
        snap, self.rates["select"] = read_snapshot(self.ep, table)
        enc = Encoding(self.fmt, table, f"Topic_{'_'.join(table)}", PARTITIONS)
        routed, self.rates["encode"] = enc.encode(snap)
        snap.clear()
        self.rates["produce"] = produce(self.bootstrap, enc.layout, routed, f"Stage_{'_'.join(table)}", PARTITIONS,
                                        self.rates["select"].rows)
        self._print("the stages alone, on the rows full sync is about to read:", "select", "encode", "produce")

    def before_incremental(self, table: tuple[str, str], start: LogPosition, stop: LogPosition) -> None:
        batches, self.rates["binlog"] = read_log(self.ep, table, start, stop, self.work / f"history-{table[1]}")
        enc = Encoding(self.fmt, table, f"Topic_{'_'.join(table)}", PARTITIONS)
        self.rates["encode/log"] = enc.encode(batches)[1]
        self._print("the stages alone, on the inserts incremental sync is about to read:", "binlog", "encode/log")

    def _print(self, title: str, *names: str) -> None:
        print(title, flush=True)
        for name in names:
            print(self.rates[name].line(name), flush=True)


@dataclass(frozen=True)
class Figures:
    """One run: its end-to-end figures and the stage rates measured right before its syncs."""

    fmt: str
    processes: int
    rates: dict[str, float]  # "full sync" / "incremental" -> rows/s (Kafka timestamps)
    us_per_row: dict[str, float]  # the same -> obsync's CPU µs per row, start-up and stop taken off
    cores: dict[str, dict[str, float]]  # the same -> "obsync" / "source" / "broker" -> cores while syncing
    stages: dict[str, Rate]
    rss: tuple[int, ...]  # peak RSS MB of each task process over both syncs
    txn_rss: tuple[int, ...] = ()  # the same over the --txn-rows transaction's run

    @staticmethod
    def of(result: Result, stages: dict[str, Rate], rows: int) -> Figures:
        runs = {"full sync": result.full, "incremental": result.incr}
        idle = result.idle.cpu if result.idle is not None else 0.0
        keys = sorted(set(result.full.processes) | set(result.incr.processes))
        return Figures(
            result.fmt, result.processes, {"full sync": result.full_rate, "incremental": result.incr_rate},
            {sync: (r.cpu - idle) / rows * 1e6 for sync, r in runs.items()},
            {sync: {name: r.window.get(name, 0.0) for name in SERVERS} for sync, r in runs.items()},
            dict(stages),
            tuple(max(r.processes[k].rss if k in r.processes else 0 for r in runs.values()) for k in keys),
            tuple(t.rss for t in result.txn.processes.values()) if result.txn is not None else ())

    def ratio(self, sync: str, stage: str) -> float:
        return self.rates[sync] / max(self.stages[stage].per_second, 1e-9)

    def servers(self, sync: str) -> float:
        """Cores the source and the broker used while `sync` ran."""
        return self.cores[sync]["source"] + self.cores[sync]["broker"]

    def allows(self, sync: str, stage: str, target: float, cores: int) -> float:
        """obsync CPU µs a row may cost for `target` x the stage's rate on the cores the servers left it."""
        return budget_us(cores, self.servers(sync), target * self.stages[stage].per_second)

    def ceiling(self, sync: str, stage: str, cores: int) -> float:
        """The ratio this run's obsync CPU per row allows if it kept every core the servers left it busy."""
        return ceiling(cores, self.servers(sync), self.us_per_row[sync], self.stages[stage].per_second)


def rounds(processes: Sequence[int], formats: Sequence[str], repeat: int) -> list[tuple[int, str, int]]:
    """(round, format, process count) of each run, in order: the process counts reversed every other round."""
    return [(r, fmt, n) for r in range(repeat) for fmt in formats for n in (processes if r % 2 == 0
                                                                            else list(reversed(processes)))]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _k(rate: float) -> str:
    return f"{rate / 1000:,.1f}k"


def summary(figures: list[Figures], txn_rows: int = 0, cores: int = 2) -> str:
    """Markdown tables of the medians of `figures` by format and process count: each sync against the stage
    bounding it (and what the `cores` allow: `Figures.allows`, `Figures.ceiling`), then the stages alone by
    format; then the peak RSS against issue 15's bound."""
    groups: dict[tuple[str, int], list[Figures]] = {}
    for f in figures:
        groups.setdefault((f.fmt, f.processes), []).append(f)
    most = max(len(g) for g in groups.values())
    out = [f"end to end against the stage bounding it (median of {most} run{'s' if most > 1 else ''}):", "",
           "| format | processes | sync | rows/s | bounded by | stage rows/s | ratio | target | obsync CPU/row | "
           "target allows CPU/row | ratio at all free cores | cores: obsync / source / broker | "
           "peak RSS MB per process |", "|---" * 13 + "|"]
    for (fmt, processes), group in groups.items():
        rss = " / ".join(str(max(f.rss[k] for f in group if k < len(f.rss)))
                         for k in range(max(len(f.rss) for f in group)))
        for sync, stage, target in SYNCS:
            ratio = _median([f.ratio(sync, stage) for f in group])
            cores_used = " / ".join(f"{_median([f.cores[sync][name] for f in group]):.2f}" for name in SERVERS)
            out.append("| " + " | ".join([
                fmt, str(processes), sync, _k(_median([f.rates[sync] for f in group])), stage,
                _k(_median([f.stages[stage].per_second for f in group])), f"{ratio:.2f}x",
                f"{target:.2f}x {'met' if ratio >= target else 'not met'}",
                f"{_median([f.us_per_row[sync] for f in group]):.1f} us",
                f"{_median([f.allows(sync, stage, target, cores) for f in group]):.1f} us",
                f"{_median([f.ceiling(sync, stage, cores) for f in group]):.2f}x", cores_used, rss]) + " |")
    by_format: dict[str, list[Figures]] = {}
    for f in figures:
        by_format.setdefault(f.fmt, []).append(f)

    def cell(group: list[Figures], stage: str) -> str:
        return (f"{_k(_median([f.stages[stage].per_second for f in group]))} "
                f"({_median([f.stages[stage].us_per_row for f in group]):.1f} us)")
    out += ["", "the stages alone (median rows/s, CPU per row):", "",
            "| format | " + " | ".join(STAGES) + " |", "|---" * (1 + len(STAGES)) + "|"]
    out += ["| " + " | ".join([fmt, *(cell(group, s) for s in STAGES)]) + " |" for fmt, group in by_format.items()]
    peak = max(r for f in figures for r in f.rss)
    out += ["", f"{cores} cores; 'target allows': the obsync CPU a row may cost for the target's rate on the cores "
            "the source and the broker leave; 'ratio at all free cores': the ratio obsync's CPU per row would reach "
            "with all those cores busy"]
    out += ["", f"peak RSS of a task process, largest: {peak} MB (issue 15: < {RSS_LIMIT} MB: "
            f"{'met' if peak < RSS_LIMIT else 'not met'})"]
    txn = [f for f in figures if f.txn_rss]
    if txn:
        peak = max(r for f in txn for r in f.txn_rss)
        each = "; ".join(f"{f.fmt}, {f.processes} process{'es' if f.processes > 1 else ''}: "
                         f"{' / '.join(str(r) for r in f.txn_rss)}" for f in txn)
        out.append(f"one {txn_rows:,}-row transaction, peak RSS MB per task process: {each} (issue 15: < "
                   f"{RSS_LIMIT} MB: {'met' if peak < RSS_LIMIT else 'not met'})")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2], metavar="N",
                    help="a run with each of these process counts (default: 1 2)")
    ap.add_argument("--formats", nargs="+", default=["default"], metavar="FORMAT",
                    help="a run with each of these formats (e.g. default debezium avro; "
                         "NAME:OPTION=VALUE,... gives format_options, e.g. debezium:schemas_enable=false)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of runs; the tables give medians")
    ap.add_argument("--txn-rows", type=int, default=0,
                    help="also stream one transaction of this many rows in each run of the first round")
    args = ap.parse_args()
    start_load = load()
    cores = machine_cores()
    with servers("obsync-speed-") as (base, db, broker, conn):
        print(header(args.rows), flush=True)
        ep = Endpoint(db.host, db.port, "root", "")
        figures = []
        for run_no, (r, fmt, n) in enumerate(rounds(args.processes, args.formats, args.repeat), 1):
            hooks = StageHooks(ep, broker.bootstrap_servers, fmt, base)
            result = bench_one(base, db, broker, conn, args.rows, n, args.txn_rows if r == 0 else 0, run_no, fmt,
                               hooks)
            f = Figures.of(result, hooks.rates, args.rows)
            figures.append(f)
            print(f"ratios: full sync / select {f.ratio('full sync', 'select'):.2f}x, incremental / binlog "
                  f"{f.ratio('incremental', 'binlog'):.2f}x", flush=True)
            for sync, stage, target in SYNCS:
                print(f"{sync}: the target allows {f.allows(sync, stage, target, cores):.1f} us of obsync CPU a row "
                      f"on the {cores} cores less the servers' {f.servers(sync):.2f} (it spent "
                      f"{f.us_per_row[sync]:.1f}); with all of them busy it would reach "
                      f"{f.ceiling(sync, stage, cores):.2f}x", flush=True)
    print("\n" + summary(figures, args.txn_rows, cores))
    print(f"\nload average (1, 5, 15 min): {start_load} at the start, {load()} at the end")


if __name__ == "__main__":
    main()

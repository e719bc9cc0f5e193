"""CPU cost of the formats' encoders on a 10-column row (one core, no Kafka, no dataflow).

    python -m bench.encoders [--rows 50000] [--formats default debezium avro] [--profile FORMAT]

For each format: µs of CPU (this thread's) per change, best of 3 passes, for inserts (log rows), snapshot rows
and updates, on `bench.encode_default`'s row; and the ratio to `default`. `avro` is registry-less (single-object
encoding). `--profile FORMAT` prints cProfile's top functions for that format's inserts instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

from bench.encode_default import TABLE, row
from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.formats.base import EncoderContext
from obsync.formats.registry import encoder_for


def changes(n: int) -> dict[str, list[Change]]:
    rows = [row(i) for i in range(n)]
    inserts = [Change(Op.INSERT, TABLE, LogPosition("mysql-bin.000001", 1000 + i * 300), after=r,
                      commit_time=1_700_000_000 + i // 1000, txn=f"3E11FA47-71CA-11E1-9E33-C80AA9429562:{i}")
               for i, r in enumerate(rows)]
    return {
        "insert": inserts,
        "snapshot row": [Change(Op.READ, TABLE, SnapshotPosition("shop.orders/0000", (r["id"],)), after=r)
                         for r in rows],
        "update": [Change(Op.UPDATE, TABLE, c.position, before=c.after, after={**c.after, "qty": 99},
                          commit_time=c.commit_time, txn=c.txn) for c in inserts],
    }


def cpu_per_change(encode: Callable[[Change, str], Any], items: list[Change], repeat: int = 3) -> float:
    """Least CPU seconds per change of `repeat` passes (the least disturbed one on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.thread_time()
        for c in items:
            encode(c, "t")
        best = min(best, time.thread_time() - c0)
    return best / len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--formats", nargs="+", default=["default", "debezium", "avro"])
    ap.add_argument("--profile", metavar="FORMAT")
    args = ap.parse_args()
    work = changes(args.rows)
    ctx = EncoderContext("bench", "MYSQL")
    if args.profile:
        enc = encoder_for(args.profile, ctx)
        enc.encode(work["insert"][0], "t")
        prof = cProfile.Profile()
        prof.enable()
        for c in work["insert"]:
            enc.encode(c, "t")
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    print(f"{args.rows} changes of a 10-column row; µs of CPU per change (best of 3); ratio to default")
    base: dict[str, float] = {}
    for fmt in args.formats:
        enc = encoder_for(fmt, ctx)
        cells = []
        for kind, items in work.items():
            us = cpu_per_change(enc.encode, items) * 1e6
            base.setdefault(kind, us)
            cells.append(f"{kind} {us:6.2f} ({us / base[kind]:.2f}x)")
        print(f"  {fmt:9} " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()

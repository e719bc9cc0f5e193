"""Throughput and memory of `obsync verify`'s comparison (no servers): N rows of a 6-column table encoded in a
format, replayed from their messages into the on-disk topic state, then compared with the same N source rows.

    python bench/verify_bench.py [--rows 1000000] [--format default]

Prints messages/s replayed, rows/s compared and the process's peak RSS, which stays flat as --rows grows
(the state is a SQLite file; rows go through in batches of 2,000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from obsync.app.verify.compare import TopicState, Where
from obsync.core.changes import Change, Op
from obsync.core.positions import SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.registry import decoder_for

SCHEMA = TableSchema("shop", "orders", (
    Column("id", "bigint", "bigint(20)", nullable=False),
    Column("customer", "varchar", "varchar(64)", charset="utf8mb4", precision=64),
    Column("amount", "decimal", "decimal(12,2)", precision=12, scale=2),
    Column("status", "varchar", "varchar(16)", charset="utf8mb4", precision=16),
    Column("created", "datetime", "datetime", fsp=0),
    Column("note", "text", "text", charset="utf8mb4"),
), primary_key=("id",))
BATCH = 2000


def row(i: int) -> dict:
    return {"id": i, "customer": f"customer {i % 9973}", "amount": Decimal(i % 100000) / 100, "status": "paid",
            "created": dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i), "note": "x" * (i % 50)}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", default="default")
    args = ap.parse_args()
    decoder = decoder_for(args.format, EncoderContext("bench", "MYSQL"), {})
    n = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        state = TopicState(Path(tmp) / "state.sqlite", ["id"])
        t0 = time.perf_counter()
        for i in range(n):
            change = Change(Op.READ, SCHEMA, SnapshotPosition("c", (i,)), after=row(i))
            for r in decoder.encoder.encode(change, "t"):
                for d in decoder.decode("t", r.key, r.value):
                    state.apply(d, Where(i % 3, i, None, ""))
            if i % 100_000 == 0:
                state.commit()
        state.commit()
        t1 = time.perf_counter()
        compared = 0
        for start in range(0, n, BATCH):
            images = [decoder.source_image(Change(Op.READ, SCHEMA, SnapshotPosition("c", (i,)), after=row(i)), "t")
                      for i in range(start, min(n, start + BATCH))]
            compared += state.compare_keyed(images)
        state.finish_keyed()
        t2 = time.perf_counter()
        assert state.difference_count() == 0
        size = state.path.stat().st_size / 2**20
        state.close()
    print(f"format {args.format}, {n:,} rows: replay {n / (t1 - t0):,.0f} messages/s, "
          f"compare {compared / (t2 - t1):,.0f} rows/s, "
          f"overall {n / (t2 - t0):,.0f} rows/s; state file {size:,.0f} MiB; peak RSS {rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()

"""Throughput and memory of `obsync verify`'s comparison (no servers): N rows of a 6-column table encoded in a
format, replayed from their messages into the on-disk topic state, then compared with the same N source rows.

    python bench/verify_bench.py [--rows 1000000] [--format default]

Prints messages/s replayed (decoded and applied; making the messages is not timed), rows/s compared (each
source row encoded and decoded as the task writes it, then looked up; making the rows is not timed), both per
wall and per CPU second, and the process's peak RSS, which stays flat as --rows grows (the state is a SQLite
file; rows go through in batches of 2,000).
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


class Clock:
    """Wall and CPU seconds spent inside `with clock:` blocks."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> None:
        self._w, self._c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c

    def rate(self, n: int) -> str:
        return f"{n / self.wall:,.0f}/s ({n / self.cpu:,.0f} per CPU s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", default="default")
    args = ap.parse_args()
    decoder = decoder_for(args.format, EncoderContext("bench", "MYSQL"), {})
    n = args.rows
    replay, compare = Clock(), Clock()
    with tempfile.TemporaryDirectory() as tmp:
        state = TopicState(Path(tmp) / "state.sqlite", ["id"])
        for start in range(0, n, BATCH):  # the messages of a batch are made outside the clock: verify reads them
            batch = [(i, r) for i in range(start, min(n, start + BATCH))
                     for r in decoder.encoder.encode(Change(Op.READ, SCHEMA, SnapshotPosition("c", (i,)),
                                                            after=row(i)), "t")]
            with replay:
                for i, r in batch:
                    for d in decoder.decode("t", r.key, r.value):
                        state.apply(d, Where(i % 3, i, None, ""))
                if start % 100_000 == 0:
                    state.commit()
        with replay:
            state.commit()
        compared = 0
        for start in range(0, n, BATCH):  # source rows are made outside the clock: verify reads them
            changes = [Change(Op.READ, SCHEMA, SnapshotPosition("c", (i,)), after=row(i))
                       for i in range(start, min(n, start + BATCH))]
            with compare:
                compared += state.compare_keyed([decoder.source_image(c, "t") for c in changes])
        with compare:
            state.finish_keyed()
        assert state.difference_count() == 0
        size = state.path.stat().st_size / 2**20
        state.close()
    print(f"format {args.format}, {n:,} rows: replay (decode + apply) {replay.rate(n)} messages, compare (encode "
          f"+ decode + look up) {compare.rate(compared)} rows; state file {size:,.0f} MiB; "
          f"peak RSS {rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()

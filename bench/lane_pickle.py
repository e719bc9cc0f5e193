"""What a lane's batch of log changes costs to cross between processes, packed (`LaneWork`) or as `Change` objects.

    python -m bench.lane_pickle [--rows 500]

A batch of `--rows` INSERTs of the e2e bench's 10-column table (ints, a string, a decimal, a float, datetimes),
pickled twice as Bytewax pickles an item crossing processes (timely asks its size, then its bytes) and unpickled
once: thread CPU µs per row, the best of 5 passes, and the bytes per row.
"""

from __future__ import annotations

import argparse
import datetime
import pickle
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.steps.routing import Encode, LaneWork

TABLE = TableSchema("bench", "t", tuple(Column(n, "int", "int(11)") for n in "id a b c d e f g h i".split()), ("id",))


def row(i: int) -> dict[str, Any]:
    return {"id": i, "a": i % 1000, "b": i * 7, "c": f"name-{i}", "d": Decimal(i) / 100, "e": i / 3,
            "f": datetime.datetime(2024, 5, 6, 7, 8, 9, 123000), "g": datetime.datetime(2024, 1, 1),
            "h": "some text here", "i": i % 100}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500)
    args = ap.parse_args()
    n = args.rows
    items = [Encode(Change(Op.INSERT, TABLE, LogPosition("mysql-bin.000001", 1000 + i, i % 5), after=row(i),
                           commit_time=1.7e9, txn="0-1-5", server_id=1), "topic", 1) for i in range(n)]

    def measure(label: str, fn: Callable[[], Any], passes: int = 40) -> None:
        best = min(_cpu(fn, passes) for _ in range(5))
        print(f"  {label:40} {best / passes / n * 1e6:6.2f} us CPU/row", flush=True)

    def twice_plain() -> None:
        pickle.dumps(items)
        pickle.dumps(items)

    def twice_packed() -> None:
        w = LaneWork("lane001", items)
        pickle.dumps(w)
        pickle.dumps(w)

    plain, packed = pickle.dumps(items), pickle.dumps(LaneWork("lane001", items))
    print(f"{n} rows per batch; {len(plain) / n:.0f} B/row as Change objects, {len(packed) / n:.0f} B/row packed")
    measure("send: Change objects, pickled twice", twice_plain)
    measure("receive: Change objects, unpickled", lambda: pickle.loads(plain))
    measure("send: LaneWork, packed once", twice_packed)
    measure("receive: LaneWork, unpacked", lambda: pickle.loads(packed).items)  # kept packed until asked


def _cpu(fn: Callable[[], Any], passes: int) -> float:
    t = time.thread_time()
    for _ in range(passes):
        fn()
    return time.thread_time() - t


if __name__ == "__main__":
    main()

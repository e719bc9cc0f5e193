"""Instructions per row of the dataflow's per-row steps, counted by valgrind: figures that do not move with load.

    python -m bench.instructions [--rows 5000] [--formats default debezium avro] [--steps encode crossing]
                                 [--compare DIR]

On a shared or virtual 2-core machine the CPU time of the same step varies by half from one run to the next
(`bench.encoders`, `bench.stages`), which hides changes of 10-20 %. valgrind's callgrind counts the instructions
a program executes instead: the same code on the same input gives the same count, whatever else runs. This runs
each step twice in a child Python under `valgrind --tool=callgrind`, once with `--rows` changes of
`bench.encode_default`'s 10-column row and once building the same changes without running the step; the
difference divided by the rows is the step's instructions per row (start-up, imports and building the input
cancel out). Steps:

  encode    `Router.route` of 500-change batches (encode + route, as on the worker reading a snapshot chunk),
            for snapshot rows, inserts and updates
  crossing  what spreading the log over processes adds for inserts: `Router.pick` (packed, as when every lane
            is written by another process), pickling each lane's work twice (as Bytewax does), unpickling it and
            `Router.expand` (which encodes), minus `encode` of the same inserts

`--compare DIR` also counts each step with DIR (another checkout of obsync) first on PYTHONPATH and prints
both and their ratio: an A/B of a change that holds on a noisy machine. Needs valgrind (Debian: valgrind).
Python under callgrind runs about 50x slower: 5,000 rows take a few seconds a step.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

BATCH = 500
KINDS = ("snapshot row", "insert", "update")
ROOT = Path(__file__).resolve().parent.parent


def child(fmt: str, kind: str, rows: int, step: str, run: bool) -> None:
    """In the counted process: build the changes and the router; run the step only when `run`."""
    from bench.encode_default import TABLE
    from bench.encoders import changes
    from obsync.formats.base import EncoderContext
    from obsync.formats.registry import encoder_for
    from obsync.steps.routing import Router, TopicLayout

    encoder = encoder_for(fmt, EncoderContext("bench", "MYSQL"))
    layout = TopicLayout({(TABLE.db, TABLE.name): "t"}, {"t": 3, **dict.fromkeys(encoder.extra_topics(), 1)})
    router = Router(encoder, layout, "hash")
    items = changes(rows)[kind]
    batches = [items[i:i + BATCH] for i in range(0, rows, BATCH)]
    router.route(changes(10)[kind])  # per-table caches and code generation outside the count
    if step == "crossing":
        router.packs = True
        for _, work in router.pick(changes(10)[kind]):
            router.expand(pickle.loads(pickle.dumps(work)))
    if not run:
        return
    if step == "encode":
        for b in batches:
            router.route(b)
    else:
        for b in batches:
            for _, work in router.pick(b):
                blob = pickle.dumps(work)
                pickle.dumps(work)  # timely pickles an item twice: its size, then its bytes
                router.expand(pickle.loads(blob))


def count(pythonpath: Path, fmt: str, kind: str, rows: int, step: str, run: bool) -> int:
    """Instructions executed by a child Python running `child` under callgrind."""
    # a fixed hash seed: string hashes decide dictionaries' probing, which moves the count by a few per cent
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "PYTHONHASHSEED": "0"}
    # this file runs as a script, so that a checkout without it can be counted; obsync and the bench's row
    # come from `pythonpath`
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--child", fmt, kind, str(rows), step, "1" if run else "0"]
    done = subprocess.run(cmd, env=env, cwd=pythonpath, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"the {step} step ({fmt}, {kind}) failed under valgrind with {pythonpath} on "
                         f"PYTHONPATH:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def per_row(pythonpath: Path, fmt: str, kind: str, rows: int, step: str) -> float:
    """Instructions per row of `step`: (with - without) / rows."""
    return (count(pythonpath, fmt, kind, rows, step, True) - count(pythonpath, fmt, kind, rows, step, False)) / rows


def main() -> None:
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        _, _, fmt, kind, rows, step, run = sys.argv
        child(fmt, kind, int(rows), step, run == "1")
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000)
    ap.add_argument("--formats", nargs="+", default=["default", "debezium", "avro"])
    ap.add_argument("--steps", nargs="+", default=["encode", "crossing"], choices=["encode", "crossing"])
    ap.add_argument("--compare", type=Path, metavar="DIR", help="another obsync checkout to count beside this one")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind); it counts the instructions")
    if args.rows < BATCH:
        raise SystemExit(f"--rows must be at least {BATCH} (one batch)")
    trees = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    print(f"instructions per row (callgrind), {args.rows} changes of a 10-column row, batches of {BATCH}"
          + (f"; A = {ROOT}, B = {trees[1]}" if args.compare else ""), flush=True)
    for fmt in args.formats:
        for step in args.steps:
            for kind in KINDS if step == "encode" else ("insert",):
                counts = []
                for tree in trees:
                    n = per_row(tree, fmt, kind, args.rows, step)
                    if step == "crossing":
                        n -= per_row(tree, fmt, kind, args.rows, "encode")  # what crossing adds to encoding
                    counts.append(n)
                line = f"  {fmt:<9} {step:<9} {kind:<13} {counts[0]:>10,.0f}"
                if len(counts) == 2:
                    line += f"   B {counts[1]:>10,.0f}   B/A {counts[1] / counts[0]:.3f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()

"""Rate limits on what a task reads from the source (`limits.full`, `limits.incremental`), engine-free.

A `RateLimiter` is a token bucket per limited dimension: rows (`rps`, rows per second) and bytes (`bps`).
Each bucket refills at its rate up to a capacity of `burst` seconds of it (0.5 s, at least one row or
byte) and starts full. A `Pacer` holds one batch a source partition read and hands it out in slices, in
order, as the tokens allow; a source whose pacer says "wait" returns no item and asks to be woken when the
tokens are there (Bytewax sources must not block). The sources see them through `obsync.core.pacing`
(`RateLimiter` is a `Pacing`, `Pacer` a `BatchPacer`) and never import this module.

**The bound.** For each dimension, with rate r, capacity C and a level L(t) that never exceeds C, what is
taken in any window [a, b] is L(a-) + (refill over the window, at most r(b - a)) - L(b+). A slice is only
taken out of tokens that are there (L >= 0 afterwards), so every window, the first one included (the
bucket starts full: L(0) = C), carries at most r(b - a) + C: for a 10-second window and C = 0.5 s of rate,
at most 10.5 s worth, 5% over the cap. The one exception is a single item costing more than C (a row
larger than half a second of `bps`, or any row when `rps` < 2): it cannot be split, so it waits until the
bucket is full and takes it into debt (L = C - cost), which the following items wait out. A window holding
such an item carries at most r(b - a) + its cost. With `rps` >= 1 the row dimension stays within 10%
(C is at least one row: r*10 + 1 <= 1.1 * r*10).

**What is counted** (`item_rows`, `item_bytes`): every change handed to the dataflow is one row (a
snapshot row, an inserted, updated or deleted row (one for the update's pair), a DDL statement); the
end-of-chunk marker counts nothing. Bytes are an estimate of the row data, not of protocol or log
overhead: the sum over the row images (before and after of an update) of each value's length: `str` its
UTF-8 length, `bytes` its length, any other non-NULL value (numbers, temporals) 8, NULL 0; a DDL its
statement's UTF-8 length.

**Per process.** One limiter per kind of sync per process, shared by all the partitions of that kind (all
snapshot chunks read by the process's workers). The snapshot's chunks are spread over every process of a
multi-process run (`python -m bytewax.run ... -i ID -a "h1;h2;..."`, `python -m bytewax.testing -p N`), so
`limits.full` is divided by the number of processes (`bytewax_processes()`); the log is one partition, read
in one process, so `limits.incremental` is not divided.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, Protocol

BURST_SECONDS = 0.5
# Sources fetch at most this much of `rps` at once (while the limit allows less than their batch size), so
# that they read from the source at most a fraction of a second ahead of what the limiter let through.
FETCH_SECONDS = 0.125
_EPS = 1e-9
_MIN_DELAY = 1e-4  # a wait shorter than this is this (a clock step must refill what is short)


class _Limit(Protocol):
    rps: float | None
    bps: float | None


class RateLimiter:
    """Token buckets of rows (`rps`) and bytes (`bps`); None leaves a dimension unlimited. Thread-safe.

    `clock` returns seconds (monotonic); tests pass a simulated one.
    """

    def __init__(self, rps: float | None = None, bps: float | None = None, *, burst: float = BURST_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, rate in (("rps", rps), ("bps", bps)):
            if rate is not None and not rate > 0:
                raise ValueError(f"{name} must be greater than 0, not {rate!r}")
        if not burst > 0:
            raise ValueError("burst must be greater than 0")
        self.rps, self.bps = rps, bps
        self._clock = clock
        self._lock = threading.Lock()
        self._t = clock()
        # per dimension (rows, bytes): rate, capacity, level; an unlimited one is infinite
        self._rate = [rps or math.inf, bps or math.inf]
        self._cap = [max(1.0, r * burst) if r is not None else math.inf for r in (rps, bps)]
        self._level = list(self._cap)  # starts full: a window starting at 0 is bounded like any other

    def __repr__(self) -> str:
        return f"RateLimiter(rps={self.rps}, bps={self.bps})"

    @property
    def counts_bytes(self) -> bool:
        return self.bps is not None

    @property
    def capacity(self) -> tuple[float, float]:
        """The burst: (rows, bytes) the buckets hold when full."""
        return self._cap[0], self._cap[1]

    def fetch_rows(self, batch_size: int) -> int:
        """The most rows a source should fetch at once: `batch_size`, or `FETCH_SECONDS` of `rps` if less."""
        if self.rps is None:
            return batch_size
        return max(1, min(batch_size, int(self.rps * FETCH_SECONDS)))

    def pacer(self) -> Pacer:
        """A `Pacer` of one source partition drawing on this limiter (`obsync.core.pacing.Pacing`)."""
        return Pacer(self)

    def _refill(self) -> None:
        now = self._clock()
        dt = now - self._t
        if dt > 0:
            self._t = now
            for i in (0, 1):
                if self._level[i] < self._cap[i]:
                    self._level[i] = min(self._cap[i], self._level[i] + self._rate[i] * dt)

    def available(self) -> tuple[float, float]:
        """The tokens (rows, bytes) in the buckets now (negative while in debt, infinite when unlimited)."""
        with self._lock:
            self._refill()
            return self._level[0], self._level[1]

    def _delay(self, cost: tuple[float, float]) -> float:
        delay = 0.0
        for i in (0, 1):
            need = min(cost[i], self._cap[i])  # more than a full bucket: wait for a full one (then debt)
            short = need - self._level[i]
            if short > _EPS:
                delay = max(delay, short / self._rate[i], _MIN_DELAY)
        return delay

    def delay_for(self, rows: float, nbytes: float) -> float:
        """Seconds until `rows` rows and `nbytes` bytes may be taken (0: now). A cost larger than a bucket's
        capacity may be taken when that bucket is full."""
        with self._lock:
            self._refill()
            return self._delay((rows, nbytes))

    def consume(self, rows: float, nbytes: float) -> None:
        """Take the tokens, into debt if there are not enough (the next takers wait it out)."""
        with self._lock:
            self._refill()
            self._level[0] -= rows
            self._level[1] -= nbytes

    def acquire(self, rows: float, nbytes: float) -> float:
        """Take the tokens if `delay_for` says now (returning 0), else take nothing and return the delay."""
        with self._lock:
            self._refill()
            delay = self._delay((rows, nbytes))
            if delay == 0.0:
                self._level[0] -= rows
                self._level[1] -= nbytes
            return delay


def limiter_for(limit: _Limit | None, processes: int = 1, *,
                clock: Callable[[], float] = time.monotonic) -> RateLimiter | None:
    """The limiter of a `limits.full` / `limits.incremental` setting, its caps divided among `processes`;
    None when nothing is limited."""
    if limit is None or (limit.rps is None and limit.bps is None):
        return None
    n = max(1, processes)
    return RateLimiter(None if limit.rps is None else limit.rps / n, None if limit.bps is None else limit.bps / n,
                       clock=clock)


def bytewax_processes(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """How many processes the Bytewax run this process belongs to has: `OBSYNC_PROCESSES` if set, else the
    addresses given to `python -m bytewax.run` (`-a`/`--addresses` or `BYTEWAX_ADDRESSES`, or the lines of
    `BYTEWAX_HOSTFILE_PATH`), else 1 (`obsync run` is one process)."""
    argv = sys.argv if argv is None else argv
    env = os.environ if environ is None else environ
    if env.get("OBSYNC_PROCESSES"):
        return max(1, int(env["OBSYNC_PROCESSES"]))
    addresses: str | None = None
    if argv and os.path.basename(os.path.dirname(argv[0])) == "bytewax" and \
            os.path.basename(argv[0]) in ("run.py", "run"):
        for i, a in enumerate(argv):
            if a in ("-a", "--addresses") and i + 1 < len(argv):
                addresses = argv[i + 1]
            elif a.startswith("--addresses="):
                addresses = a.split("=", 1)[1]
    addresses = addresses or env.get("BYTEWAX_ADDRESSES")
    if addresses:
        return max(1, len([a for a in addresses.split(";") if a.strip()]))
    hostfile = env.get("BYTEWAX_HOSTFILE_PATH")
    if hostfile and (env.get("BYTEWAX_PROCESS_ID") or env.get("BYTEWAX_POD_NAME")):
        try:
            with open(hostfile) as f:
                return max(1, sum(1 for line in f if line.strip()))
        except OSError:
            pass
    return 1


# ---- what is counted -----------------------------------------------------------------------------------

def row_bytes(row: dict[str, Any] | None) -> int:
    """Estimated size of a row image: str UTF-8 length, bytes length, other non-NULL values 8, NULL 0."""
    if not row:
        return 0
    n = 0
    for v in row.values():
        t = type(v)
        if t is str:
            n += len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass"))
        elif t is bytes or t is bytearray:
            n += len(v)
        elif v is not None:
            n += 8
    return n


def item_rows(item: Any) -> int:
    """1 for a change (row, DDL, heartbeat), 0 for markers (`StreamDone`)."""
    return 1 if hasattr(item, "op") else 0


def item_bytes(item: Any) -> int:
    """Estimated bytes of a change: its row images (see `row_bytes`), or its DDL statement."""
    if not hasattr(item, "op"):
        return 0
    ddl = item.ddl
    if ddl is not None:
        return len(ddl.encode("utf-8", "surrogatepass"))
    return row_bytes(item.before) + row_bytes(item.after)


class Pacer:
    """One source partition's held batch, handed out in order in slices its (shared) `limiter` allows.

    `hold(batch)` when not `holding`; then `take()` until it is empty: a slice to emit, or ([], seconds to
    wait). A slice is as much of the batch as the tokens now cover, but never less than half a burst (or the
    rest of the batch) so items do not shrink to single rows; an item costing more than a full bucket goes
    alone when the bucket is full (into debt, see the module).
    """

    def __init__(self, limiter: RateLimiter, rows_of: Callable[[Any], int] = item_rows,
                 bytes_of: Callable[[Any], int] = item_bytes) -> None:
        self.limiter = limiter
        self._rows_of = rows_of
        self._bytes_of = bytes_of if limiter.counts_bytes else None
        self._items: list[Any] = []
        self._i = 0
        self._cum_rows: list[int] = [0]
        self._cum_bytes: list[int] = [0]

    @property
    def holding(self) -> bool:
        """True while part of the held batch was not handed out."""
        return self._i < len(self._items)

    def hold(self, batch: list[Any]) -> None:
        if self.holding:
            raise RuntimeError("Pacer.hold while a batch is still held")
        self._items, self._i = batch, 0
        self._cum_rows = [0, *accumulate(self._rows_of(x) for x in batch)]
        self._cum_bytes = [0, *accumulate(self._bytes_of(x) for x in batch)] if self._bytes_of else []

    def clear(self) -> None:
        self._items, self._i = [], 0

    def read_delay(self) -> float:
        """Seconds until the partition may read more (0: now): none while the limiter is in debt."""
        return self.limiter.delay_for(1, 1)

    def _cost(self, k: int) -> tuple[int, int]:
        """(rows, bytes) of the held items from the next one up to (not including) k."""
        i = self._i
        b = self._cum_bytes[k] - self._cum_bytes[i] if self._bytes_of else 0
        return self._cum_rows[k] - self._cum_rows[i], b

    def _fit(self, rows: float, nbytes: float) -> int:
        """The end of the longest run of held items from the next one costing at most (rows, nbytes)."""
        i, n = self._i, len(self._items)
        k = n
        if rows != math.inf:
            k = min(k, bisect_right(self._cum_rows, self._cum_rows[i] + rows + _EPS) - 1)
        if self._bytes_of and nbytes != math.inf:
            k = min(k, bisect_right(self._cum_bytes, self._cum_bytes[i] + nbytes + _EPS) - 1)
        return max(i, k)

    def next_batches(self) -> tuple[list[list[Any]], datetime | None]:
        """What a source partition's `next_batch` returns from the held batch, and its `next_awake`: the
        next slice now (awake None), or nothing until tokens are there."""
        part, delay = self.take()
        if not part:
            return [], datetime.now(UTC) + timedelta(seconds=delay)
        return [part], None

    def take(self) -> tuple[list[Any], float]:
        """The next slice to hand out now, or ([], seconds until one may be)."""
        i = self._i
        if i >= len(self._items):
            return [], 0.0
        lim = self.limiter
        cap_r, cap_b = lim.capacity
        want = max(i + 1, self._fit(cap_r / 2, cap_b / 2))
        delay = lim.delay_for(*self._cost(want))
        if delay > 0:
            return [], delay
        k = max(want, self._fit(*lim.available()))
        delay = lim.acquire(*self._cost(k))
        if delay > 0:  # another partition took the tokens meanwhile
            return [], delay
        self._i = k
        out = self._items[i:k]
        if k >= len(self._items):
            self.clear()
        return out, 0.0

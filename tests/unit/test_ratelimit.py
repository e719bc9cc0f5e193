"""Rate limits (obsync.steps.ratelimit) on a simulated clock: the 10-second window bound, debt, both caps."""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal

import pytest

from obsync.core.errors import ConfigError
from obsync.steps.ratelimit import (
    BURST_SECONDS,
    Pacer,
    RateLimiter,
    bytewax_processes,
    item_bytes,
    item_rows,
    limiter_for,
)
from obsync.task.config import parse_task
from obsync.task.sizes import parse_bytes

WINDOW = 10.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Row:
    """Stands for a Change: one row of `size` bytes."""

    op: str
    size: int
    seq: int


def sizes(item: Row) -> int:
    return item.size


def max_window(events: list[tuple[float, float]], window: float = WINDOW) -> float:
    """The largest total of (time, amount) events in any closed window [t, t + window] or [t - window, t]
    (both ends at an event time: where a maximum is)."""
    times = [t for t, _ in events]
    cum = [0.0]
    for _, a in events:
        cum.append(cum[-1] + a)
    best = 0.0
    for t in times:
        lo, hi = bisect_left(times, t), bisect_right(times, t + window)
        best = max(best, cum[hi] - cum[lo])
        lo, hi = bisect_left(times, t - window), bisect_right(times, t)
        best = max(best, cum[hi] - cum[lo])
    return best


def simulate(limiter: RateLimiter, clock: Clock, *, partitions: int = 1, batch: int = 2000,
             row_size=lambda rnd: 100, seconds: float = 60.0, seed: int = 1,
             late: float = 0.02) -> tuple[list[tuple[float, int, int]], list[list[int]]]:
    """Partitions sharing `limiter`, each reading `batch`-row batches from an endless source and handing
    them out through its Pacer, polled the way Bytewax does: at the wake-up time asked for (plus up to
    `late` seconds), or right away after an item. Returns the emissions (time, rows, bytes) and the
    sequence numbers each partition emitted."""
    rnd = random.Random(seed)
    pacers = [Pacer(limiter, bytes_of=sizes) for _ in range(partitions)]
    wake = [clock.t + rnd.random() * 0.01 for _ in range(partitions)]
    seqs = [0] * partitions
    emitted: list[list[int]] = [[] for _ in range(partitions)]
    events: list[tuple[float, int, int]] = []
    end = clock.t + seconds
    while True:
        p = min(range(partitions), key=wake.__getitem__)
        if wake[p] > end:
            break
        clock.t = max(clock.t, wake[p])
        pacer = pacers[p]
        if not pacer.holding:
            pacer.hold([Row("read", row_size(rnd), seqs[p] + i) for i in range(batch)])
            seqs[p] += batch
        part, delay = pacer.take()
        if part:
            events.append((clock.t, len(part), sum(r.size for r in part)))
            emitted[p] += [r.seq for r in part]
            wake[p] = clock.t + rnd.random() * 0.002  # the dataflow's work on the item
        else:
            assert delay > 0
            wake[p] = clock.t + delay + rnd.random() * late
    return events, emitted


def test_rows_cap_holds_in_every_10s_window_with_2000_row_batches():
    clock = Clock()
    lim = RateLimiter(rps=2000, clock=clock)
    events, emitted = simulate(lim, clock, seconds=120)
    rows = [(t, n) for t, n, _ in events]
    # the bound: rate * window + the burst (half a second), the first window included
    assert max_window(rows) <= 2000 * WINDOW + 2000 * BURST_SECONDS
    assert max_window(rows) <= 2000 * WINDOW * 1.1
    total = sum(n for _, n in rows)
    assert total >= 2000 * 120 * 0.97  # and the cap is used, not undershot
    assert emitted[0] == list(range(len(emitted[0])))  # in order, nothing lost
    assert max(n for _, n in rows) <= 2000 * BURST_SECONDS  # 2000-row batches went in slices


def test_first_window_starts_with_at_most_the_burst():
    clock = Clock()
    lim = RateLimiter(rps=1000, clock=clock)
    t0 = clock.t
    events, _ = simulate(lim, clock, seconds=WINDOW, late=0.0)
    first = sum(n for t, n, _ in events if t <= t0 + WINDOW)
    assert first <= 1000 * WINDOW + 1000 * BURST_SECONDS
    assert events[0][0] == t0 or events[0][0] - t0 < 0.02  # no wait at the start: the bucket starts full


@pytest.mark.parametrize("partitions", [2, 5])
def test_partitions_sharing_a_limiter_share_the_cap(partitions):
    clock = Clock()
    lim = RateLimiter(rps=3000, clock=clock)
    events, emitted = simulate(lim, clock, partitions=partitions, seconds=60, seed=partitions)
    rows = [(t, n) for t, n, _ in events]
    assert max_window(rows) <= 3000 * WINDOW + 3000 * BURST_SECONDS
    assert sum(n for _, n in rows) >= 3000 * 60 * 0.97
    for seq in emitted:
        assert seq == list(range(len(seq)))
    assert all(seq for seq in emitted)  # nobody starves


def test_bytes_cap_with_varying_row_sizes():
    clock = Clock()
    lim = RateLimiter(bps=1_000_000, clock=clock)
    events, _ = simulate(lim, clock, row_size=lambda rnd: rnd.randint(10, 4000), seconds=90)
    nbytes = [(t, b) for t, _, b in events]
    assert max_window(nbytes) <= 1_000_000 * (WINDOW + BURST_SECONDS)
    assert sum(b for _, b in nbytes) >= 1_000_000 * 90 * 0.97


@pytest.mark.parametrize("rps,bps,binding", [(2000, 10_000_000, "rows"), (100_000, 500_000, "bytes")])
def test_both_caps_each_honoured(rps, bps, binding):
    clock = Clock()
    lim = RateLimiter(rps=rps, bps=bps, clock=clock)
    events, _ = simulate(lim, clock, row_size=lambda rnd: rnd.randint(100, 900), seconds=60)
    rows = [(t, n) for t, n, _ in events]
    nbytes = [(t, b) for t, _, b in events]
    assert max_window(rows) <= rps * (WINDOW + BURST_SECONDS)
    assert max_window(nbytes) <= bps * (WINDOW + BURST_SECONDS)
    if binding == "rows":
        assert sum(n for _, n in rows) >= rps * 60 * 0.97
    else:
        assert sum(b for _, b in nbytes) >= bps * 60 * 0.97


def test_a_row_larger_than_the_bucket_passes_into_debt():
    clock = Clock()
    lim = RateLimiter(bps=1000, clock=clock)  # bucket: 500 bytes
    pacer = Pacer(lim, bytes_of=sizes)
    pacer.hold([Row("read", 100, 0), Row("read", 3000, 1), Row("read", 100, 2)])
    part, delay = pacer.take()
    assert [r.seq for r in part] == [0] and delay == 0  # the big one does not fit what is left
    part, delay = pacer.take()
    assert part == [] and delay == pytest.approx(0.1)  # waits for a full bucket (500), not for 3000
    clock.t += delay
    part, delay = pacer.take()
    assert [r.seq for r in part] == [1]
    assert lim.available()[1] == pytest.approx(500 - 3000)  # in debt
    part, delay = pacer.take()
    assert part == [] and delay == pytest.approx((2500 + 100) / 1000)  # the debt is waited out
    clock.t += delay
    part, _ = pacer.take()
    assert [r.seq for r in part] == [2] and not pacer.holding


def test_big_rows_window_bound_is_rate_plus_the_row():
    clock = Clock()
    lim = RateLimiter(bps=10_000, clock=clock)  # bucket 5000 bytes; rows up to 8000 bytes
    events, _ = simulate(lim, clock, batch=50, row_size=lambda rnd: rnd.choice([200, 8000]), seconds=120)
    nbytes = [(t, b) for t, _, b in events]
    assert max_window(nbytes) <= 10_000 * WINDOW + 8000


def test_low_rps_stays_within_ten_percent():
    clock = Clock()
    lim = RateLimiter(rps=1, clock=clock)  # the bucket holds one row (at least one)
    events, _ = simulate(lim, clock, batch=20, seconds=60, late=0.0)
    assert max_window([(t, n) for t, n, _ in events]) <= 11


def test_delay_for_consume_and_acquire():
    clock = Clock()
    lim = RateLimiter(rps=100, bps=1000, clock=clock)
    assert lim.capacity == (50, 500)
    assert lim.delay_for(50, 500) == 0
    lim.consume(50, 100)
    assert lim.delay_for(10, 0) == pytest.approx(0.1)
    assert lim.delay_for(0, 400) == 0
    assert lim.delay_for(1000, 0) == pytest.approx(0.5)  # more than a bucket: until it is full
    assert lim.acquire(10, 0) == pytest.approx(0.1)
    assert lim.available() == (0, 400)  # a refused acquire takes nothing
    clock.t += 0.1
    assert lim.acquire(10, 0) == 0
    assert lim.available()[0] == pytest.approx(0, abs=1e-6)
    clock.t += 100
    assert lim.available() == (50, 500)  # never more than the burst


def test_one_dimension_unlimited():
    clock = Clock()
    lim = RateLimiter(rps=10, clock=clock)
    assert not lim.counts_bytes
    assert lim.delay_for(5, 10**12) == 0
    assert lim.fetch_rows(2000) == 1
    assert RateLimiter(rps=100_000).fetch_rows(2000) == 2000
    assert RateLimiter(rps=2000).fetch_rows(2000) == 250
    assert RateLimiter(bps=5).fetch_rows(2000) == 2000


def test_limiter_for_divides_among_processes():
    class L:
        rps, bps = 3000.0, 9000.0

    lim = limiter_for(L(), 3)
    assert (lim.rps, lim.bps) == (1000, 3000)

    class Off:
        rps = bps = None

    assert limiter_for(Off()) is None and limiter_for(None) is None
    with pytest.raises(ValueError):
        RateLimiter(rps=0)


def test_bytewax_processes():
    run = "/usr/lib/python3/site-packages/bytewax/run.py"
    assert bytewax_processes(["obsync", "run", "-a", "x"], {}) == 1  # not bytewax.run's argv
    assert bytewax_processes([run, "obsync.flows.sync:flow", "-i", "0", "-a", "h:1;h:2;h:3"], {}) == 3
    assert bytewax_processes([run, "obsync.flows.sync:flow", "--addresses=h:1;h:2"], {}) == 2
    assert bytewax_processes([run, "obsync.flows.sync:flow"], {"BYTEWAX_ADDRESSES": "a:1;b:1"}) == 2
    assert bytewax_processes([run], {"OBSYNC_PROCESSES": "4", "BYTEWAX_ADDRESSES": "a:1"}) == 4
    assert bytewax_processes(["x"], {}) == 1


def test_parse_bytes():
    assert parse_bytes("10MB") == 10_000_000
    assert parse_bytes("512KiB") == 512 * 1024
    assert parse_bytes("1.5 MB/s") == 1_500_000
    assert parse_bytes("2gib") == 2 * 1024**3
    assert parse_bytes("1e6") == 1_000_000
    assert parse_bytes(42) == 42.0
    for bad in ("ten", "10 parsecs", "", "MB"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def _task(limits):
    return {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "k:9092"},
            "objects": [{"match": "a.b"}], "limits": limits}


def test_config():
    t = parse_task(_task({"full": {"rps": 2000, "bps": "10MB"}, "incremental": {"bps": 4096}}))
    assert (t.limits.full.rps, t.limits.full.bps) == (2000, 10_000_000)
    assert (t.limits.incremental.rps, t.limits.incremental.bps) == (None, 4096)
    default = parse_task({k: v for k, v in _task({}).items() if k != "limits"})
    assert default.limits.full.rps is None and default.limits.incremental.bps is None
    for bad, field in (({"full": {"rps": 0}}, "limits.full.rps"), ({"full": {"bps": "-1MB"}}, "limits.full.bps"),
                       ({"incremental": {"bps": "lots"}}, "limits.incremental.bps"),
                       ({"full": {"rows": 5}}, "limits.full.rows")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            parse_task(_task(bad))


def test_what_is_counted():
    from obsync.core.changes import Change, Op, StreamDone
    from obsync.core.positions import LogPosition

    pos = LogPosition("binlog.000001", 4, 0)
    ins = Change(Op.INSERT, None, pos, None, {"id": 7, "name": "héllo", "blob": b"\x00\x01", "d": date(2020, 1, 1),
                                              "p": Decimal("1.5"), "n": None})
    assert item_bytes(ins) == 8 + 6 + 2 + 8 + 8 + 0 and item_rows(ins) == 1
    upd = Change(Op.UPDATE, None, pos, {"id": 1, "s": "ab"}, {"id": 1, "s": "abc"})
    assert item_bytes(upd) == (8 + 2) + (8 + 3) and item_rows(upd) == 1
    ddl = Change(Op.DDL, None, pos, ddl="ALTER TABLE t ADD c INT")
    assert item_bytes(ddl) == len("ALTER TABLE t ADD c INT") and item_rows(ddl) == 1
    done = StreamDone("snap:x")
    assert item_rows(done) == 0 and item_bytes(done) == 0


# ---- the snapshot partition with a limiter -------------------------------------------------------------

class FakeChunkReader:
    """A ChunkReader of `total` rows in batches of `batch`."""

    def __init__(self, total: int, batch: int) -> None:
        self.chunk_id, self.total, self.batch = "db.t/0", total, batch
        self.rows_read = 0
        self.done = False
        self.ddl_in_last_batch = 0  # no CREATE TABLE change among its batches

    def resume_state(self):
        return {"chunk": self.chunk_id, "rows": self.rows_read, "done": self.done}

    def next_batch(self):
        if self.done:
            return None
        n = min(self.batch, self.total - self.rows_read)
        from obsync.core.changes import Change, Op
        from obsync.core.positions import SnapshotPosition

        out = [Change(Op.READ, None, SnapshotPosition(self.chunk_id, (i,)), None, {"id": i})
               for i in range(self.rows_read, self.rows_read + n)]
        self.rows_read += n
        if n < self.batch:
            self.done = True
        return out or None

    def close(self):
        pass


def test_snapshot_partition_holds_and_paces_a_batch():
    from datetime import datetime

    from obsync.connectors.mysql.snapshot.source import _Slot, _SnapshotPartition
    from obsync.core.changes import StreamDone

    clock = Clock()
    lim = RateLimiter(rps=100, clock=clock)  # bucket 50 rows, slices of at least 25
    reader = FakeChunkReader(total=130, batch=120)
    part = _SnapshotPartition(reader, _Slot(object(), 1), Pacer(lim))
    got, states = [], []
    for _ in range(200):
        try:
            items = part.next_batch()
        except StopIteration:
            break
        states.append(part.snapshot())
        if items:
            got += items[0]
        else:
            awake = part.next_awake()
            assert awake is not None
            clock.t += max(0.0, (awake - datetime.now(UTC)).total_seconds()) + 0.001  # woken a bit late
    ids = [c.after["id"] for c in got if not isinstance(c, StreamDone)]
    assert ids == list(range(130)) and isinstance(got[-1], StreamDone)
    assert clock.t - 1000 >= (130 - 50) / 100 - 0.05  # paced: the first 50 from the burst, then 100/s
    # while part of the first 120 rows was held, the state stayed at the chunk's start
    assert states[0] == {"chunk": "db.t/0", "rows": 0, "done": False}
    assert {"chunk": "db.t/0", "rows": 120, "done": False} in states


def test_high_rate_does_not_stall_on_float_rounding():
    # waits of a few ns would not move a float clock near 1000 s: a minimum wait keeps the run going
    clock = Clock()
    lim = RateLimiter(rps=20_000, bps=3e6, clock=clock)
    events, emitted = simulate(lim, clock, partitions=2, batch=lim.fetch_rows(2000), seconds=30, late=0.0,
                               row_size=lambda rnd: rnd.randint(50, 250))
    assert max_window([(t, n) for t, n, _ in events]) <= 20_000 * (WINDOW + BURST_SECONDS)
    assert max_window([(t, b) for t, _, b in events]) <= 3e6 * (WINDOW + BURST_SECONDS)
    assert sum(b for _, _, b in events) >= 3e6 * 30 * 0.97

"""Progress of a running task: what the sources read, what the sink wrote, lag and positions.

Three parts, all fed once per batch (never per row):

- `SourceStats` (one per `Progress`, so one per process): the sources' `SourceListener`
  (`obsync.core.listeners`), wired by the flow. The snapshot source registers its plan
  (`snapshot_planned`: estimated rows and chunks per table) and each chunk's rows read (`chunk_read`, rows
  before a resume included); the log source reports each poll (`log_polled`: row changes per table, the
  reader, whose position, queue and last event time are read when needed). It also holds the phase (full,
  incremental).
- `Progress` (one per sink; its `SinkListener`): the Kafka sink calls `wrote()` per batch it hands to the
  producer, `skipped()` for the replays it drops, and, when it reports acknowledgements (`use_acks()`),
  `acked()` per message Kafka acknowledged. It computes the lag (`lag_seconds`) and feeds the Prometheus
  metrics (`obsync.runtime.metrics`).
- The display (`Progress.start()`): on a terminal, a bar per table during full sync (rows done / estimated,
  rate, ETA), redrawn twice a second; otherwise a log line every `interval` seconds. In incremental sync,
  a line with lag, throughput and positions every `interval` seconds. `render_bar`, `format_count`,
  `format_duration` and `RateMeter` are the pure parts.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, TextIO

from obsync.runtime import metrics
from obsync.core.changes import Change, Op
from obsync.core.listeners import ChunkProgress, LogReaderView, PlannedSnapshot, WrittenRecord
from obsync.core.positions import LogPosition, binlog_file_number
from obsync.task.state import write_json_atomic

log = logging.getLogger("obsync.runtime.progress")

_INSERT, _UPDATE, _DELETE = Op.INSERT, Op.UPDATE, Op.DELETE
_SETTLE = 1.0  # s after the log source last handed out changes before an empty poll means "caught up"
_STATUS_EVERY = 2.0  # seconds between status.json writes
_REDRAW = 0.5  # s between redraws of the terminal bars


# -- pure helpers ------------------------------------------------------------------------------------------

def format_count(n: float) -> str:
    """12,345 below 100,000; then 123.4k, 12.35M, 1.235G."""
    n = float(n)
    if abs(n) < 100_000:
        return f"{n:,.0f}"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.4g}{unit}"
    return f"{n:,.0f}"  # pragma: no cover


def format_duration(seconds: float | None) -> str:
    """`45s`, `3m05s`, `2h03m`, `4d05h`; `?` when unknown."""
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def format_bytes(n: float) -> str:
    for div, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def eta_seconds(done: int, total: int, rate: float | None) -> float | None:
    """Seconds until `done` reaches `total` at `rate` per second (None if unknown, 0 when there)."""
    if done >= total:
        return 0.0
    if not rate or rate <= 0:
        return None
    return (total - done) / rate


def render_bar(label: str, done: int, total: int, rate: float | None = None, *, finished: bool = False,
               width: int = 24, label_width: int = 0, unit: str = "rows") -> str:
    """One progress line: `label [#####-----]  45.0%  12,345/27,000 rows  4,100 rows/s  ETA 4s`.

    `total` is an estimate: `done` may pass it (the bar stays full, the percentage at 100% until
    `finished`, then 100%); `finished` shows `done` instead of an ETA.
    """
    if finished:
        frac = 1.0
    elif total > 0:
        frac = min(done / total, 1.0)
        if frac >= 1.0:
            frac = 0.999  # the estimate was low: not done until the chunks say so
    else:
        frac = 0.0
    filled = int(frac * width)
    bar = "#" * filled + "-" * (width - filled)
    known = total > 0 or finished
    parts = [f"{label:<{label_width}} [{bar}] " + (f"{frac * 100:5.1f}%" if known else "    ?%"),
             (f"{format_count(done)}/{format_count(max(total, done) if finished else total)} {unit}" if known
              else f"{format_count(done)} {unit}")]
    if finished:
        parts.append("done")
    elif done == 0 and not rate:
        parts.append("waiting")
    else:
        if rate is not None:
            parts.append(f"{format_count(rate)} {unit}/s")
        parts.append(f"ETA {format_duration(eta_seconds(done, total, rate)) if known else '?'}")
    return "  ".join(parts)


class RateMeter:
    """Rate of a growing total over the last `window` seconds (samples added by the caller)."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, t: float, value: float) -> None:
        s = self._samples
        s.append((t, value))
        # keep one sample at or before the window's start, so the rate covers the whole window
        while len(s) > 2 and s[1][0] <= t - self.window:
            s.popleft()

    def rate(self) -> float | None:
        s = self._samples
        if len(s) < 2:
            return None
        (t0, v0), (t1, v1) = s[0], s[-1]
        return None if t1 <= t0 else (v1 - v0) / (t1 - t0)


# -- what the sources report ---------------------------------------------------------------------------------

@dataclass
class TableProgress:
    """Full sync of one table: rows read (before a resume included) of an estimate, chunks done of total."""

    table: str
    done: int
    estimated: int
    chunks_done: int
    chunks_total: int

    @property
    def finished(self) -> bool:
        return self.chunks_total > 0 and self.chunks_done >= self.chunks_total


class SourceStats:
    """What the sources of this process read (their `SourceListener`); see the module docstring. Thread-safe."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self.tables: list[str] = []  # plan order
        self.chunk_table: dict[str, str] = {}
        self.estimated: dict[str, int] = {}
        self.chunks_total: dict[str, int] = {}
        self.chunk_rows: dict[str, int] = {}
        self.chunk_done: set[str] = set()
        self.table_rows: dict[str, int] = {}
        self.table_chunks_done: dict[str, int] = {}
        self.snapshot_rows = 0  # read by this run
        self.phase = "starting"
        self.full_sync_started: float | None = None  # monotonic
        self.full_sync_seconds: float | None = None
        self.log_reader: LogReaderView | None = None
        self.log_rows = 0
        self.log_polled_at: float | None = None  # monotonic, last poll of the log source
        self.log_handout_at: float | None = None  # monotonic, last poll that handed out changes
        self.log_first_poll: float | None = None
        self.log_idle = False  # the last poll handed out nothing
        self.log_read_at: tuple[str, int] | None = None  # the reader's position (file, offset)
        self._reconnects = 0
        self.waits: dict[str, tuple[str, float, float, str]] = {}  # reader -> (source, since, epoch, error)

    # -- snapshot --------------------------------------------------------------------------------------------

    def snapshot_planned(self, plan: PlannedSnapshot) -> None:
        """The snapshot source of `plan` (a SnapshotPlan) was built: its tables' estimates and chunks."""
        with self._lock:
            for tp in plan.tables:
                name = tp.full_name
                if name not in self.estimated:
                    self.tables.append(name)
                self.estimated[name] = int(tp.estimated_rows)
                self.chunks_total[name] = len(tp.chunk_ids)
                self.table_rows.setdefault(name, 0)
                self.table_chunks_done.setdefault(name, 0)
                for cid in tp.chunk_ids:
                    self.chunk_table[cid] = name
            if self.phase == "starting" and plan.chunks:
                self._set_phase("full")
        for name in [tp.full_name for tp in plan.tables]:
            metrics.full_sync_table(name, self.table_rows[name], self.estimated[name],
                                    self.table_chunks_done[name], self.chunks_total[name])

    def chunk_read(self, reader: ChunkProgress, n: int) -> None:
        """A snapshot partition handed out `n` rows of its chunk (0: it was built, or it finished).

        `reader` is its ChunkReader: `chunk_id`, `rows_read` (rows before a resume included) and `done`."""
        cid = reader.chunk_id
        rows = reader.rows_read
        done = reader.done
        with self._lock:
            table = self.chunk_table.get(cid)
            if table is None:  # a chunk of a plan nobody registered: the table is in its id
                table = self.chunk_table[cid] = cid.rpartition("/")[0]
            prev = self.chunk_rows.get(cid, 0)
            self.chunk_rows[cid] = rows
            total = self.table_rows[table] = self.table_rows.get(table, 0) + rows - prev
            chunks_done = self.table_chunks_done.get(table, 0)
            if done and cid not in self.chunk_done:
                self.chunk_done.add(cid)
                chunks_done = self.table_chunks_done[table] = chunks_done + 1
            if n:
                self.snapshot_rows += n
                if self.full_sync_started is None:
                    self.full_sync_started = time.monotonic()
        metrics.full_sync_rows(table, total, chunks_done)
        if n:
            metrics.rows_read(table, "snapshot", n)

    def full_sync(self) -> list[TableProgress]:
        with self._lock:
            return [TableProgress(t, self.table_rows.get(t, 0), self.estimated.get(t, 0),
                                  self.table_chunks_done.get(t, 0), self.chunks_total.get(t, 0))
                    for t in self.tables]

    # -- log -------------------------------------------------------------------------------------------------

    def log_polled(self, reader: LogReaderView, changes: Sequence[Change]) -> None:
        """The log source polled its `reader` (a BinlogReader; once its gate is open) and got `changes`."""
        now = time.monotonic()
        self.log_polled_at = now
        if self.log_reader is not reader:
            self._attach(reader, now)
        state = reader.resume_state()
        if state is not None:
            self._advance(state.get("file"), state.get("pos"))
        reconnects = reader.reconnects
        if reconnects != self._reconnects:
            if reconnects > self._reconnects:
                metrics.error("source_reconnect", reconnects - self._reconnects)
            self._reconnects = reconnects
        if not changes:
            self.log_idle = True
            return
        self.log_idle = False
        self.log_handout_at = now
        counts: dict[str, int] = {}
        prev = None
        n = 0
        for c in changes:
            t = c.table
            if t is not prev:
                if n:
                    name = prev.full_name  # type: ignore[union-attr]
                    counts[name] = counts.get(name, 0) + n
                prev, n = t, 0
            o = c.op
            if t is not None and (o is _INSERT or o is _UPDATE or o is _DELETE):
                n += 1
        if n:
            name = prev.full_name  # type: ignore[union-attr]
            counts[name] = counts.get(name, 0) + n
        for name, k in counts.items():
            self.log_rows += k
            metrics.rows_read(name, "log", k)

    def _attach(self, reader: LogReaderView, now: float) -> None:
        self.log_reader = reader
        self.log_first_poll = now
        self._reconnects = reader.reconnects
        self.set_phase("incremental")
        metrics.set_read_position_function(self.read_position)

    def _advance(self, file: str | None, pos: int | None) -> None:
        if file is None or pos is None:
            return
        prev = self.log_read_at
        if prev is not None and prev != (file, pos):
            if prev[0] == file:
                metrics.log_bytes_read(pos - prev[1])
            else:
                metrics.log_bytes_read(pos)  # a new file: what was read of it (the old file's tail is not known)
        self.log_read_at = (file, pos)

    def read_position(self) -> tuple[int, int] | None:
        """(file number, offset) the log source has handed out up to (None before it started)."""
        at = self.log_read_at
        if at is None:
            return None
        return _file_number(at[0]), at[1]

    def log_caught_up(self, now: float) -> bool:
        """The log source handed out everything its reader read (its last poll was empty) some time ago."""
        return (self.log_idle and (self.log_handout_at is None or now - self.log_handout_at >= _SETTLE)
                and self._queued() == 0)

    def log_stall(self, now: float) -> float:
        """Seconds the log pipeline has been stalled, beyond what is normal: the binlog stream sent no event
        nor heartbeat for longer than two heartbeat intervals, or batches wait while the source is not
        polled (the worker is blocked). 0 when flowing."""
        r = self.log_reader
        if r is None:
            return 0.0
        stall = 0.0
        allowed = 2 * max(float(getattr(r, "heartbeat", 1.0) or 1.0), 0.5)
        last_event = getattr(r, "last_event_time", None)
        if last_event is not None:
            stall = max(stall, now - last_event - allowed)
        elif self.log_first_poll is not None:  # never heard from the stream: allow time to connect
            stall = max(stall, now - self.log_first_poll - allowed - 10.0)
        if self.log_polled_at is not None and self._queued() > 0:
            stall = max(stall, now - self.log_polled_at - 1.0)
        return stall

    def _queued(self) -> int:
        """Batches the log reader has read ahead and not handed out yet."""
        r = self.log_reader
        try:
            return int(r.status().get("queued_batches") or 0) if r is not None else 0
        except Exception:  # pragma: no cover - monitoring never fails the task
            return 0

    # -- waiting for the source ------------------------------------------------------------------------------

    def source_waiting(self, reader: str, source: str, error: str | None) -> None:
        """`reader` waits for `source` to answer after `error` (None: no longer)."""
        with self._lock:
            if error is None:
                self.waits.pop(reader, None)
            else:
                _, since, epoch, _ = self.waits.get(reader, (source, time.monotonic(), time.time(), error))
                self.waits[reader] = (source, since, epoch, error)
        metrics.set_source_waiting_function(self.waiting_seconds)

    def waiting_seconds(self) -> float:
        """How long the longest wait for the source has lasted so far (0: nobody waits)."""
        with self._lock:
            since = min((w[1] for w in self.waits.values()), default=None)
        return 0.0 if since is None else time.monotonic() - since

    def waiting(self) -> dict[str, Any] | None:
        """The longest wait for the source, for status.json (None: nobody waits)."""
        with self._lock:
            if not self.waits:
                return None
            source, since, epoch, error = min(self.waits.values(), key=lambda w: w[1])
            readers = len(self.waits)
        return {"for": f"the source {source}", "since": epoch, "seconds": round(time.monotonic() - since, 1),
                "error": error, "readers": readers}

    # -- phase -----------------------------------------------------------------------------------------------

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self._set_phase(phase)

    def _set_phase(self, phase: str) -> None:
        if phase == self.phase:
            return
        if self.phase == "full" and self.full_sync_started is not None:
            self.full_sync_seconds = time.monotonic() - self.full_sync_started
        self.phase = phase
        metrics.set_phase(phase)



def _file_number(file: str, _cache: dict[str, int] = {}) -> int:  # noqa: B006 - a deliberate cache
    n = _cache.get(file)
    if n is None:
        if len(_cache) > 1000:
            _cache.clear()
        n = _cache[file] = binlog_file_number(file)
    return n


# -- the sink's side -----------------------------------------------------------------------------------------

class Progress:
    """Counters of the sink parts of one process; see the module docstring.

    `task` labels the metrics (`metrics.configure`, when given); `topic_of` maps (db, table) to topic (the
    runtime's `layout.topic_of`, read again when a topic is not known yet) to label messages with their
    table; `stats` is the sources' `SourceStats` (a new one by default).
    """

    def __init__(self, interval: float = 10.0, *, task: str | None = None,
                 topic_of: dict[tuple[str, str], str] | None = None, stats: SourceStats | None = None,
                 stream: TextIO | None = None, status_path: Any = None) -> None:
        if task is not None:
            metrics.configure(task)
        self.interval = interval
        self.stats = stats or SourceStats()
        self.stream = stream
        self.rows = 0  # messages handed to the producer
        self.bytes = 0
        self.dropped = 0
        self.last_position: Any = None
        self.last_commit_time: float | None = None
        self._topic_of = topic_of
        self._table_of_topic: dict[str, str] = {}
        self._lock = threading.Lock()
        self._fold_lock = threading.Lock()
        self._started = self._last_report = time.monotonic()
        self._rows_at_report = 0
        self._bytes_at_report = 0
        # acknowledgements (when the sink reports them)
        self._use_acks = False
        self._produced = 0  # messages handed to the producer, all topics
        self._acked_total = 0
        self._pending: collections.deque[tuple[int, float]] = collections.deque(maxlen=100_000)
        self._counts: dict[str, list[int]] = {}  # topic -> [messages, bytes] written (acked in ack mode)
        self._folded: dict[str, list[int]] = {}  # what of `_counts` is in the metrics already
        self._latency: float | None = None  # commit -> ack (or -> write) of the last log batch
        self._written_log: tuple[int, int, int] | None = None  # newest log position written
        self.written_log_position: LogPosition | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._bars: TerminalBars | None = None
        self._meters: dict[str, RateMeter] = {}
        self._full_done_logged = False
        self.status_path = status_path  # where `status()` is written every couple of seconds (`obsync status`)
        self._status_at = 0.0
        metrics.set_lag_function(self.lag_seconds)
        metrics.set_collect_hook("progress", self.fold)

    # -- called by the sink (per batch) -----------------------------------------------------------------------

    def use_acks(self) -> None:
        """The sink will call `acked()` for every message Kafka acknowledges: count those, not the writes."""
        self._use_acks = True

    def wrote(self, last: WrittenRecord, count: int, size: int) -> None:
        """`count` messages of `size` bytes handed to the producer, `last` (an OutRecord) the last of them."""
        now = time.time()
        pos = last.position
        ct = last.commit_time
        with self._lock:
            self.rows += count
            self.bytes += size
            self._produced += count
            self.last_position = pos
            if ct is not None:
                self.last_commit_time = ct
                if pos.__class__ is LogPosition:
                    if self._use_acks:
                        self._pending.append((self._produced, ct))
                    else:
                        self._latency = now - ct
            if not self._use_acks:
                c = self._counts.get(last.topic)
                if c is None:
                    c = self._counts[last.topic] = [0, 0]
                c[0] += count
                c[1] += size
        if ct is not None and not self._use_acks and pos.__class__ is LogPosition:
            metrics.commit_to_ack(now - ct)
        if pos.__class__ is LogPosition:
            key = (_file_number(pos.file), pos.pos, pos.row)
            if self._written_log is None or key > self._written_log:  # the newest, whatever the lane
                self._written_log, self.written_log_position = key, pos
                metrics.set_log_position("written", key[0], key[1])
        metrics.set_last_write(now)
        if self._ticker is None:
            self.fold()
            self.maybe_report()

    def acked(self, topic: str, size: int, count: int = 1) -> None:
        """Kafka acknowledged `count` messages of `topic` (`size` value bytes): the sink's delivery report."""
        with self._lock:
            c = self._counts.get(topic)
            if c is None:
                c = self._counts[topic] = [0, 0]
            c[0] += count
            c[1] += size
            self._use_acks = True
            self._acked_total += count
            p = self._pending
            if p and self._acked_total >= p[0][0]:
                now = time.time()
                while p and self._acked_total >= p[0][0]:
                    _, ct = p.popleft()
                    self._latency = now - ct
                    metrics.commit_to_ack(self._latency)

    def skipped(self, n: int) -> None:
        self.dropped += n
        metrics.skipped(n)

    # -- derived -------------------------------------------------------------------------------------------

    def lag_seconds(self) -> float | None:
        """Incremental sync delay: the commit-to-acknowledgement time of the last log change (0 once the log
        source has been caught up for a second), at least the age of the oldest change Kafka has not
        acknowledged yet, at least how long the log pipeline has been stalled. None before incremental sync
        started."""
        s = self.stats
        if s.log_reader is None and self._latency is None and not self._pending:
            return None
        mono = time.monotonic()
        lag = 0.0
        if self._latency is not None and not s.log_caught_up(mono):
            lag = self._latency
        with self._lock:
            if self._pending:
                lag = max(lag, time.time() - self._pending[0][1])
        lag = max(lag, s.log_stall(mono))
        return max(0.0, lag)

    def table_of_topic(self, topic: str) -> str:
        """The table of a topic ("" when several tables, or none known, share it)."""
        t = self._table_of_topic.get(topic)
        if t is None:
            tables = sorted(f"{d}.{n}" for (d, n), tp in list((self._topic_of or {}).items()) if tp == topic)
            t = tables[0] if len(tables) == 1 else ""
            if tables or len(self._table_of_topic) < 10_000:
                self._table_of_topic[topic] = t
        return t

    def fold(self) -> None:
        """Move the message counts kept in plain integers into the metrics (before a scrape, each tick)."""
        with self._fold_lock:  # a scrape and the display thread may fold at once
            with self._lock:
                changes = [(t, c[0], c[1]) for t, c in self._counts.items()]
            for topic, n, size in changes:
                f = self._folded.get(topic)
                if f is None:
                    f = self._folded[topic] = [0, 0]
                dn, ds = n - f[0], size - f[1]
                if dn or ds:
                    f[0], f[1] = n, size
                    metrics.written(topic, self.table_of_topic(topic), dn, ds)

    def written_by_topic(self) -> dict[str, tuple[int, int]]:
        """topic -> (messages, bytes) written (acknowledged, when the sink reports acknowledgements)."""
        with self._lock:
            return {t: (c[0], c[1]) for t, c in self._counts.items()}

    # -- reporting -----------------------------------------------------------------------------------------

    def maybe_report(self, force: bool = False) -> None:
        """Log the progress line of the phase, at most every `interval` s (always with `force`)."""
        now = time.monotonic()
        if not force and now - self._last_report < self.interval:
            return
        with self._lock:
            dt = max(now - self._last_report, 1e-9)
            rate = (self.rows - self._rows_at_report) / dt
            byte_rate = (self.bytes - self._bytes_at_report) / dt
            self._last_report, self._rows_at_report, self._bytes_at_report = now, self.rows, self.bytes
        if self.stats.phase == "full":
            log.info("%s", self.full_sync_line())
        else:
            log.info("%s", self.incremental_line(rate, byte_rate))

    def incremental_line(self, rate: float, byte_rate: float) -> str:
        lag = self.lag_seconds()
        read = self.stats.log_read_at
        return (f"{'incremental sync' if self.stats.phase == 'incremental' else 'sync'}: "
                f"lag {'-' if lag is None else format_duration(lag) if lag >= 60 else f'{lag:.1f}s'}, "
                f"{format_count(rate)} msg/s ({format_bytes(byte_rate)}/s); wrote {self.rows:,} messages "
                f"({format_bytes(self.bytes)}), dropped {self.dropped:,} replayed; "
                f"read {'-' if read is None else f'{read[0]}:{read[1]}'}, "
                f"written {self.written_log_position or self.last_position or '-'}")

    def full_sync_line(self) -> str:
        tables = self.stats.full_sync()
        done = sum(t.done for t in tables)
        est = sum(max(t.estimated, t.done) if t.finished else t.estimated for t in tables)
        finished = sum(1 for t in tables if t.finished)
        rate = self._meter("*").rate() if self._ticker is not None else None
        if rate is None:
            elapsed = time.monotonic() - (self.stats.full_sync_started or self._started)
            rate = self.stats.snapshot_rows / elapsed if elapsed > 0 else None
        pct = 100.0 * min(done / est, 1.0) if est else 0.0
        active = [t for t in tables if not t.finished and t.done > 0]
        shown = ", ".join(f"{t.table} {format_count(t.done)}/{format_count(t.estimated)}" for t in active[:5])
        more = f" (+{len(active) - 5} more)" if len(active) > 5 else ""
        return (f"full sync: {format_count(done)}/{format_count(est)} rows ({pct:.0f}%), "
                f"{format_count(rate or 0)} rows/s, ETA {format_duration(eta_seconds(done, est, rate))}; "
                f"{finished}/{len(tables)} tables done" + (f"; reading {shown}{more}" if shown else ""))

    def bar_lines(self, columns: int = 100, max_tables: int = 12) -> list[str]:
        """The terminal block: one bar per table being read (or waiting, or done), then the total."""
        tables = self.stats.full_sync()
        if not tables:
            return []
        label_width = min(max(len(t.table) for t in tables), max(10, columns // 3))
        lines = []
        order = ([t for t in tables if not t.finished and t.done > 0] + [t for t in tables if t.done == 0
                 and not t.finished] + [t for t in tables if t.finished])
        width = max(8, min(30, columns - label_width - 56))
        for t in order[:max_tables]:
            label = t.table if len(t.table) <= label_width else "~" + t.table[-(label_width - 1):]
            rate = None if t.finished or t.done == 0 else self._meter(t.table).rate()
            lines.append(render_bar(label, t.done, t.estimated, rate, finished=t.finished, width=width,
                                    label_width=label_width))
        if len(order) > max_tables:
            rest = order[max_tables:]
            lines.append(f"... {len(rest)} more tables ({sum(1 for t in rest if t.finished)} done)")
        if len(tables) > 1:
            done = sum(t.done for t in tables)
            est = sum(max(t.estimated, t.done) if t.finished else t.estimated for t in tables)
            lines.append(render_bar("total", done, est, self._meter("*").rate(), width=width,
                                    finished=all(t.finished for t in tables), label_width=label_width))
        return [line[: max(columns - 1, 20)] for line in lines]

    def _meter(self, key: str) -> RateMeter:
        m = self._meters.get(key)
        if m is None:
            m = self._meters[key] = RateMeter(10.0)
        return m

    # -- the display thread ----------------------------------------------------------------------------------

    def start(self, display: bool | None = None) -> None:
        """Start the display: bars on a terminal (`display` None: if stderr is one), else log lines."""
        if self._ticker is not None:
            return
        stream = self.stream or sys.stderr
        if display is None:
            display = _isatty(stream)
        if display:
            self._bars = TerminalBars(stream)
            self._bars.attach_logging()
        self._stop.clear()
        self._ticker = threading.Thread(target=self._run, name="obsync-progress", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """Stop the display (the bars stay on screen as last drawn); fold the last counts in."""
        t, self._ticker = self._ticker, None
        if t is not None:
            self._stop.set()
            t.join(5)
            self._full_sync_done(self.stats.full_sync())
        if self._bars is not None:
            self._bars.detach_logging()
            self._bars = None
        self.fold()

    def _run(self) -> None:
        while not self._stop.wait(_REDRAW):
            try:
                self.tick()
            except Exception:  # the display must never stop the task
                log.debug("progress display failed", exc_info=True)

    def tick(self, now: float | None = None) -> None:
        """Sample rates, redraw the bars, log the periodic line (the display thread, every 0.5 s)."""
        now = time.monotonic() if now is None else now
        self.fold()
        self._meter("rows").add(now, self.rows)
        self._meter("bytes").add(now, self.bytes)
        if self.status_path is not None and now - self._status_at >= _STATUS_EVERY:
            self._status_at = now
            self.write_status()
        phase = self.stats.phase
        tables = self.stats.full_sync()
        if tables:
            for t in tables:
                self._meter(t.table).add(now, t.done)
            self._meter("*").add(now, sum(t.done for t in tables))
        bars = self._bars
        if phase == "full" and bars is not None:
            cols = shutil.get_terminal_size((100, 24)).columns
            bars.draw(self.bar_lines(cols))
            if now - self._last_report >= self.interval:
                self._last_report = now  # the bars show it: no log line on a terminal
            return
        self._full_sync_done(tables)
        self.maybe_report()

    def status(self, **extra: Any) -> dict[str, Any]:
        """What `obsync status` shows of a running task: phase, position, lag, rates, full-sync progress."""
        read = self.stats.read_position()
        lag = self.lag_seconds()
        return {
            "phase": self.stats.phase,
            "updated": time.time(),
            "pid": os.getpid(),
            "messages_written": self.rows,
            "bytes_written": self.bytes,
            "messages_per_second": self._meter("rows").rate(),
            "bytes_per_second": self._meter("bytes").rate(),
            "lag_seconds": None if lag is None or lag != lag else round(lag, 3),
            "log_position_read": None if self.stats.log_read_at is None else
            {"file": self.stats.log_read_at[0], "pos": self.stats.log_read_at[1]},
            "log_position_written": None if self.written_log_position is None else
            {"file": self.written_log_position.file, "pos": self.written_log_position.pos},
            "read_position_number": None if read is None else list(read),
            "full_sync": [{"table": t.table, "rows_done": t.done, "rows_estimated": t.estimated,
                           "chunks_done": t.chunks_done, "chunks_total": t.chunks_total}
                          for t in self.stats.full_sync()],
            **({"waiting_for_source": waiting} if (waiting := self.stats.waiting()) else {}),
            **extra,
        }

    def write_status(self, **extra: Any) -> None:
        """Write `status()` to `status_path` (atomically; never fails the task)."""
        if self.status_path is None:
            return
        try:
            write_json_atomic(self.status_path, self.status(**extra))
        except OSError:
            log.debug("cannot write %s", self.status_path, exc_info=True)

    def _full_sync_done(self, tables: list[TableProgress]) -> None:
        """Once full sync is over: the bars stay as drawn last, and a line says so."""
        phase = self.stats.phase
        if self._full_done_logged or not tables or phase in ("full", "starting"):
            return
        self._full_done_logged = True
        bars = self._bars
        if bars is not None and bars.lines:
            bars.draw(self.bar_lines(shutil.get_terminal_size((100, 24)).columns))
            bars.release()
        if all(t.finished for t in tables):
            secs = self.stats.full_sync_seconds
            log.info("full sync done: %s rows of %d tables%s", f"{sum(t.done for t in tables):,}", len(tables),
                     "" if secs is None else f" in {format_duration(secs)}")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class TerminalBars:
    """A block of lines at the bottom of a terminal, redrawn in place; log lines print above it.

    `attach_logging()` wraps the `emit` of the root logger's handlers writing to the same stream: the
    block is erased, the record printed, the block drawn again, all under one lock.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines = 0  # lines of the block now on screen
        self._last: list[str] = []
        self.lock = threading.RLock()
        self._wrapped: list[logging.Handler] = []

    def draw(self, lines: Iterable[str]) -> None:
        lines = list(lines)
        with self.lock:
            self._write(self._erase() + "".join(line + "\n" for line in lines))
            self.lines = len(lines)
            self._last = lines

    def clear(self) -> None:
        with self.lock:
            if self.lines:
                self._write(self._erase())
                self.lines = 0

    def release(self) -> None:
        """Leave the block on screen as it is; later output goes below it."""
        with self.lock:
            self.lines = 0
            self._last = []

    def _erase(self) -> str:
        return f"\r\x1b[{self.lines}A\x1b[J" if self.lines else ""

    def _write(self, text: str) -> None:
        if text:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def attach_logging(self) -> None:
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is self.stream \
                    and "emit" not in vars(h):
                orig = h.emit

                def emit(record: logging.LogRecord, _orig: Any = orig) -> None:
                    with self.lock:
                        shown = self.lines
                        self.clear()
                        _orig(record)
                        if shown and self._last:
                            self.draw(self._last)

                h.emit = emit  # type: ignore[method-assign]
                self._wrapped.append(h)

    def detach_logging(self) -> None:
        for h in self._wrapped:
            vars(h).pop("emit", None)
        self._wrapped = []

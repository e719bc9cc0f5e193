"""Progress of a running task: what the sources read, what the sink wrote, lag and positions.

Three parts, all fed once per batch (never per row):

- `SourceStats` (`obsync.runtime.source_stats`; one per `Progress`, so one per process): the sources' `SourceListener`
  (`obsync.core.listeners`), wired by the flow. The snapshot source registers its plan
  (`snapshot_planned`: estimated rows and chunks per table) and each chunk's rows read (`chunk_read`, rows
  before a resume included); the log source reports each poll (`log_polled`: row changes per table, the
  reader, whose position, queue and last event time are read when needed). It also holds the phase (full,
  incremental).
- `Progress` (one per sink; its `SinkListener`): the Kafka sink calls `wrote()` per batch it hands to the
  producer, `skipped()` for the replays it drops, and, when it reports acknowledgements (`use_acks()`),
  `acked()` per message Kafka acknowledged, and `broker_waiting()` while Kafka acknowledges nothing. It
  computes the lag (`lag_seconds`) and feeds the Prometheus metrics (`obsync.runtime.metrics`).
- The display (`Progress.start()`, drawn with `obsync.runtime.display`): on a terminal, a bar per table
  during full sync (rows done / estimated, rate, ETA), redrawn twice a second; otherwise a log line every
  `interval` seconds. In incremental sync, a line with lag, throughput and positions every `interval` seconds.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import sys
import threading
import time
from typing import Any, TextIO

from obsync.core.listeners import WrittenRecord
from obsync.core.positions import LogPosition
from obsync.core.threads import NamedThread
from obsync.runtime import metrics
from obsync.runtime.display import (
    RateMeter,
    TerminalBars,
    eta_seconds,
    format_bytes,
    format_count,
    format_duration,
    isatty,
    render_bar,
)
from obsync.runtime.source_stats import SourceStats, TableProgress, file_number
from obsync.task.state import write_json_atomic

log = logging.getLogger("obsync.runtime.progress")

_STATUS_EVERY = 2.0  # seconds between status.json writes
_REDRAW = 0.5  # s between redraws of the terminal bars


# -- the sink's side -----------------------------------------------------------------------------------------

_thread = threading.local()


def worker_name(first: int = 0) -> str:
    """The Bytewax worker running the calling thread: its index in the run ("0", "1", ...: `first`, the index
    of this process's first worker, plus its index in the process, as timely names its threads
    `timely:work-<index>`), else the thread's Python name (read once per thread)."""
    name = getattr(_thread, "worker", None)
    if name is None:
        try:
            with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
                comm = f.read().strip()
        except OSError:
            comm = ""
        local = comm.removeprefix("timely:work-")
        name = _thread.worker = str(first + int(local)) if comm.startswith("timely:work-") and local.isdigit() \
            else threading.current_thread().name
    return name


def encoded_summary(counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    """status.json's `log_changes_encoded`: the total, and per worker and per lane."""
    workers: dict[str, int] = {}
    lanes: dict[str, int] = {}
    for (worker, lane), n in counts.items():
        workers[worker] = workers.get(worker, 0) + n
        lanes[lane] = lanes.get(lane, 0) + n
    return {"total": sum(counts.values()), "workers": dict(sorted(workers.items())),
            "lanes": dict(sorted(lanes.items()))}


class Progress:
    """Counters of the sink parts of one process; see the module docstring.

    `task` labels the metrics (`metrics.configure`, when given); `topic_of` maps (db, table) to topic (the
    runtime's `layout.topic_of`, read again when a topic is not known yet) to label messages with their
    table; `stats` is the sources' `SourceStats` (a new one by default).
    """

    def __init__(self, interval: float = 10.0, *, task: str | None = None,
                 topic_of: dict[tuple[str, str], str] | None = None, stats: SourceStats | None = None,
                 stream: TextIO | None = None, status_path: Any = None, first_worker: int = 0) -> None:
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
        self.restarts: tuple[int, str | None] = (0, None)  # (restarts of the task's process, why the last one)
        self._status_at = 0.0
        self._broker_wait: tuple[str, float, float, int, str | None, str | None] | None = None  # `broker_waiting`
        # (worker, lane) -> log row changes this process's workers encoded for the lane (`encoded`)
        self._encoded: dict[tuple[str, str], int] = {}
        self._workers: dict[threading.Thread, str] = {}  # a thread of this run -> its worker name, for `encoded`
        self.first_worker = first_worker  # the index of this process's first Bytewax worker in the run
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
            key = (file_number(pos.file), pos.pos, pos.row)
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

    def encoded(self, lane: str, n: int) -> None:
        """`n` log row changes encoded for `lane` by the calling worker, the one writing the lane (per lane
        batch; each lane in one worker thread, so each key of `_encoded` has one writer)."""
        thread = threading.current_thread()
        worker = self._workers.get(thread)
        if worker is None:  # once per thread of this run: from Bytewax's threads each call into Python gets a new
            # thread state, so `worker_name`'s threading.local is empty at every batch (it read /proc each time);
            # the thread object, not its ident, is the key: a new Python thread may reuse an ended one's ident
            worker = self._workers[thread] = worker_name(self.first_worker)
        key = (worker, lane)
        self._encoded[key] = self._encoded.get(key, 0) + n
        metrics.log_encoded(key[0], lane, n)

    def skipped(self, n: int) -> None:
        self.dropped += n
        metrics.skipped(n)

    def broker_waiting(self, brokers: str, pending: int, seconds: float, error: str | None,
                       reading: str | None = None) -> None:
        """Kafka (`brokers`) has acknowledged nothing for `seconds` while `pending` messages wait, or sent nothing
        of the partition `reading` (0 and None: over)."""
        now = time.monotonic()
        with self._lock:
            if pending <= 0 and reading is None:
                self._broker_wait = None
            else:  # (brokers, monotonic and epoch time the silence began, pending, error, partition read)
                self._broker_wait = (brokers, now - seconds, time.time() - seconds, pending, error, reading)
        metrics.set_broker_waiting_function(self.broker_waiting_seconds)

    def broker_waiting_seconds(self) -> float:
        """How long Kafka has been acknowledging nothing while messages wait, once noticed (0: it answers)."""
        w = self._broker_wait
        return 0.0 if w is None else time.monotonic() - w[1]

    def broker_wait(self) -> dict[str, Any] | None:
        """The wait for Kafka, for status.json (None: no wait)."""
        w = self._broker_wait
        if w is None:
            return None
        brokers, since, epoch, pending, error, reading = w
        return {"for": f"Kafka {brokers}", "since": epoch, "seconds": round(time.monotonic() - since, 1),
                "pending": pending, "error": error, **({"reading": reading} if reading is not None else {})}

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
            display = isatty(stream)
        if display:
            self._bars = TerminalBars(stream)
            self._bars.attach_logging()
        self._stop.clear()
        self._ticker = NamedThread(target=self._run, name="obsync-progress", daemon=True)
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
            except Exception:  # noqa: BLE001 - the display must never stop the task
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
            # log row changes encoded by the workers of this process, by sink lane (runs of several workers)
            **({"log_changes_encoded": encoded_summary(enc)} if (enc := dict(self._encoded)) else {}),
            **({"waiting_for_source": waiting} if (waiting := self.stats.waiting()) else {}),
            **({"waiting_for_broker": broker} if (broker := self.broker_wait()) else {}),
            **({"restarts": self.restarts[0], "last_restart_reason": self.restarts[1]} if self.restarts[0] else {}),
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

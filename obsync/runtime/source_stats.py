"""What the sources report: full-sync plan and rows read per chunk, the log's position, lag input and phase.

`SourceStats` is the sources' `SourceListener` (`obsync.core.listeners`), one per `Progress` (so one per
process), wired by the flow and fed once per batch (never per row). The snapshot source registers its plan
(`snapshot_planned`: estimated rows and chunks per table) and each chunk's rows read (`chunk_read`, rows before a
resume included); the log source reports each poll (`log_polled`: row changes per table, and the reader, whose
position, queue and last event time are read when needed). It also holds the phase (full, incremental).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from obsync.core.changes import Change, Op
from obsync.core.listeners import ChunkProgress, LogReaderView, PlannedSnapshot
from obsync.core.positions import binlog_file_number
from obsync.runtime import metrics

log = logging.getLogger("obsync.runtime.progress")

_INSERT, _UPDATE, _DELETE = Op.INSERT, Op.UPDATE, Op.DELETE
_SETTLE = 1.0  # s after the log source last handed out changes before an empty poll means "caught up"


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
                    name = prev.full_name  # type: ignore[union-attr]  # n > 0 only after rows of table prev
                    counts[name] = counts.get(name, 0) + n
                prev, n = t, 0
            o = c.op
            if t is not None and (o is _INSERT or o is _UPDATE or o is _DELETE):
                n += 1
        if n:
            name = prev.full_name  # type: ignore[union-attr]  # n > 0 only after rows of table prev
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
        return file_number(at[0]), at[1]

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
        except Exception:  # noqa: BLE001 - monitoring never fails the task  # pragma: no cover
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



def file_number(file: str, _cache: dict[str, int] = {}) -> int:  # noqa: B006 - a deliberate cache
    n = _cache.get(file)
    if n is None:
        if len(_cache) > 1000:
            _cache.clear()
        n = _cache[file] = binlog_file_number(file)
    return n

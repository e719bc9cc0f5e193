"""The binlog stream as a Bytewax source: one partition, "log", around a `BinlogReader`.

Delivery: at-least-once from the engine's point of view. The partition's state is the reader's `offset()`,
which points right after the last batch handed to the dataflow (the start of that change's transaction, plus
the position of the change, so a restart inside a transaction skips exactly what was emitted). After a crash
Bytewax rebuilds the partition from its last snapshot, so the batches emitted since that snapshot are read
and emitted again with the same positions; the Kafka sink drops every change at or before the last position
it wrote, which makes the topics exactly-once per change. Snapshots are the offset's plain-JSON `to_dict()`,
read back by `LogOffset.from_dict` (`obsync.core.offsets`), which refuses an older obsync's state clearly.

Each item is a batch (`list[Change]`, at most `batch_size` changes), never a single change. `next_batch`
never blocks: the reader's thread reads ahead into a bounded queue. With `stop_at`, the partition ends
(StopIteration) once every change up to that position was emitted (`obsync run --until-caught-up`).

Under a steady trickle of small transactions the reader hands out a batch per transaction or two, and every
batch costs the dataflow the same steps (Bytewax activations, routing, the sink's producer calls) whatever its
size. So after a batch smaller than `batch_size` the partition takes nothing from the reader for `coalesce`
seconds (5 ms by default) since it handed that batch out: what arrives meanwhile comes as one batch. A change
after an idle spell is handed out at once; a full batch (more is likely waiting) is followed at once by the
next. This only delays when batches are taken, never their order or the state.

`gate`: while it returns False the partition emits nothing and does not start reading (for example until
the full sync is delivered); it is asked at most every 0.5 s and no longer once it returned True. The start
position and the tracked tables' schemas at it are fixed when the partition is built, before the gate opens.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from obsync.connectors.mysql.binlog.heartbeat import HeartbeatClock, HeartbeatWriter
from obsync.connectors.mysql.binlog.reader import BinlogReader
from obsync.connectors.mysql.binlog.schema_history import HistoryStore
from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import retryable
from obsync.core.changes import Batch
from obsync.core.listeners import NOOP_SOURCE_LISTENER, SourceListener
from obsync.core.offsets import LogOffset
from obsync.core.pacing import BatchPacer, Pacing
from obsync.core.positions import LogPosition

log = logging.getLogger(__name__)

PARTITION = "log"
_RECOVERED = f"the resume state of the {PARTITION!r} partition (Bytewax recovery, the state directory's recovery/)"
_GATE_INTERVAL = 0.5
_IDLE_WAIT = timedelta(milliseconds=20)
COALESCE = 0.005  # s: after a batch smaller than batch_size, the next is taken no sooner (module docstring)

# The partition's state: the reader's `LogOffset.to_dict()`; None when no start was known yet (the source was
# unreachable when the partition was built and no start was given): a resume then starts as configured.
LogState = dict[str, Any] | None


class BinlogSource(FixedPartitionedSource[Batch, LogState]):
    """Incremental sync from the binlog; see the module docstring for the delivery guarantee."""

    def __init__(
        self,
        log_endpoint: Endpoint,
        *,
        server_id: int,
        tables: Iterable[tuple[str, str]],
        selector: Callable[[tuple[str, str]], bool] | None = None,
        history_dir: str | os.PathLike[str] | HistoryStore | None,
        start: LogPosition | LogOffset | None = None,
        stop_at: LogPosition | None = None,
        sql_endpoint: Endpoint | None = None,
        batch_size: int = 500,
        max_batches: int = 8,
        gate: Callable[[], bool] | None = None,
        heartbeat: float = 1.0,
        limiter: Pacing | None = None,
        live: Any | None = None,
        backfill_page: int = 2000,
        heartbeats: float = 0.0,
        heartbeat_writer: HeartbeatWriter | None = None,
        listener: SourceListener = NOOP_SOURCE_LISTENER,
        schema_changes: str = "evolve",
        coalesce: float = COALESCE,
    ) -> None:
        # `limiter` (limits.incremental): batches are handed out as it allows, and read in batches of at
        # most a fraction of a second of its rows (`Pacing.fetch_rows`) so the reader's bounded queue
        # holds little more than that ahead of it.
        self._limiter = limiter
        if limiter is not None:
            batch_size = limiter.fetch_rows(batch_size)
        self._kwargs: dict[str, Any] = dict(
            server_id=server_id, tables=tuple(tables), selector=selector, history_dir=history_dir, stop_at=stop_at,
            sql_endpoint=sql_endpoint, batch_size=batch_size, max_batches=max_batches, heartbeat=heartbeat, live=live,
            backfill_page=backfill_page, listener=listener, schema_changes=schema_changes)
        self._log_endpoint = log_endpoint
        self._start = start
        self._gate = gate
        self._heartbeats = heartbeats  # seconds between heartbeat messages (0: none), see `heartbeat`
        self._heartbeat_writer = heartbeat_writer
        self._listener = listener  # rows read, position, lag, waits for the source (`obsync.core.listeners`)
        self._coalesce = coalesce
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def build_part(self, step_id: str, for_part: str, resume_state: LogState) -> _BinlogPartition:
        if for_part != PARTITION:
            raise ValueError(f"BinlogSource has one partition {PARTITION!r}, not {for_part!r}")
        start = self._start if resume_state is None else LogOffset.from_dict(resume_state, _RECOVERED)
        reader = BinlogReader(self._log_endpoint, start=start, **self._kwargs)
        try:
            reader.prepare()  # fix the start position and the schemas at it now, before the gate opens
        except Exception as e:
            if not retryable(e):
                raise
            log.warning("%s; the binlog reader will retry when it starts", e)
        part = _BinlogPartition(reader, self._gate, None if self._limiter is None else self._limiter.pacer(),
                                self._listener, coalesce=self._coalesce, batch_size=self._batch_size)
        part.heartbeat = HeartbeatClock(self._heartbeats) if self._heartbeats > 0 else None
        part.writer = self._heartbeat_writer
        if part.writer is not None:
            part.writer.start()
        return part


class _BinlogPartition(StatefulSourcePartition[Batch, LogState]):
    def __init__(self, reader: BinlogReader, gate: Callable[[], bool] | None, pacer: BatchPacer | None = None,
                 listener: SourceListener = NOOP_SOURCE_LISTENER, coalesce: float = 0.0,
                 batch_size: int = 0) -> None:
        self._reader = reader
        self._listener = listener
        self._gate = gate
        # Rate limit: a polled batch is held by the pacer and handed out in slices as its limiter allows;
        # while part of it is held, the state is the reader's from before it (a resume reads it again and
        # the sink drops what it already wrote).
        self._pacer = pacer
        self._held_state: LogOffset | None = None
        self._open = gate is None
        self._next_gate_check = 0.0
        self._awake: datetime | None = None
        # coalescing (module docstring): a small batch was handed out at `_small_at` (monotonic s), so nothing
        # is taken from the reader before `_small_at + _coalesce`; `_holding_back` while that wait is on
        self._coalesce = coalesce
        self._batch_size = batch_size
        self._small_at = float("-inf")
        self._holding_back = False

    heartbeat: HeartbeatClock | None = None
    writer: HeartbeatWriter | None = None

    def next_batch(self) -> list[Batch]:
        batches = self._next_batches()
        if self.heartbeat is not None and self._open and not (self._pacer is not None and self._pacer.holding):
            beat = self.heartbeat.due(self._reader, busy=bool(batches) or self._holding_back)
            if beat is not None:
                batches.append([beat])
                if self._awake is None or self._awake > datetime.now(UTC) + _IDLE_WAIT:
                    self._awake = None
        return batches

    def _next_batches(self) -> list[Batch]:
        if not self._open:
            now = time.monotonic()
            if now >= self._next_gate_check:
                assert self._gate is not None
                self._open = bool(self._gate())
                self._next_gate_check = now + _GATE_INTERVAL
            if not self._open:
                self._awake = datetime.now(UTC) + timedelta(seconds=_GATE_INTERVAL)
                return []
        if self._pacer is not None:
            if self._pacer.holding:
                return self._paced()
            delay = self._pacer.read_delay()  # do not take more from the reader while in debt
            if delay > 0:
                self._awake = datetime.now(UTC) + timedelta(seconds=delay)
                return []
            self._held_state = self._reader.offset()
        elif self._coalesce > 0:
            now = time.monotonic()
            wait = self._small_at + self._coalesce - now
            self._holding_back = wait > 0
            if self._holding_back:
                self._awake = datetime.now(UTC) + timedelta(seconds=wait)
                return []
        changes = self._reader.poll(0.0)
        self._listener.log_polled(self._reader, changes)  # rows read, position, lag (per batch)
        if self._reader.finished:
            raise StopIteration
        if not changes:
            self._awake = datetime.now(UTC) + _IDLE_WAIT
            return []
        if self._pacer is not None:
            self._pacer.hold(changes)
            return self._paced()
        self._awake = None
        if self._coalesce > 0:
            self._small_at = time.monotonic() if len(changes) < self._batch_size else float("-inf")
        return [cast(Batch, changes)]  # handed over whole: nothing appends to it

    def _paced(self) -> list[Batch]:
        assert self._pacer is not None
        batches, self._awake = self._pacer.next_batches()
        return batches

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> LogState:
        # None only when the source was unreachable when the partition was built and no start was given:
        # the reader then starts from the position current when it first connects
        offset = self._held_state if self._pacer is not None and self._pacer.holding else self._reader.offset()
        return offset.to_dict() if offset is not None else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.stop()
        self._reader.close()

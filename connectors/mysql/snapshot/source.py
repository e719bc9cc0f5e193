"""The snapshot (full sync) as a Bytewax source: one partition per chunk of a `SnapshotPlan`.

Delivery: at-least-once from the source, exactly-once per row in the topic for tables with a key. A
partition's state is its `ChunkReader.resume_state()`, which points after the last batch handed to the
dataflow; after a crash Bytewax rebuilds each partition from its last snapshot, so the batches emitted since
that snapshot are read and emitted again with the same positions (on OceanBase the same rows, read at the
plan's SCN; on MySQL/MariaDB the rows as they are now, the log replaying what changed). The Kafka sink drops,
per chunk, rows at or before the last position it wrote. Tables without a key: on OceanBase the same, by row
ordinal; on MySQL/MariaDB a resumed chunk rescans the table under a new attempt number, after every attempt
written before even if no state was saved, so its rows already written are written again (at-least-once, at
positions of their own) and none is lost (see `reader`).

Each partition emits items that are batches (`list[Change]`, up to `batch_size` rows), never single rows;
after the chunk's last batch it emits `[StreamDone(stream)]` and stops. A partition rebuilt from a finished
state emits that `StreamDone` again and stops, so a sink that missed it sees it.

`delivered` (optional): asked once, when the first chunk is built; if it says the whole full sync is already in
Kafka, no chunk is read again: each emits its `StreamDone` and stops. This holds for chunks Bytewax resumes
half read too: a stop after the full sync reached Kafka but before the next epoch saved it resumes from an
older state, and by then the log has written the rows changed since. Read again, the last (open-ended) chunk
would hold rows inserted meanwhile, under snapshot positions the sink has not seen, and write them after the
log's changes of the same keys (tests/integration/test_resume_after_full_sync.py).

`parts` (optional): the chunks this process lists to Bytewax, which gives each chunk to one of the workers listing
it (every chunk must be listed by some process: `obsync.steps.chunk_placement`); default every chunk.

Chunks are read one at a time per worker by default (`chunks_per_worker`): the others wait without a
connection until a running chunk finishes, so a plan of thousands of chunks holds only as many connections as
there are workers.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.snapshot.plan import SnapshotPlan
from obsync.connectors.mysql.snapshot.reader import ChunkReader
from obsync.core.changes import Batch, StreamDone
from obsync.core.listeners import NOOP_SOURCE_LISTENER, SourceListener
from obsync.core.pacing import BatchPacer, Pacing
from obsync.core.positions import SnapshotPosition

_WAIT = timedelta(milliseconds=50)
_running: dict[tuple[int, int], int] = {}  # (source token, worker thread id) -> chunks being read
_running_lock = threading.Lock()
_tokens = itertools.count()


class SnapshotSource(FixedPartitionedSource[Batch, dict]):
    """Full sync of the chunks of `plan`; see the module docstring for the delivery guarantee.

    `plan` must be the same on every worker and across restarts (persist it: `SnapshotPlan.to_dict()`).
    """

    def __init__(self, endpoint: Endpoint, plan: SnapshotPlan, batch_size: int = 2_000,
                 chunks_per_worker: int = 1, filters: dict[str, str] | None = None,
                 limiter: Pacing | None = None, listener: SourceListener = NOOP_SOURCE_LISTENER,
                 delivered: Callable[[], bool] | None = None, stopping: Callable[[], bool] = lambda: False,
                 emit_ddl: bool = False, parts: list[str] | None = None):
        if chunks_per_worker < 1:
            raise ValueError("chunks_per_worker must be at least 1")
        self._endpoint = endpoint
        self._plan = plan
        self._listener = listener  # full-sync progress (`obsync.core.listeners`)
        self._stopping = stopping  # a stop was requested: a wait for a source that is away ends (`ChunkReader`)
        listener.snapshot_planned(plan)  # estimates per table
        self._filters = filters or {}  # db.table -> row filter SQL (see ChunkReader)
        # `limiter` (limits.full) is shared by every partition this source builds in the process; with it,
        # fetches are capped to a fraction of a second of its rows (`Pacing.fetch_rows`).
        self._limiter = limiter
        self._batch_size = batch_size if limiter is None else limiter.fetch_rows(batch_size)
        self._chunks_per_worker = chunks_per_worker
        self._token = next(_tokens)  # not id(self): ids are reused once an object is gone
        self._delivered = delivered
        self._emit_ddl = emit_ddl  # each table's CREATE TABLE before its rows (`ChunkReader`)
        self._already_delivered: bool | None = None  # `delivered()`, asked once
        if parts is not None and not set(parts) <= set(plan.chunk_ids):
            raise ValueError(f"chunks not in the snapshot plan: {sorted(set(parts) - set(plan.chunk_ids))}")
        self._parts = plan.chunk_ids if parts is None else parts

    @property
    def plan(self) -> SnapshotPlan:
        return self._plan

    def list_parts(self) -> list[str]:
        return self._parts

    def build_part(self, step_id: str, for_part: str,
                   resume_state: dict[str, Any] | None) -> StatefulSourcePartition[Batch, dict]:
        table = self._plan.chunk(for_part).table
        if self._delivered is not None:
            if self._already_delivered is None:
                self._already_delivered = bool(self._delivered())
            if self._already_delivered:
                return _DeliveredPartition(for_part)
        reader = ChunkReader(self._endpoint, self._plan, for_part, self._batch_size, resume_state,
                             row_filter=self._filters.get(table), listener=self._listener,
                             stopping=self._stopping, emit_ddl=self._emit_ddl)
        return _SnapshotPartition(reader, _Slot(self._token, self._chunks_per_worker),
                                  None if self._limiter is None else self._limiter.pacer(), self._listener)


class _DeliveredPartition(StatefulSourcePartition[Batch, dict]):
    """A chunk of a full sync already in Kafka: its `StreamDone`, nothing else."""

    def __init__(self, chunk_id: str) -> None:
        self._chunk_id = chunk_id
        self._stream = SnapshotPosition(chunk_id, ()).stream
        self._finished = False

    def next_batch(self) -> list[Batch]:
        if self._finished:
            raise StopIteration
        self._finished = True
        return [[StreamDone(stream=self._stream)]]

    def snapshot(self) -> dict[str, Any]:
        return {"chunk": self._chunk_id, "last": None, "rows": 0, "done": True, "attempt": 0}  # a finished reader's


class _Slot:
    """A place among the chunks one worker thread reads at once.

    Counted per (source, OS thread) in a plain dict: a Bytewax worker is a Rust thread whose Python thread
    state, and with it any `threading.local`, does not survive from one call to the next.
    """

    def __init__(self, source_token: int, limit: int):
        self._source, self._limit = source_token, limit
        self._key: tuple[int, int] | None = None  # (source, thread) while held

    @property
    def held(self) -> bool:
        return self._key is not None

    def acquire(self) -> bool:
        if self._key is None:
            key = (self._source, threading.get_ident())
            with _running_lock:
                if _running.get(key, 0) >= self._limit:
                    return False
                _running[key] = _running.get(key, 0) + 1
            self._key = key
        return True

    def release(self) -> None:
        if self._key is not None:
            with _running_lock:
                _running[self._key] -= 1
                if not _running[self._key]:
                    del _running[self._key]
            self._key = None


class _SnapshotPartition(StatefulSourcePartition[Batch, dict]):
    def __init__(self, reader: ChunkReader, slot: _Slot, pacer: BatchPacer | None = None,
                 listener: SourceListener = NOOP_SOURCE_LISTENER):
        self._reader = reader
        self._listener = listener
        self._slot = slot
        # Rate limit: a batch read is held by the pacer and handed out in slices as its limiter allows;
        # while part of it is held, the state is the reader's from before it (a resume reads it again and
        # the sink drops what it already wrote).
        self._pacer = pacer
        self._held_state: dict[str, Any] | None = None
        self._stream = SnapshotPosition(reader.chunk_id, ()).stream
        self._finished = False  # StreamDone emitted
        self._awake: datetime | None = None
        listener.chunk_read(reader, 0)  # rows read before a resume

    def next_batch(self) -> list[Batch]:
        if self._finished:
            raise StopIteration
        if self._pacer is not None and self._pacer.holding:
            return self._paced()
        if self._reader.done:
            return self._finish()
        if not self._slot.acquire():
            self._awake = datetime.now(UTC) + _WAIT
            return []
        self._awake = None
        if self._pacer is not None:
            delay = self._pacer.read_delay()  # no reading ahead while the limiter is in debt
            if delay > 0:
                self._awake = datetime.now(UTC) + timedelta(seconds=delay)
                return []
            self._held_state = self._reader.resume_state()
        batch = self._reader.next_batch()
        if batch is None:
            return self._finish()
        self._listener.chunk_read(self._reader, len(batch) - self._reader.ddl_in_last_batch)
        if self._pacer is not None:
            self._pacer.hold(batch)
            return self._paced()
        return [cast(Batch, batch)]  # the reader hands its list of changes over: read as a batch it stays sound

    def _paced(self) -> list[Batch]:
        assert self._pacer is not None
        batches, self._awake = self._pacer.next_batches()
        return batches

    def _finish(self) -> list[Batch]:
        self._finished = True
        self._reader.close()
        self._slot.release()
        self._listener.chunk_read(self._reader, 0)
        return [[StreamDone(stream=self._stream)]]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict[str, Any]:
        if self._pacer is not None and self._pacer.holding and self._held_state is not None:
            return self._held_state
        return self._reader.resume_state()

    def close(self) -> None:
        self._reader.close()
        self._slot.release()

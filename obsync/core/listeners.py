"""What the sources and the sink report while they run, as protocols with a no-op implementation.

    sources ─ SourceListener ─> (obsync.runtime.source_stats.SourceStats: progress display, metrics, status)
    sink    ─ SinkListener   ─> (obsync.runtime.progress.Progress: counts, lag, metrics, status)

The connectors take a listener as a constructor argument (default: the no-op, `NOOP_SOURCE_LISTENER`,
`NOOP_SINK_LISTENER`) and never reach into a process-global; the flow wires the runtime's progress in. Calls
are made once per batch (never per row) from the engine's worker threads, and the sink's `acked` from the
producer's delivery reports: an implementation must be thread-safe, cheap, and must not raise.

The arguments are views: what a listener may read of the object it is given (`PlannedSnapshot` of the snapshot
plan, `ChunkProgress` of a chunk reader, `LogReaderView` of the binlog reader, which a listener may keep and
read again later for lag and stall, `WrittenRecord` of an outgoing Kafka record).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from obsync.core.changes import Change
from obsync.core.positions import Position


class PlannedTable(Protocol):
    """One table of a snapshot plan."""

    @property
    def full_name(self) -> str: ...  # `db.table`

    @property
    def estimated_rows(self) -> int: ...

    @property
    def chunk_ids(self) -> Sequence[str]: ...


class PlannedSnapshot(Protocol):
    """A snapshot plan: its tables, in plan order, and its chunks."""

    @property
    def tables(self) -> Sequence[PlannedTable]: ...

    @property
    def chunks(self) -> Sequence[object]: ...


class ChunkProgress(Protocol):
    """A snapshot chunk being read: rows read so far (those before a resume included), and whether it is done."""

    @property
    def chunk_id(self) -> str: ...  # `db.table/NNNN`

    @property
    def rows_read(self) -> int: ...

    @property
    def done(self) -> bool: ...


class LogReaderView(Protocol):
    """The binlog reader, as far as monitoring reads it."""

    @property
    def reconnects(self) -> int: ...

    @property
    def heartbeat(self) -> float: ...  # seconds between the stream's heartbeats

    @property
    def last_event_time(self) -> float | None: ...  # monotonic time the stream last sent anything

    def resume_state(self) -> dict[str, Any] | None: ...  # "file" and "pos": where it has handed out up to

    def status(self) -> dict[str, Any]: ...  # "queued_batches": read ahead, not handed out yet


class WrittenRecord(Protocol):
    """A record the sink handed to the producer."""

    @property
    def topic(self) -> str: ...

    @property
    def position(self) -> Position: ...

    @property
    def commit_time(self) -> float | None: ...  # epoch seconds the source committed it (None: unknown)


class SourceListener(Protocol):
    """What the sources report (per batch)."""

    def snapshot_planned(self, plan: PlannedSnapshot) -> None:
        """A snapshot source of `plan` was built (its tables' estimates and chunks)."""

    def chunk_read(self, chunk: ChunkProgress, n: int) -> None:
        """A snapshot partition handed out `n` rows of its chunk (0: it was built, or it finished)."""

    def log_polled(self, reader: LogReaderView, changes: Sequence[Change]) -> None:
        """The log source polled its reader (once its gate is open) and got `changes`."""

    def source_waiting(self, reader: str, source: str, error: str | None) -> None:
        """`reader` (a snapshot chunk, or "log": the binlog stream) waits for `source` (`host:port`) to answer
        again after `error`; `error` None: it no longer waits (it got an answer, gave up, or stopped). Called from
        the binlog reader's own thread too."""


class SinkListener(Protocol):
    """What the sink reports (per batch, and per acknowledged message)."""

    def use_acks(self) -> None:
        """`acked` will be called for every message Kafka acknowledges: count those, not the writes."""

    def wrote(self, last: WrittenRecord, count: int, size: int) -> None:
        """`count` messages of `size` value bytes were handed to the producer, `last` the last of them."""

    def acked(self, topic: str, size: int, count: int = 1) -> None:
        """Kafka acknowledged `count` messages of `topic` (`size` value bytes)."""

    def skipped(self, n: int) -> None:
        """`n` replayed records were dropped, having been written before."""

    def broker_waiting(self, brokers: str, pending: int, seconds: float, error: str | None,
                       reading: str | None = None) -> None:
        """Kafka (`brokers`) has acknowledged nothing for `seconds` while `pending` messages wait, past the
        notice time (`error`: the client's last error, None if none); or, with `reading` (`topic[partition]`),
        has sent nothing of the partition the sink reads to learn what was written. `pending` 0 and no
        `reading`: no longer waits."""


class NoopSourceListener:
    """A `SourceListener` that ignores everything."""

    def snapshot_planned(self, plan: PlannedSnapshot) -> None:
        pass

    def chunk_read(self, chunk: ChunkProgress, n: int) -> None:
        pass

    def log_polled(self, reader: LogReaderView, changes: Sequence[Change]) -> None:
        pass

    def source_waiting(self, reader: str, source: str, error: str | None) -> None:
        pass


class NoopSinkListener:
    """A `SinkListener` that ignores everything."""

    def use_acks(self) -> None:
        pass

    def wrote(self, last: WrittenRecord, count: int, size: int) -> None:
        pass

    def acked(self, topic: str, size: int, count: int = 1) -> None:
        pass

    def skipped(self, n: int) -> None:
        pass

    def broker_waiting(self, brokers: str, pending: int, seconds: float, error: str | None,
                       reading: str | None = None) -> None:
        pass


NOOP_SOURCE_LISTENER: SourceListener = NoopSourceListener()
NOOP_SINK_LISTENER: SinkListener = NoopSinkListener()

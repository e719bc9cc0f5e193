"""The binlog stream as a Bytewax source: one partition, "log", around a `BinlogReader`.

Delivery: at-least-once from the engine's point of view. The partition's state is the reader's
`resume_state()`, which points right after the last batch handed to the dataflow (the start of that change's
transaction, plus the position of the change, so a restart inside a transaction skips exactly what was
emitted). After a crash Bytewax rebuilds the partition from its last snapshot, so the batches emitted since
that snapshot are read and emitted again with the same positions; the Kafka sink drops every change at or
before the last position it wrote, which makes the topics exactly-once per change.

Each item is a batch (`list[Change]`, at most `batch_size` changes), never a single change. `next_batch`
never blocks: the reader's thread reads ahead into a bounded queue. With `stop_at`, the partition ends
(StopIteration) once every change up to that position was emitted (`obsync run --until-caught-up`).

`gate`: while it returns False the partition emits nothing and does not start reading (for example until
the full sync is delivered); it is asked at most every 0.5 s and no longer once it returned True. The start
position and the tracked tables' schemas at it are fixed when the partition is built, before the gate opens.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.mysql.binlog.reader import BinlogReader
from connectors.mysql.connection import Endpoint
from obsync.changes import Batch
from obsync.errors import SourceUnavailable
from obsync.positions import LogPosition

log = logging.getLogger(__name__)

PARTITION = "log"
_GATE_INTERVAL = 0.5
_IDLE_WAIT = timedelta(milliseconds=20)


class BinlogSource(FixedPartitionedSource[Batch, dict]):
    """Incremental sync from the binlog; see the module docstring for the delivery guarantee."""

    def __init__(
        self,
        log_endpoint: Endpoint,
        *,
        server_id: int,
        tables: Iterable[tuple[str, str]],
        history_dir: str | os.PathLike[str] | None,
        start: LogPosition | dict[str, Any] | None = None,
        stop_at: LogPosition | None = None,
        sql_endpoint: Endpoint | None = None,
        batch_size: int = 500,
        gate: Callable[[], bool] | None = None,
        heartbeat: float = 1.0,
    ) -> None:
        self._kwargs: dict[str, Any] = dict(
            server_id=server_id, tables=tuple(tables), history_dir=history_dir, stop_at=stop_at,
            sql_endpoint=sql_endpoint, batch_size=batch_size, heartbeat=heartbeat)
        self._log_endpoint = log_endpoint
        self._start = start
        self._gate = gate

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def build_part(self, step_id: str, for_part: str, resume_state: dict[str, Any] | None) -> _BinlogPartition:
        if for_part != PARTITION:
            raise ValueError(f"BinlogSource has one partition {PARTITION!r}, not {for_part!r}")
        reader = BinlogReader(self._log_endpoint, start=resume_state or self._start, **self._kwargs)
        try:
            reader.prepare()  # fix the start position and the schemas at it now, before the gate opens
        except SourceUnavailable as e:
            log.warning("%s; the binlog reader will retry when it starts", e)
        return _BinlogPartition(reader, self._gate)


class _BinlogPartition(StatefulSourcePartition[Batch, dict]):
    def __init__(self, reader: BinlogReader, gate: Callable[[], bool] | None) -> None:
        self._reader = reader
        self._gate = gate
        self._open = gate is None
        self._next_gate_check = 0.0
        self._awake: datetime | None = None

    def next_batch(self) -> list[Batch]:
        if not self._open:
            now = time.monotonic()
            if now >= self._next_gate_check:
                assert self._gate is not None
                self._open = bool(self._gate())
                self._next_gate_check = now + _GATE_INTERVAL
            if not self._open:
                self._awake = datetime.now(timezone.utc) + timedelta(seconds=_GATE_INTERVAL)
                return []
        changes = self._reader.poll(0.0)
        if self._reader.finished:
            raise StopIteration
        if not changes:
            self._awake = datetime.now(timezone.utc) + _IDLE_WAIT
            return []
        self._awake = None
        return [changes]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict[str, Any] | None:
        # None only when the source was unreachable when the partition was built and no start was given:
        # the reader then starts from the position current when it first connects
        return self._reader.resume_state()

    def close(self) -> None:
        self._reader.close()

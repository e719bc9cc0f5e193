"""Resources: what `resources.full` / `resources.incremental` (or their presets) turn into.

| preset | full: chunks read at once, in flight, memory | incremental: log read-ahead memory, in flight |
|--------|----------------------------------------------|-----------------------------------------------|
| small  | 1, 2, 256 MiB                                 | 64 MiB, 2                                     |
| medium | 2, 5, 1 GiB                                   | 256 MiB, 5                                    |
| large  | 4, 5, 4 GiB                                   | 1 GiB, 5                                      |

Mapping (the machine's cores decide Bytewax workers, `workers:`; these settings size what runs on them):
- `read_concurrency`: snapshot chunks read at once per process, spread over its workers
  (`SnapshotSource(chunks_per_worker=ceil(read_concurrency / workers))`).
- `write_concurrency`: the producer's `max.in.flight.requests.per.connection` (at most 5, which keeps the
  idempotent producer's ordering guarantee); the larger of full and incremental, the producer being shared.
- `memory` (full): 40% to the producer's buffer (`queue.buffering.max.kbytes`), 40% to rows read and not yet
  handed on: the fetch size is cut so `read_concurrency` x 2 pages (a pipelined page is read ahead) x
  `snapshot.batch_size` rows x `ROW_BYTES` fits; the rest is left to the engine.
- `log_memory` (incremental): the log reader's queue of decoded batches (`max_batches`) sized to half of it
  at `ROW_BYTES` a row; the producer's buffer gets the other half when incremental sync is the larger.
A row's size is not known in advance: `ROW_BYTES` (1 KiB) is the planning figure; wide rows use more.
User `target.properties` win over what is derived here. Without `resources`, obsync's defaults apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from obsync.task.config import FullResources, IncrementalResources, TaskConfig

ROW_BYTES = 1024
MIB = 2**20
FULL_PRESETS = {
    "small": FullResources(read_concurrency=1, write_concurrency=2, memory=256 * MIB),
    "medium": FullResources(read_concurrency=2, write_concurrency=5, memory=1024 * MIB),
    "large": FullResources(read_concurrency=4, write_concurrency=5, memory=4096 * MIB),
}
INCREMENTAL_PRESETS = {
    "small": IncrementalResources(log_memory=64 * MIB, write_concurrency=2),
    "medium": IncrementalResources(log_memory=256 * MIB, write_concurrency=5),
    "large": IncrementalResources(log_memory=1024 * MIB, write_concurrency=5),
}
DEFAULT_LOG_BATCH = 500


@dataclass(frozen=True)
class ResourcePlan:
    """Engine and client settings derived from a task's resources."""

    chunks_per_worker: int
    snapshot_batch_size: int
    log_batch_size: int
    log_queue_batches: int
    producer: dict[str, Any]


def plan_resources(task: TaskConfig, workers: int) -> ResourcePlan:
    """The settings of `task`'s resources for a process with `workers` workers."""
    r = task.resources
    full = FULL_PRESETS[r.full] if isinstance(r.full, str) else r.full
    inc = INCREMENTAL_PRESETS[r.incremental] if isinstance(r.incremental, str) else r.incremental
    batch = task.snapshot.batch_size
    chunks_per_worker = 1
    producer: dict[str, Any] = {}
    buffer_bytes = 0.0
    in_flight = 0
    if full is not None:
        chunks_per_worker = max(1, math.ceil(full.read_concurrency / max(1, workers)))
        rows_fit = int(full.memory * 0.4 / (full.read_concurrency * 2 * ROW_BYTES))
        batch = max(100, min(batch, rows_fit))
        buffer_bytes = full.memory * 0.4
        in_flight = full.write_concurrency
    log_batches = 8
    if inc is not None:
        log_batches = max(2, min(256, int(inc.log_memory * 0.5 / (DEFAULT_LOG_BATCH * ROW_BYTES))))
        buffer_bytes = max(buffer_bytes, inc.log_memory * 0.5)
        in_flight = max(in_flight, inc.write_concurrency)
    if buffer_bytes:
        producer["queue.buffering.max.kbytes"] = max(1024, min(2**31 - 1, int(buffer_bytes / 1024)))
    if in_flight:
        producer["max.in.flight.requests.per.connection"] = min(5, in_flight)
    return ResourcePlan(chunks_per_worker, batch, DEFAULT_LOG_BATCH, log_batches, producer)


PROCESS_BASE = 256 * MIB  # `obsync run` before any row: the watching process (~70 MiB peak RSS measured) and
# the task's process with the engine, librdkafka and the drivers (~120 MiB peak RSS with 100,000 rows, `medium`)
LIBRDKAFKA_BUFFER_KIB = 1048576  # librdkafka's default queue.buffering.max.kbytes (1 GiB)


def memory_budget(task: TaskConfig) -> int:
    """Bytes to give a process of `task` (a container's memory request): `PROCESS_BASE`, the producer's buffer
    (`target.properties`' `queue.buffering.max.kbytes`, else what `resources` derive, else librdkafka's 1 GiB)
    and the larger of the rows full sync reads ahead and the log reader's queue, at `ROW_BYTES` a row (wide
    rows take more: raise the request with them)."""
    workers = max(1, task.workers)
    plan = plan_resources(task, workers)
    kib = task.target.properties.get("queue.buffering.max.kbytes",
                                     plan.producer.get("queue.buffering.max.kbytes", LIBRDKAFKA_BUFFER_KIB))
    full_rows = plan.chunks_per_worker * workers * 2 * plan.snapshot_batch_size if task.sync.full else 0
    log_rows = plan.log_queue_batches * plan.log_batch_size if task.sync.incremental else 0
    return PROCESS_BASE + int(kib) * 1024 + max(full_rows, log_rows) * ROW_BYTES

"""Prometheus metrics of a running task, and the HTTP endpoint that serves them (`obsync run --metrics-port`).

Every metric is in `REGISTRY` (not prometheus_client's global one), is named `obsync_...` and carries the
label `task` (the task's name, set once by `configure`); per-table metrics add `table` ("db.table"). The list
with meanings and example alert rules is in docs/metrics.md.

The rest of obsync records through the small functions below, never through the metric objects: they cache
the labelled children, so a call costs a dict lookup and an increment whatever the labels. They are called
once per batch (hundreds to thousands of rows), never per row, and are cheap enough to run whether or not an
endpoint serves them. Values that are cheaper to compute when scraped than to keep current (lag, the log
source's read position) are gauges with a function (`set_lag_function`, `set_read_position_function`), and
`set_collect_hook` runs a callable before every scrape (to fold counts kept in plain integers into the
counters).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.registry import Collector

from obsync.core.errors import ObsyncError

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=False)

PHASES = ("starting", "full", "incremental", "done", "failed", "stopped", "restarting")
ERROR_KINDS = ("config", "source", "source_unavailable", "position_lost", "schema_mismatch", "sink", "state",
               "source_reconnect", "internal")


class _Hooks(Collector):
    """Registered first: runs the collect hooks before the other collectors are read."""

    def __init__(self) -> None:
        self.hooks: dict[str, Callable[[], None]] = {}

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        for hook in list(self.hooks.values()):
            try:
                hook()
            except Exception:  # a scrape must never fail because of a hook
                log.debug("metrics collect hook failed", exc_info=True)
        return []


_hooks = _Hooks()
REGISTRY.register(_hooks)

UP = Gauge("obsync_up", "1 while the task runs, 0 once it stopped or failed", ["task"], registry=REGISTRY)
FAILED = Gauge("obsync_task_failed", "1 once the task failed (an error stopped it), else 0", ["task"],
               registry=REGISTRY)
START_TIME = Gauge("obsync_start_time_seconds", "when this run of the task started (epoch seconds)", ["task"],
                   registry=REGISTRY)
RESTARTS = Gauge("obsync_task_restarts", "times `obsync run` started the task's process again after a fault of "
                 "Kafka's that a restart clears (a fatal producer error, writes acknowledged but not kept)", ["task"],
                 registry=REGISTRY)
PHASE = Enum("obsync_phase", "the task's phase: full sync, incremental sync, or how it ended", ["task"],
             states=list(PHASES), registry=REGISTRY)
ROWS_READ = Counter("obsync_rows_read", "rows read from the source (snapshot rows, or log row changes)",
                    ["task", "table", "source"], registry=REGISTRY)
LOG_BYTES_READ = Counter("obsync_log_bytes_read", "bytes of binary log read (advance of the log position)",
                         ["task"], registry=REGISTRY)
MESSAGES_WRITTEN = Counter("obsync_messages_written", "messages written to Kafka", ["task", "topic", "table"],
                           registry=REGISTRY)
BYTES_WRITTEN = Counter("obsync_bytes_written", "bytes of message values written to Kafka",
                        ["task", "topic", "table"], registry=REGISTRY)
MESSAGES_SKIPPED = Counter("obsync_messages_skipped", "messages dropped because they were already written "
                           "(replayed after a restart)", ["task"], registry=REGISTRY)
LARGE_MESSAGES = Counter("obsync_large_messages", "row messages larger than their topic accepts, by the "
                         "`large_messages` policy applied (fail: the task stopped)", ["task", "table", "policy"],
                         registry=REGISTRY)
LOG_ENCODED = Counter("obsync_log_changes_encoded", "log row changes encoded by a worker of this process for a sink "
                      "lane it writes (runs of several workers: encoding is spread by Kafka partition)",
                      ["task", "worker", "lane"], registry=REGISTRY)
ERRORS = Counter("obsync_errors", "errors, by kind (a failed task, a reconnect to the source)",
                 ["task", "kind"], registry=REGISTRY)
LAG = Gauge("obsync_lag_seconds", "incremental sync delay: seconds between a change's commit on the source and "
            "its acknowledgement by Kafka, growing while the pipeline stalls (NaN before incremental sync)",
            ["task"], registry=REGISTRY)
COMMIT_TO_ACK = Histogram("obsync_commit_to_ack_seconds", "source commit to Kafka acknowledgement of log "
                          "changes, one observation per batch", ["task"], registry=REGISTRY,
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
LOG_POSITION_FILE = Gauge("obsync_log_position_file_number", "binary log file number (mysql-bin.000042 -> 42) "
                          "of the log position read from the source or written to Kafka", ["task", "stage"],
                          registry=REGISTRY)
LOG_POSITION_OFFSET = Gauge("obsync_log_position_offset", "offset in its binary log file of the log position "
                            "read from the source or written to Kafka", ["task", "stage"], registry=REGISTRY)
LAST_WRITE = Gauge("obsync_last_write_timestamp_seconds", "when a message was last written to Kafka (epoch "
                   "seconds)", ["task"], registry=REGISTRY)
SOURCE_WAITING = Gauge("obsync_source_waiting_seconds", "how long obsync has been waiting for a source that is "
                       "down or silent to answer again (reconnecting with backoff within source.patience); 0 "
                       "while it answers", ["task"], registry=REGISTRY)
BROKER_WAITING = Gauge("obsync_broker_waiting_seconds", "how long Kafka has been acknowledging nothing while "
                       "messages wait, once past target.stall_timeout (the sink keeps waiting within "
                       "target.patience); 0 while it acknowledges", ["task"], registry=REGISTRY)
FULL_ROWS_DONE = Gauge("obsync_full_sync_rows_done", "full sync: rows read so far, this run and the runs "
                       "before it", ["task", "table"], registry=REGISTRY)
FULL_ROWS_ESTIMATED = Gauge("obsync_full_sync_rows_estimated", "full sync: rows the plan expects (exact at "
                            "planning for tables with a key, an estimate otherwise)", ["task", "table"],
                            registry=REGISTRY)
FULL_CHUNKS_DONE = Gauge("obsync_full_sync_chunks_done", "full sync: chunks read completely",
                         ["task", "table"], registry=REGISTRY)
FULL_CHUNKS_TOTAL = Gauge("obsync_full_sync_chunks_total", "full sync: chunks in the plan", ["task", "table"],
                          registry=REGISTRY)

_LABELLED = (UP, FAILED, START_TIME, RESTARTS, PHASE, ROWS_READ, LOG_BYTES_READ, MESSAGES_WRITTEN, BYTES_WRITTEN,
             MESSAGES_SKIPPED, ERRORS, LAG, COMMIT_TO_ACK, LOG_POSITION_FILE, LOG_POSITION_OFFSET, LAST_WRITE,
             FULL_ROWS_DONE, FULL_ROWS_ESTIMATED, FULL_CHUNKS_DONE, FULL_CHUNKS_TOTAL, LARGE_MESSAGES,
             SOURCE_WAITING, BROKER_WAITING, LOG_ENCODED)

_task = ""
_lock = threading.Lock()
_children: dict[tuple, Any] = {}  # (metric name, *labels) -> labelled child


def _child(metric: Any, *labels: str) -> Any:
    key = (metric._name, *labels)
    c = _children.get(key)
    if c is None:
        with _lock:
            c = _children.get(key)
            if c is None:
                c = _children[key] = metric.labels(_task, *labels)
    return c


def configure(task: str) -> None:
    """Name the task every metric is labelled with (clears what was recorded before: one task per process)."""
    global _task
    reset()
    _task = task
    _child(UP).set(1)
    _child(FAILED).set(0)
    _child(START_TIME).set(time.time())
    _child(RESTARTS).set(0)
    _child(PHASE).state("starting")
    _child(LAG).set(math.nan)
    _child(SOURCE_WAITING).set(0)
    _child(BROKER_WAITING).set(0)
    for stage in ("read", "written"):
        _child(LOG_POSITION_FILE, stage).set(math.nan)
        _child(LOG_POSITION_OFFSET, stage).set(math.nan)


def reset() -> None:
    """Forget every labelled value and hook (tests; `configure` starts with it)."""
    global _task
    with _lock:
        _children.clear()
        for m in _LABELLED:
            m.clear()
        _hooks.hooks.clear()
        _task = ""


def task_label() -> str:
    return _task


def start_metrics_server(port: int, host: str = "0.0.0.0") -> Any:
    """Serve `REGISTRY` at http://host:port/metrics (any path) from a daemon thread; returns the server
    (`.shutdown()` stops it). Port 0 picks a free port (`server.server_port`)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server


# -- recording (once per batch) ----------------------------------------------------------------------------

def rows_read(table: str, source: str, n: int) -> None:
    """`n` rows of `table` read from the `source` ("snapshot" or "log")."""
    _child(ROWS_READ, table, source).inc(n)


def log_bytes_read(n: int) -> None:
    if n > 0:
        _child(LOG_BYTES_READ).inc(n)


def written(topic: str, table: str, count: int, size: int) -> None:
    """`count` messages of `size` value bytes written to `topic` (`table` "" if the topic has several)."""
    _child(MESSAGES_WRITTEN, topic, table).inc(count)
    _child(BYTES_WRITTEN, topic, table).inc(size)


def set_last_write(t: float) -> None:
    _child(LAST_WRITE).set(t)


def skipped(n: int) -> None:
    _child(MESSAGES_SKIPPED).inc(n)


def large_message(table: str, policy: str) -> None:
    """One message of `table` too large for its topic, handled by `policy` (rare: counted one by one)."""
    _child(LARGE_MESSAGES, table, policy).inc()


def log_encoded(worker: str, lane: str, n: int) -> None:
    """`n` log row changes encoded for `lane` by `worker` (once per lane batch)."""
    _child(LOG_ENCODED, worker, lane).inc(n)


def commit_to_ack(seconds: float) -> None:
    _child(COMMIT_TO_ACK).observe(max(0.0, seconds))


def error(kind: str, n: int = 1) -> None:
    _child(ERRORS, kind).inc(n)


def error_kind(exc: BaseException) -> str:
    """The `kind` label of an exception: its obsync error class in snake case, else "internal"."""
    if not isinstance(exc, ObsyncError):
        return "internal"
    name = type(exc).__name__
    if name.endswith("Error") and name != "Error":
        name = name[: -len("Error")]
    return "".join("_" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(name))


def full_sync_table(table: str, done: int, estimated: int, chunks_done: int, chunks_total: int) -> None:
    _child(FULL_ROWS_DONE, table).set(done)
    _child(FULL_ROWS_ESTIMATED, table).set(estimated)
    _child(FULL_CHUNKS_DONE, table).set(chunks_done)
    _child(FULL_CHUNKS_TOTAL, table).set(chunks_total)


def full_sync_rows(table: str, done: int, chunks_done: int) -> None:
    _child(FULL_ROWS_DONE, table).set(done)
    _child(FULL_CHUNKS_DONE, table).set(chunks_done)


def set_phase(phase: str) -> None:
    _child(PHASE).state(phase)


def set_restarts(n: int) -> None:
    _child(RESTARTS).set(n)


def set_up(up: bool, failed: bool = False) -> None:
    _child(UP).set(1 if up else 0)
    _child(FAILED).set(1 if failed else 0)


def set_log_position(stage: str, file_number: int, offset: int) -> None:
    _child(LOG_POSITION_FILE, stage).set(file_number)
    _child(LOG_POSITION_OFFSET, stage).set(offset)


def set_lag_function(fn: Callable[[], float | None]) -> None:
    """The lag gauge reads `fn()` at every scrape (None: NaN, not known)."""
    _child(LAG).set_function(lambda: _nan_if_none(fn))


def set_source_waiting_function(fn: Callable[[], float]) -> None:
    """The source-waiting gauge reads `fn()` (seconds) at every scrape."""
    _child(SOURCE_WAITING).set_function(fn)


def set_broker_waiting_function(fn: Callable[[], float]) -> None:
    """The broker-waiting gauge reads `fn()` (seconds) at every scrape."""
    _child(BROKER_WAITING).set_function(fn)


def set_read_position_function(fn: Callable[[], tuple[int, int] | None]) -> None:
    """The "read" log position gauges read `fn()` (file number, offset) at every scrape."""
    def part(i: int) -> Callable[[], float]:
        def get() -> float:
            try:
                p = fn()
            except Exception:  # noqa: BLE001 - a scrape never fails: a position that cannot be read is NaN
                return math.nan
            return math.nan if p is None else float(p[i])
        return get

    _child(LOG_POSITION_FILE, "read").set_function(part(0))
    _child(LOG_POSITION_OFFSET, "read").set_function(part(1))


def set_collect_hook(name: str, fn: Callable[[], None]) -> None:
    """Run `fn()` before every scrape (for example to fold plain counters into the metrics); a later hook of
    the same `name` replaces it."""
    with _lock:
        _hooks.hooks[name] = fn


def _nan_if_none(fn: Callable[[], float | None]) -> float:
    try:
        v = fn()
    except Exception:  # noqa: BLE001 - a scrape never fails: a value that cannot be read is NaN
        return math.nan
    return math.nan if v is None else float(v)


def sample(name: str, **labels: str) -> float | None:
    """The current value of one sample of `REGISTRY` (tests, the progress display): `labels` besides `task`."""
    return REGISTRY.get_sample_value(name, {"task": _task, **labels})

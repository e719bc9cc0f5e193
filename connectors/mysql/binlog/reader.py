"""The engine-free binlog reader: a background thread streams the binlog into a bounded queue of batches.

The thread owns the replication connection (opened by `stream.open_stream`) and the schema tracker; it
reconnects from the last transaction boundary when the stream drops or goes silent for the endpoint's
`read_timeout` (the log's policy in `..failures`, backing off, for as long as the endpoint's `patience`
allows: `outage.Outage` logs the wait and tells the listener, status.json and the metrics show it) and stops
on a purged position, a fatal failure or an outage longer than that patience, which `poll()` raises. Its
`session.Session` turns events into frozen `Change`s for the tracked tables and queues them in batches of at
most `batch_size`; at most `max_batches` batches wait, so memory stays bounded whatever the size of a
transaction. `poll()` hands out one batch at a time and keeps the resume state of exactly what it handed out.
The SQL questions about the server's binlog (current position, files) are in `server_log`.

Resume state: `offset()`, an `obsync.core.offsets.LogOffset` (restart point, last change handed out, its
GTID, backfill progress), and `resume_state()`, its JSON form. A reader starts from a `LogPosition`, a
`LogOffset`, or such JSON (read by `LogOffset.from_dict`, which refuses an older obsync's state clearly).

`live` (an `obsync.task.live.Live`) is the task's current selection: at a transaction boundary after it changed,
tables no longer selected stop being tracked, newly selected ones are picked up (their table maps decode
from then on) and the backfills it requests are queued.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pymysqlreplication import BinLogStreamReader

from obsync.connectors.mysql.binlog.outage import Outage
from obsync.connectors.mysql.binlog.schema_history import HistoryStore, SchemaHistory
from obsync.connectors.mysql.binlog.schema_policy import SchemaPolicy
from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker, SourceCatalog
from obsync.connectors.mysql.binlog.server_log import check_position, current_log_position
from obsync.connectors.mysql.binlog.session import EVENTS, QueuedBatch, Session
from obsync.connectors.mysql.binlog.stream import interrupt, open_stream, stream_heartbeat
from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import DRIVER_ERRORS, LOG_POLICY, Failure, StreamLost, classify, retryable
from obsync.core.changes import Change
from obsync.core.errors import ObsyncError, SourceError
from obsync.core.listeners import NOOP_SOURCE_LISTENER, SourceListener
from obsync.core.offsets import LogOffset
from obsync.core.positions import LogPosition
from obsync.core.threads import NamedThread

log = logging.getLogger(__name__)
logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)  # it warns about MINIMAL metadata on connect

_T = TypeVar("_T")

_DONE = object()


def _start_offset(start: LogPosition | LogOffset | dict[str, Any] | None) -> LogOffset | None:
    if start is None or isinstance(start, LogOffset):
        return start
    if isinstance(start, LogPosition):
        return LogOffset.starting_at(start)
    return LogOffset.from_dict(start)


class BinlogReader:
    """Streams changes of the tracked tables from a MySQL-protocol binlog (MySQL, MariaDB, OceanBase
    Binlog Service), with schema tracking, in bounded memory; `poll()` never blocks longer than asked."""

    def __init__(
        self,
        log_endpoint: Endpoint,
        *,
        server_id: int,
        tables: Iterable[tuple[str, str]],
        history_dir: str | os.PathLike[str] | HistoryStore | None,
        selector: Callable[[tuple[str, str]], bool] | None = None,
        start: LogPosition | LogOffset | dict[str, Any] | None = None,
        stop_at: LogPosition | None = None,
        sql_endpoint: Endpoint | None = None,
        batch_size: int = 500,
        max_batches: int = 8,
        heartbeat: float = 1.0,
        emit_untracked_ddl: bool = False,
        max_backoff: float = 30.0,
        live: Any | None = None,
        backfill_page: int = 2000,
        listener: SourceListener = NOOP_SOURCE_LISTENER,
        schema_changes: str = "evolve",
    ) -> None:
        self.log_endpoint = log_endpoint
        self.sql_endpoint = sql_endpoint or log_endpoint
        self.server_id = server_id
        self.tables = frozenset((str(d), str(t)) for d, t in tables)
        # `selector` picks up tables that are not in `tables` (created, or renamed into the task's rules,
        # while it runs): True for a table the task syncs.
        self.selector = selector
        if not self.tables and selector is None:
            raise ValueError("BinlogReader needs at least one table to track, or a selector")
        self.history_dir = history_dir
        # the task's schema_changes.policy: what a DDL does to the tables' messages (`schema_policy`)
        self.policy = SchemaPolicy(schema_changes, history_dir)
        self.stop_at = stop_at
        self.batch_size = max(1, batch_size)
        # the server's heartbeat on an idle stream: often enough that a silent connection is one that died
        self.heartbeat = stream_heartbeat(heartbeat, log_endpoint.read_timeout)
        self.emit_untracked_ddl = emit_untracked_ddl
        self.max_backoff = max_backoff
        # reconnects: backing off up to `max_backoff`, for as long as the endpoint's patience allows
        self._policy = dataclasses.replace(LOG_POLICY, cap=max_backoff, patience=log_endpoint.patience)
        self._outage = Outage(self._policy, log_endpoint, listener)  # used by the thread only
        self.live = live  # obsync.live.Live: the task's current selection and backfill requests
        self.backfill_page = backfill_page
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_batches))
        self._held: Any = None  # an item poll() took from the queue but hands out next time
        self._offset = _start_offset(start)  # what poll() handed out (None until the start is known)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stream: BinLogStreamReader | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._catalog = SourceCatalog(self.sql_endpoint)
        self._tracker: SchemaTracker | None = None
        # status, written by the thread
        self.reconnects = 0
        self.last_event_time: float | None = None  # when the last event (heartbeats included) arrived
        self.last_commit_time: float | None = None  # source timestamp of the last event read

    # ---- consumer side ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Fix the start position (the current one when none was given) and load the tracked tables'
        schemas at it (from the history, else from the source now, recorded in the history). The thread
        does this itself if it was not done; calling it early narrows the window in which a DDL could run
        between the start position and the moment the schema is read."""
        if self._tracker is not None:
            return
        if self._offset is None:
            self._offset = LogOffset.starting_at(current_log_position(self.log_endpoint))
        start = self._offset.restart_point
        tracker = SchemaTracker(self.tables, SchemaHistory(self.history_dir), self._catalog, self.selector)
        # Always, even when there is nothing to read before `stop_at`: a later run resumes from `start`
        # and needs the schemas as they were there, whatever DDL runs in between.
        tracker.start(start)
        self.policy.start({n: tracker.get(n) for n in tracker.tracked}, start)
        self._tracker = tracker

    def start(self) -> None:
        """Start the background thread (poll() does it on first use)."""
        if self._thread is None:
            self._thread = NamedThread(target=self._run, name="obsync-binlog", daemon=True)
            self._thread.start()

    @property
    def finished(self) -> bool:
        """True once `stop_at` was passed and every change before it was handed out."""
        return self._finished

    def poll(self, max_wait: float = 0.0) -> list[Change]:
        """The next batch of changes (possibly empty), waiting at most `max_wait` seconds."""
        if self._error is not None:
            raise self._error
        if self._finished:
            return []
        self.start()
        item, self._held = self._held, None
        if item is None:
            try:
                item = self._queue.get(timeout=max_wait) if max_wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return []
        if item is _DONE:
            self._finished = True
            return []
        if isinstance(item, BaseException):
            self._error = item
            raise item
        changes, state = item.changes, item.state
        # the batches queued behind it too, up to batch_size changes: when the consumer lags (the session then
        # queues a batch per transaction while each is read as soon as it arrives), it gets fewer, larger batches
        while len(changes) < self.batch_size:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if type(nxt) is not QueuedBatch or len(changes) + len(nxt.changes) > self.batch_size:
                self._held = nxt  # handed out (or raised, or ends the stream) at the next poll
                break
            if changes is item.changes:
                changes = list(changes)
            changes += nxt.changes
            state = nxt.state
        self._offset = state
        return changes

    def offset(self) -> LogOffset | None:
        """Where a new reader must start to continue right after the last change handed out by poll()
        (None only before the start position is known)."""
        return self._offset

    def resume_state(self) -> dict[str, Any] | None:
        """`offset()` as JSON (`LogOffset.to_dict`)."""
        return self._offset.to_dict() if self._offset is not None else None

    def status(self) -> dict[str, Any]:
        """For monitoring. `idle_seconds`: time since the last event or server heartbeat arrived (stays
        near the heartbeat interval on a healthy idle stream); `lag_seconds`: age of the last event read."""
        now = time.monotonic()
        return {
            "state": self.resume_state(),
            "finished": self._finished,
            "reconnects": self.reconnects,
            "idle_seconds": None if self.last_event_time is None else round(now - self.last_event_time, 3),
            "lag_seconds": None if self.last_commit_time is None else max(0.0, time.time() - self.last_commit_time),
            "queued_batches": self._queue.qsize(),
        }

    def close(self) -> None:
        """Stop the thread and close the connections."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            interrupt(stream)  # wakes the thread up if it is blocked reading the stream
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.heartbeat * 3))
        if self._thread is None or not self._thread.is_alive():
            self._catalog.close()

    def __enter__(self) -> BinlogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the thread ------------------------------------------------------------------------------------

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        catalog = self._catalog
        try:
            self._run_stream()
        except BaseException as e:  # noqa: BLE001 - every failure reaches poll()
            if not isinstance(e, ObsyncError):
                log.exception("binlog reader failed")
                e = SourceError(f"binlog reader failed: {type(e).__name__}: {e}")
            self._put(e)
        finally:
            catalog.close()
            self._close_stream()
            self._outage.over()  # the thread ends (stopped, failed): nobody waits for the source any more

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._stream = None

    def _run_stream(self) -> None:
        if not self._retry(self._prepared):
            return
        offset, tracker = self._offset, self._tracker
        assert offset is not None and tracker is not None
        if self.stop_at is not None and offset.restart_point.sort_key[:3] >= self.stop_at.sort_key[:3]:
            self._put(_DONE)
            return
        session = Session(self, tracker, offset)
        while not self._stop.is_set():
            try:
                check_position(self.log_endpoint, session.restart_point())
                session.stream_from(self._open_stream(session.restart_point()))
                if self._stop.is_set() or session.done:
                    break
                raise StreamLost("the server ended the binlog stream")
            except Exception as e:
                failure = classify(e)
                if failure is Failure.POSITION_PURGED and isinstance(e, DRIVER_ERRORS):
                    check_position(self.log_endpoint, session.restart_point())  # raises PositionLostError if purged
                if not failure.retryable:
                    if isinstance(e, DRIVER_ERRORS):
                        raise SourceError(f"the binlog stream from {self.log_endpoint!r} failed: {e}") from None
                    raise
                if self._stop.is_set():
                    break
                session.flush(force=True)  # what was read before the failure goes out (its state with it)
                session.reset_after_disconnect()
                session.streamed = False
                self._close_stream()
                self.reconnects += 1
                # logged, told to the listener; past the patience: the error poll() raises
                backoff = self._outage.failed(e, session.restart_point())
                if self._stop.wait(backoff):
                    break
        session.flush(force=True)
        session.pages.close()
        if session.done:
            self._put(_DONE)

    def _prepared(self) -> bool:
        self.prepare()
        return True

    def _answered(self) -> None:
        """The first event arrived on a new connection: the outage (if any) is over."""
        self._outage.over()

    def _retry(self, fn: Callable[[], _T]) -> _T | None:
        """Run fn until it stops failing with a failure worth retrying, within the patience (or the reader is
        closed)."""
        while not self._stop.is_set():
            try:
                result = fn()
            except Exception as e:
                if not retryable(e):
                    raise
                backoff = self._outage.failed(e, self._offset.restart_point if self._offset is not None else None)
                if self._stop.wait(backoff):
                    return None
            else:
                self._outage.over()
                return result
        return None

    def _open_stream(self, p: LogPosition) -> BinLogStreamReader:
        self._close_stream()
        self._stream = open_stream(
            self.log_endpoint, self.sql_endpoint, server_id=self.server_id, file=p.file, pos=p.pos,
            events=EVENTS, blocking=True, heartbeat=self.heartbeat,
            # with a selector any table may become tracked: filtered here (`SchemaTracker.is_tracked`)
            only_schemas=None if self.selector is not None else sorted({d for d, _ in self.tables}),
            only_tables=None if self.selector is not None else sorted({t for _, t in self.tables}))
        return self._stream


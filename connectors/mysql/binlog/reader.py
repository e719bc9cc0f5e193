"""The engine-free binlog reader: a background thread streams the binlog into a bounded queue of batches.

The thread owns the replication connection (mysql-replication's `BinLogStreamReader` for the protocol and
event headers), the schema tracker and the row decoders. It turns events into frozen `Change`s for the
tracked tables and queues them in batches of at most `batch_size`; at most `max_batches` batches wait, so
memory stays bounded whatever the size of a transaction. `poll()` hands out one batch at a time and keeps
the resume state of exactly what it handed out.

Resume state: `offset()`, an `obsync.core.offsets.LogOffset` (restart point, last change handed out, its
GTID, backfill progress), and `resume_state()`, its JSON form. A reader starts from a `LogPosition`, a
`LogOffset`, or such JSON (read by `LogOffset.from_dict`, which refuses an older obsync's state clearly).

`live` (an `obsync.task.live.Live`) is the task's current selection: at a transaction boundary after it changed,
tables no longer selected stop being tracked, newly selected ones are picked up (their table maps decode
from then on) and the backfills it requests are queued.
"""

from __future__ import annotations

import logging
import dataclasses
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import (
    FormatDescriptionEvent,
    GtidEvent,
    HeartbeatLogEvent,
    MariadbBinLogCheckPointEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    NotImplementedEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RotateEvent,
    StopEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from obsync.connectors.mysql.binlog.backfill import Backfill, BackfillQueue, Page, PageReader, admit, key_problem
from obsync.connectors.mysql.binlog.rows import RowDecoder, table_map_signature
from obsync.connectors.mysql.binlog.schema_history import SchemaHistory
from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker, SourceCatalog
from obsync.connectors.mysql.binlog.stream import open_stream
from obsync.connectors.mysql.connection import Endpoint, connect
from obsync.connectors.mysql.failures import (
    DRIVER_ERRORS,
    LOG_POLICY,
    Failure,
    StreamLost,
    classify,
    code_name,
    retryable,
)
from obsync.core.changes import Change, Op
from obsync.core.errors import ObsyncError, PositionLostError, SourceError, SourceUnavailable
from obsync.core.offsets import LogOffset
from obsync.core.positions import LogPosition, binlog_file_number

log = logging.getLogger(__name__)
logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)  # it warns about MINIMAL metadata on connect


# ---- SQL helpers on the log endpoint ----------------------------------------------------------------

def _admin_connect(ep: Endpoint) -> pymysql.Connection:
    return connect(ep, utc_session=False)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def current_log_position(endpoint: Endpoint) -> LogPosition:
    """The server's current binlog position (SHOW MASTER STATUS): where a reader started now begins."""
    conn = _admin_connect(endpoint)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SHOW MASTER STATUS")
            except pymysql.err.ProgrammingError:  # MySQL 8.4 renamed it
                cur.execute("SHOW BINARY LOG STATUS")
            row = cur.fetchone()
    finally:
        conn.close()
    if not row:
        raise SourceError(f"binary logging is off on {endpoint.host}:{endpoint.port}: start the server with "
                          "log_bin, binlog_format=ROW and binlog_row_image=FULL")
    return LogPosition(_text(row[0]), int(row[1]), 0)


def binlog_files(endpoint: Endpoint) -> list[tuple[str, int]]:
    """The binlog files on the server and their sizes (SHOW BINARY LOGS), oldest first."""
    conn = _admin_connect(endpoint)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SHOW BINARY LOGS")
            except DRIVER_ERRORS as e:
                if code_name(e) == "ER_NO_BINARY_LOGGING":
                    raise SourceError(f"binary logging is off on {endpoint.host}:{endpoint.port}: start the "
                                      "server with log_bin") from None
                cls = SourceUnavailable if retryable(e) else SourceError
                raise cls(f"SHOW BINARY LOGS failed on {endpoint!r}: {e}") from None
            return [(_text(r[0]), int(r[1])) for r in cur.fetchall()]
    finally:
        conn.close()


# ---- the replication connection ---------------------------------------------------------------------

_EVENTS = [RotateEvent, FormatDescriptionEvent, QueryEvent, XidEvent, GtidEvent, MariadbGtidEvent,
           TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, HeartbeatLogEvent, XAPrepareEvent,
           NotImplementedEvent, MariadbGtidListEvent, MariadbBinLogCheckPointEvent, PreviousGtidsEvent, StopEvent,
           PartialUpdateRowsEvent]
# Events that carry data mysql-replication cannot decode: stop rather than lose rows.
_UNREADABLE = {
    40: "a compressed transaction (binlog_transaction_compression=ON)",
    165: "a compressed query (log_bin_compress=ON)", 166: "a compressed rows event (log_bin_compress=ON)",
    167: "a compressed rows event (log_bin_compress=ON)", 168: "a compressed rows event (log_bin_compress=ON)",
    169: "a compressed rows event (log_bin_compress=ON)", 170: "a compressed rows event (log_bin_compress=ON)",
    171: "a compressed rows event (log_bin_compress=ON)",
}
_ROWS_OPS = {WriteRowsEvent: Op.INSERT, DeleteRowsEvent: Op.DELETE, UpdateRowsEvent: Op.UPDATE}


@dataclass(frozen=True, slots=True)
class _Batch:
    changes: list[Change]
    state: LogOffset


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
        history_dir: str | os.PathLike[str] | None,
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
        self.stop_at = stop_at
        self.batch_size = max(1, batch_size)
        self.heartbeat = heartbeat
        self.emit_untracked_ddl = emit_untracked_ddl
        self.max_backoff = max_backoff
        self._policy = dataclasses.replace(LOG_POLICY, cap=max_backoff)  # reconnects: forever
        self.live = live  # obsync.live.Live: the task's current selection and backfill requests
        self.backfill_page = backfill_page
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_batches))
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
        self._tracker = tracker

    def start(self) -> None:
        """Start the background thread (poll() does it on first use)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="obsync-binlog", daemon=True)
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
        self._offset = item.state
        return item.changes

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
            conn = getattr(stream, "_stream_connection", None)
            sock = getattr(conn, "_sock", None) if conn is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
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
        except BaseException as e:  # every failure reaches poll()
            if not isinstance(e, ObsyncError):
                log.exception("binlog reader failed")
                e = SourceError(f"binlog reader failed: {type(e).__name__}: {e}")
            self._put(e)
        finally:
            catalog.close()
            self._close_stream()

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._stream = None

    def _run_stream(self) -> None:
        if self._retry(lambda: self.prepare() or True) is None:
            return
        offset, tracker = self._offset, self._tracker
        assert offset is not None and tracker is not None
        if self.stop_at is not None and offset.restart_point.sort_key[:3] >= self.stop_at.sort_key[:3]:
            self._put(_DONE)
            return
        session = _Session(self, tracker, offset)
        delays = self._policy.delays()
        while not self._stop.is_set():
            try:
                self._check_position(session.restart_point())
                session.stream_from(self._open_stream(session.restart_point()))
                if self._stop.is_set() or session.done:
                    break
                raise StreamLost("the server ended the binlog stream")
            except Exception as e:
                failure = classify(e)
                if failure is Failure.POSITION_PURGED and isinstance(e, DRIVER_ERRORS):
                    self._check_position(session.restart_point())  # raises PositionLostError if purged
                if not failure.retryable:
                    if isinstance(e, DRIVER_ERRORS):
                        raise SourceError(f"the binlog stream from {self.log_endpoint!r} failed: {e}") from None
                    raise
                if self._stop.is_set():
                    break
                if session.streamed:  # the last connection worked: start backing off afresh
                    delays, session.streamed = self._policy.delays(), False
                backoff = next(delays)  # the log's policy has no budget
                session.flush(force=True)
                session.reset_after_disconnect()
                self._close_stream()
                self.reconnects += 1
                log.warning("binlog stream from %r lost (%s); reconnecting in %.1fs from %s", self.log_endpoint,
                            e, backoff, session.restart_point())
                if self._stop.wait(backoff):
                    break
        session.flush(force=True)
        session.pages.close()
        if session.done:
            self._put(_DONE)

    def _retry(self, fn):
        """Run fn until it stops failing with a failure worth retrying (or the reader is closed)."""
        delays = self._policy.delays()
        while not self._stop.is_set():
            try:
                return fn()
            except Exception as e:
                if not retryable(e):
                    raise
                backoff = next(delays)  # the log's policy has no budget
                log.warning("%s; retrying in %.1fs", e, backoff)
                if self._stop.wait(backoff):
                    return None
        return None

    def _check_position(self, p: LogPosition) -> None:
        try:
            files = binlog_files(self.log_endpoint)
        except SourceError as e:
            if isinstance(e, SourceUnavailable):
                raise
            log.debug("cannot list binlog files (%s); relying on the stream's own check", e)
            return
        sizes = dict(files)
        if p.file not in sizes:
            self._position_gone(p, f"{p.file} is not among the server's binlogs "
                                   f"({files[0][0] if files else 'none'} .. {files[-1][0] if files else 'none'})")
        if p.pos > sizes[p.file]:
            self._position_gone(p, f"{p.file} has only {sizes[p.file]} bytes")

    def _position_gone(self, p: LogPosition, detail: str) -> None:
        raise PositionLostError(
            f"binlog position {p.file}:{p.pos} is no longer on the server {self.log_endpoint.host}:"
            f"{self.log_endpoint.port} ({detail}); the binlog was purged or the server was reset. "
            "Restart the task with full sync")

    def _open_stream(self, p: LogPosition) -> BinLogStreamReader:
        self._close_stream()
        self._stream = open_stream(
            self.log_endpoint, self.sql_endpoint, server_id=self.server_id, file=p.file, pos=p.pos,
            events=_EVENTS, blocking=True, heartbeat=self.heartbeat,
            # with a selector any table may become tracked: filtered here (`SchemaTracker.is_tracked`)
            only_schemas=None if self.selector is not None else sorted({d for d, _ in self.tables}),
            only_tables=None if self.selector is not None else sorted({t for _, t in self.tables}))
        return self._stream


class _Session:
    """The thread's view of the stream: position, transaction, decoders and the pending batch.

    `offset` (a `LogOffset`) moves at transaction boundaries (`start_transaction`, `commit`, `event_done`);
    the last change produced is kept per row in `last` (the hot path) and folded in by `state()`."""

    def __init__(self, reader: BinlogReader, tracker: SchemaTracker, start: LogOffset) -> None:
        self.r = reader
        self.tracker = tracker
        self.file = start.file
        self.fileno = binlog_file_number(start.file)
        self.pos = start.pos
        self.offset = start
        self.skip_key = start.last.sort_key[1:] if start.last is not None else None
        self.last = start.last  # the last change produced
        self.last_gtid = start.gtid  # the GTID of its transaction
        self.stop_key = (binlog_file_number(reader.stop_at.file), reader.stop_at.pos) if reader.stop_at else None
        self.done = False
        self.streamed = False  # an event arrived on the current connection
        self._end_txn()
        self.decoders: dict[int, RowDecoder] = {}
        self.compiled: dict[tuple, tuple[int, RowDecoder]] = {}
        self.pending: list[Change] = []
        self.pending_since = 0.0
        self.last_state_push = 0.0
        self.bq = BackfillQueue(start.backfill)
        self.pages = PageReader(reader.sql_endpoint, reader.backfill_page)
        self.held: Page | None = None  # a page read, waiting for the stream to reach its snapshot
        self.live_version: int | None = None
        if reader.live is not None:
            self._apply_live()

    # ---- positions -----------------------------------------------------------------------------------

    def _end_txn(self) -> None:
        self.in_txn = False
        self.explicit_begin = False
        self.offset = self.offset.commit(self.file, self.pos)
        self.txn_id: str | None = None

    def _begin_txn(self, start: int, gtid: str | None, explicit: bool) -> None:
        self.in_txn = True
        self.explicit_begin = explicit
        self.offset = self.offset.start_transaction(self.file, start)
        self.txn_id = gtid

    def restart_point(self) -> LogPosition:
        if self.in_txn:
            return self.offset.restart_point
        return LogPosition(self.file, self.pos, 0)

    def state(self) -> LogOffset:
        offset = self.offset if self.in_txn else self.offset.event_done(self.file, self.pos)
        return offset.row_emitted(self.last, self.last_gtid).with_backfill(
            self.bq.progress() if (self.bq.active or self.bq.done) else None)

    def reset_after_disconnect(self) -> None:
        p = self.restart_point()
        self.file, self.fileno, self.pos = p.file, binlog_file_number(p.file), p.pos
        self._end_txn()
        self.decoders.clear()
        if self.last is not None:
            self.skip_key = self.last.sort_key[1:]

    # ---- batches -------------------------------------------------------------------------------------

    def flush(self, force: bool = False) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.r._put(_Batch(batch, self.state()))
            self.last_state_push = time.monotonic()
        elif force or time.monotonic() - self.last_state_push > 1.0:
            # no changes, but the position moved (untracked tables, heartbeats): let the state follow
            try:
                self.r._queue.put_nowait(_Batch([], self.state()))
                self.last_state_push = time.monotonic()
            except queue.Full:
                pass

    def _emit(self, change: Change) -> None:
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending.append(change)
        self.last = change.position  # type: ignore[assignment]
        self.last_gtid = self.txn_id
        if len(self.pending) >= self.r.batch_size:
            self.flush()

    def _emit_row(self, change: Change) -> None:
        """A backfill row: queued like a change, but not a log position to skip through on restart."""
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending.append(change)
        if len(self.pending) >= self.r.batch_size:
            self.flush()

    # ---- live changes and backfills (between transactions only) --------------------------------------

    def _apply_live(self) -> None:
        """Follow the task's current selection: untrack the tables it no longer selects, let the selector
        pick up those it now selects, and queue the backfills it requests."""
        cfg = self.r.live.current
        self.live_version = cfg.version
        selected = cfg.selection.__contains__
        tracker = self.tracker
        tracker.selector = selected
        tracker._untracked.clear()
        for name in sorted(tracker.tracked):
            if not selected(name):
                tracker.tracked.discard(name)
                log.info("table %s.%s is no longer selected: not synced from %s on", name[0], name[1],
                         self.restart_point())
        current = self.bq.current
        self.bq.sync(cfg.backfills, selected, getattr(cfg, "fresh", None))
        if self.held is not None and self.bq.current is not current:
            self.held = None
        for b in self.bq.waiting:
            log.info("table %s.%s added to the running task: backfill %d queued", b.db, b.table, b.n)

    def _backfill_renamed_in(self, end: int) -> None:
        """A table renamed into the task's rules brings rows the log never showed: with full sync, queue its
        backfill (numbered by the RENAME's position, so a replay of the statement queues nothing twice)."""
        names, self.tracker.renamed_in = self.tracker.renamed_in, []
        live = self.r.live
        if live is None or not live.current.task.sync.full:
            for db, table in names:
                log.info("table %s.%s renamed into the task's rules at %s:%d: synced from here on (no full sync "
                         "of its existing rows: sync.full is off)", db, table, self.file, end)
            return
        for i, name in enumerate(names):
            if self.bq.add(-((self.fileno << 32 | end) * 8 + i), name):
                log.info("table %s.%s renamed into the task's rules at %s:%d: backfill of its rows queued",
                         name[0], name[1], self.file, end)

    def _start_backfill(self, bf: Backfill) -> bool:
        """Fix the table's schema and key for its backfill; False when it cannot run (table gone)."""
        name = bf.name
        tracker = self.tracker
        tracker.tracked.add(name)
        d = tracker.catalog.load(name)  # now: the tracked definition may be stale (untracked a while)
        if d is None:
            log.warning("backfill of %s.%s: the table does not exist (any more); nothing to read", *name)
            return False
        if tracker.get(name) != d:
            tracker._set(name, d, self.restart_point(), "refresh", None)
        schema = tracker.schema(name) or d.schema
        problem = key_problem(schema)
        if problem is not None:
            raise SourceError(f"table {schema.full_name} cannot be added to the running task with full sync: "
                              f"{problem}. Remove it from the task, or give it a primary key")
        bf.schema, bf.key_columns, bf.started = schema, schema.key_columns, True
        log.info("backfill %s of %s.%s: reading in pages of %d rows%s%s", bf.chunk, bf.db, bf.table,
                 self.pages.page_size, "" if bf.hi is None else f" after key {list(bf.hi)}",
                 " (loose: it may have begun before a restart, every log change of the table is sent)"
                 if bf.loose else "")
        return True

    def _backfill_step(self, stream: BinLogStreamReader) -> None:
        """Read and emit backfill pages while the stream allows: a MariaDB page waits until the stream
        reaches its snapshot's position; the step returns to the stream when events wait on the socket."""
        deadline = time.monotonic() + 0.2
        while not self.r._stop.is_set():
            bf = self.bq.next()
            if bf is None:
                return
            if self.held is None:
                if not bf.started and not self._start_backfill(bf):
                    self.bq.finish()
                    continue
                assert bf.schema is not None
                self.held = self.pages.read(bf, bf.schema)
            page = self.held
            if page.at is not None and (binlog_file_number(page.at.file), page.at.pos) > (self.fileno, self.pos):
                return  # stream on to the page's snapshot
            self.held = None
            schema = bf.schema
            assert schema is not None
            for row in page.rows:
                self._emit_row(bf.row(schema, row))
            if page.last:
                log.info("backfill %s of %s.%s done: %d rows; the table streams from %s on", bf.chunk, bf.db,
                         bf.table, bf.rows, self.restart_point())
                self.bq.finish()
                self.flush()
            if time.monotonic() > deadline and not self._idle(stream):
                return

    def _idle(self, stream: BinLogStreamReader) -> bool:
        """True when no more bytes are waiting on the replication socket."""
        conn = getattr(stream, "_stream_connection", None)
        sock = getattr(conn, "_sock", None)
        if sock is None:
            return True
        try:
            return not select.select([sock], [], [], 0)[0]
        except (OSError, ValueError):
            return True

    # ---- the event loop ------------------------------------------------------------------------------

    def stream_from(self, stream: BinLogStreamReader) -> None:
        r = self.r
        is_tracked = self.tracker.is_tracked
        while not r._stop.is_set():
            ev = stream.fetchone()
            if ev is None:
                return
            if not self.in_txn and r.live is not None and r.live.version != self.live_version:
                self._apply_live()  # between transactions, before the next one's first event
            now = time.monotonic()
            r.last_event_time = now
            self.streamed = True
            pkt = ev.packet
            end = pkt.log_pos
            cls = type(ev)
            if cls in _ROWS_OPS:
                dec = self.decoders.get(ev.table_id)
                if dec is not None:
                    self._rows(ev, dec, end, _ROWS_OPS[cls])
            elif cls is TableMapEvent:
                if is_tracked((ev.schema, ev.table)):
                    self._table_map(ev, end)
                else:
                    self.decoders.pop(ev.table_id, None)
            elif cls is QueryEvent:
                self._query(ev, end, pkt.event_size)
            elif cls is XidEvent or cls is XAPrepareEvent:
                self._end_txn_at(end)
            elif cls is GtidEvent or cls is MariadbGtidEvent:
                self._begin_txn(end - pkt.event_size, ev.gtid, False)
            elif cls is NotImplementedEvent:
                if pkt.event_type == BINLOG.ANONYMOUS_GTID_LOG_EVENT:
                    self._begin_txn(end - pkt.event_size, None, False)
                elif pkt.event_type in _UNREADABLE:
                    raise SourceError(f"binlog event at {self.file}:{end} is {_UNREADABLE[pkt.event_type]}, which "
                                      "obsync cannot read: its rows would be lost. Turn it off on the source")
            elif cls is PartialUpdateRowsEvent:
                raise SourceError(f"binlog event at {self.file}:{end} is a partial JSON update, which obsync "
                                  "cannot read: set binlog_row_value_options='' on the source")
            elif cls is RotateEvent:
                self.file = ev.next_binlog
                self.fileno = binlog_file_number(self.file)
                self.pos = ev.position
                self.decoders.clear()
                if not self.in_txn:
                    self.offset = self.offset.event_done(self.file, self.pos)
                end = 0
            elif cls is HeartbeatLogEvent:
                if not self.in_txn and end and ev.ident == self.file and end > self.pos:
                    self.pos = end
                self.flush(force=not self.pending)
                end = 0
            if end > self.pos:  # never backwards: a stream started mid-file begins with the file's header
                self.pos = end
                r.last_commit_time = ev.timestamp or r.last_commit_time
            if self.stop_key is not None and not self.in_txn and (self.fileno, self.pos) >= self.stop_key:
                self.done = True
                return
            if self.bq.active and not self.in_txn:
                self._backfill_step(stream)
            if self.pending and not self.in_txn and (
                    now - self.pending_since > 0.2 or self._idle(stream)):
                self.flush()
            elif not self.pending and not self.in_txn and now - self.last_state_push > 1.0:
                self.flush()

    def _end_txn_at(self, end: int) -> None:
        self.pos = end
        self._end_txn()

    def _txn(self) -> str:
        return self.txn_id or f"{self.offset.file}:{self.offset.pos}"

    def _query(self, ev: QueryEvent, end: int, size: int) -> None:
        q = ev.query
        head = q[:9].upper()
        if head.startswith("BEGIN") or head.startswith("XA START"):
            if not self.in_txn:
                self._begin_txn(end - size, None, True)
            else:
                self.explicit_begin = True
            return
        if head.startswith(("SAVEPOINT", "XA END", "XA PREPAR", "RELEASE")) or \
                q[:12].upper().replace("\n", " ").startswith("ROLLBACK TO"):
            return
        if head.startswith(("COMMIT", "ROLLBACK", "XA COMMIT", "XA ROLLBA")):
            self._end_txn_at(end)
            return
        if not self.in_txn:
            self._begin_txn(end - size, None, False)
        db = ev.schema.decode("utf-8", "replace") if isinstance(ev.schema, (bytes, bytearray)) else ev.schema
        pos = LogPosition(self.file, end, 0)
        outcome = self.tracker.apply_ddl(q, db or None, pos)
        if self.tracker.renamed_in:
            self._backfill_renamed_in(end)
        if outcome is not None and (outcome.touches_tracked or (self.r.emit_untracked_ddl and outcome.tables)):
            if self._wanted(end, 0):
                self._emit(Change(op=Op.DDL, table=outcome.schema, position=pos, commit_time=float(ev.timestamp),
                                  txn=self._txn(), server_id=ev.packet.server_id, ddl=q, ddl_db=db or None,
                                  ddl_tables=outcome.tables))
        if not self.explicit_begin:  # a DDL (or other statement) that is its own transaction
            self._end_txn_at(end)
            self.flush()

    def _wanted(self, end: int, row: int) -> bool:
        key = (self.fileno, end, row)
        if self.skip_key is not None:
            if key <= self.skip_key:
                return False
            self.skip_key = None
        if self.stop_key is not None and (self.fileno, end) > self.stop_key:
            return False
        return True

    def _table_map(self, ev: TableMapEvent, end: int) -> None:
        name = (ev.schema, ev.table)
        sig = table_map_signature(ev.columns)
        tm_names = list(ev.optional_metadata.column_name_list or ()) or None
        nullable = bytes(ev.null_bitmask)
        key = (name, sig, nullable, tuple(tm_names) if tm_names else None)
        cached = self.compiled.get(key)
        tracker = self.tracker
        if cached is not None and cached[0] == tracker.version:
            self.decoders[ev.table_id] = cached[1]
            return
        where = f"{ev.schema}.{ev.table} at {self.file}:{end}"
        schema = tracker.check_table_map(name, ev.columns, tm_names, LogPosition(self.file, end, 0),
                                         self.restart_point())
        dec = RowDecoder(ev.columns, schema, where, nullable)
        self.compiled[key] = (tracker.version, dec)
        self.decoders[ev.table_id] = dec

    def _rows(self, ev: Any, dec: RowDecoder, end: int, op: Op) -> None:
        if self.stop_key is not None and (self.fileno, end) > self.stop_key:
            return
        pkt = ev.packet  # BinLogPacketWrapper: the rows start where the event header parsing stopped
        raw = pkt.packet
        if getattr(pkt, "_BinLogPacketWrapper__data_buffer", b""):
            raise SourceError(f"unexpected read-ahead in rows event at {self.file}:{end}")
        data = raw._data
        start = raw._position
        stop = start + (ev.event_size - pkt.read_bytes)
        where = f"{dec.schema.full_name} at {self.file}:{end}"
        dec.check_bitmap(ev.columns_present_bitmap, where)
        schema = dec.schema
        ts = float(ev.timestamp)
        txn = self._txn()
        sid = pkt.server_id
        file = self.file
        skipping = self.skip_key is not None
        emit = self._emit
        if self.bq.filtering:
            bf = self.bq.filtering.get((schema.db, schema.name))
            if bf is not None:
                emit = lambda c: [self._emit(x) for x in admit(c, bf)]  # noqa: E731 - a one-line wrapper of _emit
        if op is Op.UPDATE:
            dec.check_bitmap(ev.columns_present_bitmap2, where)
            for i, (before, after) in enumerate(dec.row_pairs(data, start, stop, where)):
                if skipping and not self._wanted(end, i):
                    continue
                emit(Change(Op.UPDATE, schema, LogPosition(file, end, i), before, after, ts, txn, sid))
        elif op is Op.INSERT:
            for i, row in enumerate(dec.rows(data, start, stop, where)):
                if skipping and not self._wanted(end, i):
                    continue
                emit(Change(Op.INSERT, schema, LogPosition(file, end, i), None, row, ts, txn, sid))
        else:
            for i, row in enumerate(dec.rows(data, start, stop, where)):
                if skipping and not self._wanted(end, i):
                    continue
                emit(Change(Op.DELETE, schema, LogPosition(file, end, i), row, None, ts, txn, sid))

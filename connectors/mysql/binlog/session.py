"""The reader thread's event loop: turns the replication stream's events into frozen `Change`s and queued batches.

A `Session` lives for one run of a `BinlogReader`'s thread (across reconnects). It keeps the position, the
open transaction, the row decoders of the current table maps and the pending batch; it hands batches with
the resume state of their last change (a `LogOffset`) to its reader's bounded queue. Rows and DDL of tracked
tables become changes; a restart inside a transaction skips exactly the changes handed out before it (the
offset's `last`). Between transactions only, it follows the task's live selection and interleaves backfill
pages with the stream (a MariaDB page waits until the stream reaches its snapshot's position).

Events arrive through `events.LeanStream`: the frequent ones (rows, table maps, GTID, XID, BEGIN/COMMIT,
rotations, heartbeats) parsed from the packet's bytes, the others by mysql-replication; a table map of a
tracked table is parsed fully once per distinct body (`by_body`).

Events mysql-replication cannot decode but that carry rows (compressed transactions, partial JSON updates)
stop the reader with a `SourceError` rather than lose rows.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

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
from obsync.connectors.mysql.binlog.events import (
    DELETE,
    LEAN_TYPES,
    PARTIAL,
    UPDATE,
    WRITE,
    Gtid,
    LeanStream,
    Query,
    Rotate,
    Rows,
    TableMap,
    Xid,
)
from obsync.connectors.mysql.binlog.rows import RowDecoder, table_map_signature
from obsync.connectors.mysql.binlog.schema_policy import SchemaPolicy, conversion_stop
from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker
from obsync.connectors.mysql.binlog.stream import stream_idle
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.changes import Change, Op, Row, new_row_change
from obsync.core.errors import SourceError
from obsync.core.frozen_shapes import ShapeConversionError
from obsync.core.offsets import LogOffset
from obsync.core.positions import LogPosition, binlog_file_number, new_log_position

log = logging.getLogger(__name__)

# The events a session reads (the stream is opened for these).
EVENTS = [RotateEvent, FormatDescriptionEvent, QueryEvent, XidEvent, GtidEvent, MariadbGtidEvent,
          TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, HeartbeatLogEvent, XAPrepareEvent,
          NotImplementedEvent, MariadbGtidListEvent, MariadbBinLogCheckPointEvent, PreviousGtidsEvent, StopEvent,
          PartialUpdateRowsEvent]
# Events that carry data mysql-replication cannot decode: stop rather than lose rows.
_UNREADABLE = {
    40: "a compressed transaction (binlog_transaction_compression=ON)",
    165: "a compressed query (log_bin_compress=ON)",
    **dict.fromkeys(range(166, 172), "a compressed rows event (log_bin_compress=ON)"),
}
_ROWS_OPS = {WriteRowsEvent: Op.INSERT, DeleteRowsEvent: Op.DELETE, UpdateRowsEvent: Op.UPDATE}
_LEAN_OPS = {WRITE: Op.INSERT, DELETE: Op.DELETE, UPDATE: Op.UPDATE}


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    """What the session queues: changes (possibly none) and the resume state right after the last of them."""

    changes: list[Change]
    state: LogOffset


class Owner(Protocol):
    """What a session uses of the `BinlogReader` whose thread runs it: its settings, its bounded queue and
    stop flag (the reader's own, in this package), and the status fields the session keeps up to date."""

    stop_at: LogPosition | None
    sql_endpoint: Endpoint
    batch_size: int
    backfill_page: int
    emit_untracked_ddl: bool
    live: Any | None  # obsync.task.live.Live
    policy: SchemaPolicy  # the task's schema_changes.policy
    last_event_time: float | None
    last_commit_time: float | None
    _queue: queue.Queue[Any]
    _stop: threading.Event

    def _put(self, item: Any) -> bool: ...

    def _answered(self) -> None: ...  # the first event arrived on a new connection


class Session:
    """The thread's view of the stream: position, transaction, decoders and the pending batch.

    The restart point (`restart_file`:`restart_pos`, the start of the open transaction; outside one, `file`:`pos`)
    moves at transaction boundaries; the last change produced is kept per row in `last` (the hot path). `state()`
    builds the `LogOffset` from them, only when a batch or the position is handed on (plain fields here: a frozen
    value built at each of a single-row transaction's two boundaries cost the reader 4-11 % of its time)."""

    def __init__(self, reader: Owner, tracker: SchemaTracker, start: LogOffset) -> None:
        self.r = reader
        self.tracker = tracker
        self.file = start.file
        self.fileno = binlog_file_number(start.file)
        self.pos = start.pos
        self.restart_file, self.restart_pos = start.file, start.pos
        self.skip_key = start.last.sort_key[1:] if start.last is not None else None
        self.last = start.last  # the last change produced
        self.last_gtid = start.gtid  # the GTID of its transaction
        self.stop_key = (binlog_file_number(reader.stop_at.file), reader.stop_at.pos) if reader.stop_at else None
        self.done = False
        self.streamed = False  # an event arrived on the current connection
        self._end_txn()
        self.decoders: dict[int, RowDecoder] = {}
        self.compiled: dict[tuple, tuple[int, RowDecoder]] = {}
        # by the table map's parsed columns (one list per distinct table map body: `table_maps`)
        self.by_columns: dict[int, tuple[list, int, RowDecoder]] = {}
        self.by_body: dict[bytes, tuple[int, RowDecoder]] = {}  # by a lean table map's body (`events`)
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
        self.restart_file, self.restart_pos = self.file, self.pos
        self.txn_id: str | None = None

    def _begin_txn(self, start: int, gtid: str | None, explicit: bool) -> None:
        self.in_txn = True
        self.explicit_begin = explicit
        self.restart_file, self.restart_pos = self.file, start
        self.txn_id = gtid

    def _restart(self) -> tuple[str, int]:
        """The event boundary a new stream starts at: the open transaction's start, else where the stream is."""
        return (self.restart_file, self.restart_pos) if self.in_txn else (self.file, self.pos)

    def restart_point(self) -> LogPosition:
        file, pos = self._restart()
        return LogPosition(file, pos, 0)

    def state(self) -> LogOffset:
        """The resume state as of now: the restart point, the last change handed out, the backfills' progress."""
        file, pos = self._restart()
        return LogOffset(file, pos, self.last, self.last_gtid,
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
            self.r._put(QueuedBatch(batch, self.state()))
            self.last_state_push = time.monotonic()
        elif force or time.monotonic() - self.last_state_push > 1.0:
            # no changes, but the position moved (untracked tables, heartbeats): let the state follow
            try:
                self.r._queue.put_nowait(QueuedBatch([], self.state()))
                self.last_state_push = time.monotonic()
            except queue.Full:
                pass

    def _emit(self, change: Change) -> None:
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending.append(change)
        self.last = change.position  # type: ignore[assignment]  # the binlog stream only yields LogPositions
        self.last_gtid = self.txn_id
        if len(self.pending) >= self.r.batch_size:
            self.flush()

    def _emit_all(self, changes: list[Change]) -> None:
        """`_emit` of each change in turn (the same batches and state), without a call per change."""
        size = self.r.batch_size
        k, n = 0, len(changes)
        while k < n:
            if not self.pending:
                self.pending_since = time.monotonic()
            take = changes[k:k + max(size - len(self.pending), 1)]
            self.pending.extend(take)
            k += len(take)
            self.last = take[-1].position  # type: ignore[assignment]  # the binlog stream only yields LogPositions
            self.last_gtid = self.txn_id
            if len(self.pending) >= size:
                self.flush()

    def _emit_all_admitted(self, bf: Backfill, changes: list[Change]) -> None:
        for change in changes:
            self._emit_admitted(bf, change)

    def _emit_admitted(self, bf: Backfill, change: Change) -> None:
        """A log change of a table being backfilled: emitted as far as the backfill leaves it to the log."""
        for x in admit(change, bf):
            self._emit(x)

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
        assert self.r.live is not None
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
            if time.monotonic() > deadline and not stream_idle(stream):
                return

    # ---- the event loop ------------------------------------------------------------------------------

    def stream_from(self, stream: BinLogStreamReader) -> None:
        r = self.r
        is_tracked = self.tracker.is_tracked
        lean = LeanStream(stream)
        while not r._stop.is_set():
            ev = lean.next()
            if ev is None:
                return
            if not self.in_txn and r.live is not None and r.live.version != self.live_version:
                self._apply_live()  # between transactions, before the next one's first event
            now = time.monotonic()
            r.last_event_time = now
            if not self.streamed:  # the first event on this connection: the source answers again
                self.streamed = True
                r._answered()
            cls = type(ev)
            if cls in LEAN_TYPES:  # the frequent events, parsed from the packet's bytes (`events`)
                end = ev.log_pos
                if cls is Rows:
                    if ev.op == PARTIAL:
                        raise self._partial_update(end)
                    dec = self.decoders.get(ev.table_id)
                    if dec is not None:
                        start, stop, bitmap, bitmap2 = ev.span()
                        self._rows(ev.packet._data, start, stop, bitmap, bitmap2, float(ev.timestamp), ev.server_id,
                                   dec, end, _LEAN_OPS[ev.op])
                elif cls is TableMap:
                    if is_tracked((ev.schema, ev.table)):
                        self._lean_table_map(lean, ev, end)
                    else:
                        self.decoders.pop(ev.table_id, None)
                elif cls is Xid:
                    self._end_txn_at(end)
                elif cls is Gtid:
                    self._begin_txn(end - ev.event_size, ev.gtid, False)
                elif cls is Query:
                    self._query(ev, end, ev.event_size, ev.server_id)
                elif cls is Rotate:
                    end = self._rotate(ev)
                else:  # Heartbeat
                    end = self._heartbeat(ev, end)
            else:
                pkt = ev.packet
                end = pkt.log_pos
                if cls in _ROWS_OPS:
                    dec = self.decoders.get(ev.table_id)
                    if dec is not None:
                        self._library_rows(ev, dec, end, _ROWS_OPS[cls])
                elif cls is TableMapEvent:
                    if is_tracked((ev.schema, ev.table)):
                        self._table_map(ev, end)
                    else:
                        self.decoders.pop(ev.table_id, None)
                elif cls is QueryEvent:
                    self._query(ev, end, pkt.event_size, pkt.server_id)
                elif cls is XidEvent or cls is XAPrepareEvent:
                    self._end_txn_at(end)
                elif cls is GtidEvent or cls is MariadbGtidEvent:
                    self._begin_txn(end - pkt.event_size, ev.gtid, False)
                elif cls is NotImplementedEvent:
                    if pkt.event_type == BINLOG.ANONYMOUS_GTID_LOG_EVENT:
                        self._begin_txn(end - pkt.event_size, None, False)
                    elif pkt.event_type in _UNREADABLE:
                        raise SourceError(f"binlog event at {self.file}:{end} is {_UNREADABLE[pkt.event_type]}, "
                                          "which obsync cannot read: its rows would be lost. Turn it off on the "
                                          "source")
                elif cls is PartialUpdateRowsEvent:
                    raise self._partial_update(end)
                elif cls is RotateEvent:
                    end = self._rotate(ev)
                elif cls is HeartbeatLogEvent:
                    end = self._heartbeat(ev, end)
            if end > self.pos:  # never backwards: a stream started mid-file begins with the file's header
                self.pos = end
                r.last_commit_time = ev.timestamp or r.last_commit_time
            if self.stop_key is not None and not self.in_txn and (self.fileno, self.pos) >= self.stop_key:
                self.done = True
                return
            if self.bq.active and not self.in_txn:
                self._backfill_step(stream)
            if self.pending and not self.in_txn and (
                    now - self.pending_since > 0.2 or stream_idle(stream)):
                self.flush()
            elif not self.pending and not self.in_txn and now - self.last_state_push > 1.0:
                self.flush()

    def _partial_update(self, end: int) -> SourceError:
        return SourceError(f"binlog event at {self.file}:{end} is a partial JSON update, which obsync cannot read: "
                           "set binlog_row_value_options='' on the source")

    def _rotate(self, ev: Any) -> int:
        """A ROTATE event (the library's or lean): the next file; 0 (no position to take from it)."""
        self.file = ev.next_binlog
        self.fileno = binlog_file_number(self.file)
        self.pos = ev.position
        self.decoders.clear()
        if not self.in_txn:
            self.restart_file, self.restart_pos = self.file, self.pos
        return 0

    def _heartbeat(self, ev: Any, end: int) -> int:
        """A server heartbeat (the library's or lean): the position it reached between transactions; 0."""
        if not self.in_txn and end and ev.ident == self.file and end > self.pos:
            self.pos = end
        self.flush(force=not self.pending)
        return 0

    def _end_txn_at(self, end: int) -> None:
        self.pos = end
        self._end_txn()

    def _txn(self) -> str:
        return self.txn_id or f"{self.restart_file}:{self.restart_pos}"

    def _query(self, ev: Any, end: int, size: int, sid: int) -> None:
        """A QUERY event (the library's, or a lean BEGIN/COMMIT)."""
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
        tracker = self.tracker
        tracker.changed.clear()
        outcome = tracker.apply_ddl(q, db or None, pos)
        if tracker.renamed_in:
            self._backfill_renamed_in(end)
        policy = self.r.policy
        if policy.active and tracker.changed:
            changed, tracker.changed = tracker.changed, []
            new = self._wanted(end, 0)
            if new and policy.policy == "stop":
                self.flush(force=True)  # what came before goes out, its state resuming at this statement
            policy.on_ddl(q, db or None, tracker.catalog_dialect(), pos, changed, new)
        if outcome is not None and (outcome.touches_tracked or (self.r.emit_untracked_ddl and outcome.tables)):
            if self._wanted(end, 0):
                self._emit(Change(op=Op.DDL, table=outcome.schema, position=pos, commit_time=float(ev.timestamp),
                                  txn=self._txn(), server_id=sid, ddl=q, ddl_db=db or None,
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
        cols = ev.columns
        seen = self.by_columns.get(id(cols))  # the same parse (`table_maps`): the same decoder, no signature
        if seen is not None and seen[0] is cols and seen[1] == self.tracker.version:
            self.decoders[ev.table_id] = seen[2]
            return
        name = (ev.schema, ev.table)
        sig = table_map_signature(ev.columns)
        tm_names = list(ev.optional_metadata.column_name_list or ()) or None
        nullable = bytes(ev.null_bitmask)
        key = (name, sig, nullable, tuple(tm_names) if tm_names else None)
        cached = self.compiled.get(key)
        tracker = self.tracker
        if cached is not None and cached[0] == tracker.version:
            self.decoders[ev.table_id] = cached[1]
            self._seen_columns(cols, tracker.version, cached[1])
            return
        where = f"{ev.schema}.{ev.table} at {self.file}:{end}"
        schema = tracker.check_table_map(name, ev.columns, tm_names, LogPosition(self.file, end, 0),
                                         self.restart_point())
        dec = RowDecoder(ev.columns, schema, where, nullable)
        self.compiled[key] = (tracker.version, dec)
        self.decoders[ev.table_id] = dec
        self._seen_columns(cols, tracker.version, dec)

    def _lean_table_map(self, lean: LeanStream, ev: TableMap, end: int) -> None:
        """A lean table map of a tracked table: the decoder of the same body (same columns, same tracker
        version), else the library's parse of it, handled as any (`_table_map`)."""
        seen = self.by_body.get(ev.body)
        if seen is not None and seen[0] == self.tracker.version:
            self.decoders[ev.table_id] = seen[1]
            return
        full = lean.full(ev)
        if full is None:  # the library dropped it (as the lean parse would have)
            self.decoders.pop(ev.table_id, None)
            return
        self._table_map(full, end)
        if len(self.by_body) >= 1024:
            self.by_body.clear()
        self.by_body[ev.body] = (self.tracker.version, self.decoders[ev.table_id])

    def _seen_columns(self, cols: list, version: int, dec: RowDecoder) -> None:
        if len(self.by_columns) >= 1024:
            self.by_columns.clear()
        self.by_columns[id(cols)] = (cols, version, dec)  # holding `cols` keeps its id from being reused

    def _library_rows(self, ev: Any, dec: RowDecoder, end: int, op: Op) -> None:
        """A rows event the library parsed: its rows start where its header parsing stopped."""
        pkt = ev.packet  # BinLogPacketWrapper
        raw = pkt.packet
        if getattr(pkt, "_BinLogPacketWrapper__data_buffer", b""):
            raise SourceError(f"unexpected read-ahead in rows event at {self.file}:{end}")
        start = raw._position
        self._rows(raw._data, start, start + (ev.event_size - pkt.read_bytes), ev.columns_present_bitmap,
                   getattr(ev, "columns_present_bitmap2", None), float(ev.timestamp), pkt.server_id, dec, end, op)

    def _rows(self, data: bytes, start: int, stop: int, bitmap: bytes, bitmap2: bytes | None, ts: float, sid: int,
              dec: RowDecoder, end: int, op: Op) -> None:
        """The changes of a rows event whose row images lie in `data[start:stop]`."""
        if self.stop_key is not None and (self.fileno, end) > self.stop_key:
            return
        where = f"{dec.schema.full_name} at {self.file}:{end}"
        dec.check_bitmap(bitmap, where)
        schema = dec.schema
        project = None
        if self.r.policy.active:  # schema_changes.policy ignore: rows in the shape the table's messages keep
            shaped = self.r.policy.plan(schema, self.restart_point())
            if shaped is not None:
                schema, project = shaped
        txn = self._txn()
        file = self.file
        skipping = self.skip_key is not None
        emit_all: Callable[[list[Change]], None] = self._emit_all
        if self.bq.filtering:
            bf = self.bq.filtering.get((schema.db, schema.name))
            if bf is not None:
                emit_all = functools.partial(self._emit_all_admitted, bf)
        if op is Op.UPDATE:
            dec.check_bitmap(bitmap2 or b"", where)
        out: list[Change] = []  # the event's changes, emitted together (the same batches as one by one)
        add, change, position = out.append, new_row_change, new_log_position
        try:
            if op is Op.UPDATE:
                pairs: Iterable[tuple[Row, Row]] = dec.row_pairs(data, start, stop, where)
                if project is not None:
                    pairs = ((project(b), project(a)) for b, a in pairs)
                for i, (before, after) in enumerate(pairs):
                    if skipping and not self._wanted(end, i):
                        continue
                    add(change(Op.UPDATE, schema, position(file, end, i), before, after, ts, txn, sid))
            else:
                rows: Iterable[Row] = dec.rows(data, start, stop, where)
                if project is not None:
                    rows = map(project, rows)
                if op is Op.INSERT:
                    for i, row in enumerate(rows):
                        if skipping and not self._wanted(end, i):
                            continue
                        add(change(Op.INSERT, schema, position(file, end, i), None, row, ts, txn, sid))
                else:
                    for i, row in enumerate(rows):
                        if skipping and not self._wanted(end, i):
                            continue
                        add(change(Op.DELETE, schema, position(file, end, i), row, None, ts, txn, sid))
        except ShapeConversionError as e:  # (ignore) a value the column's old type cannot hold
            emit_all(out)  # the changes before it, as when each was emitted on its own
            raise conversion_stop(schema.full_name, f"{file}:{end}", e) from None
        emit_all(out)

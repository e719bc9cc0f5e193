"""Heartbeats: messages that show a task is alive and where it is, even when the source is idle or every
change is filtered out; and, optionally, a row obsync writes on the source so its log keeps moving (OMS does
the same).

`HeartbeatClock.due(reader)` gives, every `interval` seconds, a `Change(op=HEARTBEAT)` at the log position
the reader has handed out up to; the router sends it to every partition of every topic of the task and each
format renders it (`recordType: HEARTBEAT` in the Default format). Its position is that log position with a
row index past any real row (`HEARTBEAT_ROW` + milliseconds), so the sink's per-stream order and its
deduplication hold: a heartbeat sorts after every change before it and before every change after it, and a
heartbeat inside a long transaction (at the transaction's start) is simply dropped as already passed.

`HeartbeatWriter` upserts `(task, ts)` into a table on the source every `interval` seconds, creating the
table if it is missing (the user needs CREATE and INSERT/UPDATE on it). The table is never synced.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pymysql

from obsync.connectors.mysql.connection import Endpoint, close_quietly, connect, quote_ident
from obsync.connectors.mysql.failures import DRIVER_ERRORS, retryable
from obsync.core.changes import Change, Op
from obsync.core.errors import SourceUnavailable
from obsync.core.positions import LogPosition
from obsync.core.threads import NamedThread

log = logging.getLogger(__name__)

HEARTBEAT_ROW = 1 << 50  # above any row index of a real event; plus the time in ms (monotonic across runs)


class HeartbeatClock:
    """When the log partition emits a heartbeat, and what it carries."""

    def __init__(self, interval: float, clock: Any = time.time) -> None:
        self.interval = interval
        self._clock = clock
        self._next = 0.0
        self._last_ms = 0

    def due(self, reader: Any, busy: bool) -> Change | None:
        """A heartbeat change if one is due (None before the reader has a position)."""
        now = self._clock()
        if self.interval <= 0 or now < self._next:
            return None
        offset = reader.offset()
        if offset is None:
            return None
        self._next = now + self.interval
        ms = max(int(now * 1000), self._last_ms + 1)
        self._last_ms = ms
        # while busy the reader's last event time is the source time the position stands for; idle, now is
        commit = reader.last_commit_time if busy and reader.last_commit_time else now
        return Change(Op.HEARTBEAT, None, LogPosition(offset.file, offset.pos, HEARTBEAT_ROW + ms),
                      commit_time=float(commit))


HEARTBEAT_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  task VARCHAR(64) NOT NULL PRIMARY KEY,
  ts DATETIME(6) NOT NULL
)"""
HEARTBEAT_UPSERT = ("INSERT INTO {table} (task, ts) VALUES (%s, UTC_TIMESTAMP(6))"
                    " ON DUPLICATE KEY UPDATE ts = VALUES(ts)")
# A failed heartbeat write, tried again at the next interval: any SQL error, or the source out of reach.
_WRITE_FAILURES: tuple[type[Exception], ...] = (*DRIVER_ERRORS, SourceUnavailable)


class HeartbeatWriter:
    """A thread that writes the task's heartbeat row on the source every `interval` seconds."""

    def __init__(self, endpoint: Endpoint, table: str, task_name: str, interval: float) -> None:
        db, name = table.split(".")
        self.table_sql = f"{quote_ident(db)}.{quote_ident(name)}"
        self.endpoint = endpoint
        self.task_name = task_name
        self.interval = interval
        self.writes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: pymysql.Connection | None = None

    def write_once(self) -> None:
        """One heartbeat row (creating the table the first time)."""
        if self._conn is None:
            self._conn = connect(self.endpoint)
            with self._conn.cursor() as cur:
                cur.execute(HEARTBEAT_DDL.format(table=self.table_sql))
        with self._conn.cursor() as cur:
            cur.execute(HEARTBEAT_UPSERT.format(table=self.table_sql), (self.task_name,))
        self.writes += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = NamedThread(target=self._run, name="obsync-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            try:
                self.write_once()
                warned = False
            except _WRITE_FAILURES as e:  # best effort: tried again every interval
                self._close()
                if not warned:  # say it once per outage, not every interval
                    why = ("" if retryable(e) else
                           " (check the table's name and that the user may CREATE, INSERT and UPDATE it)")
                    log.warning("cannot write the heartbeat row to %s: %s%s", self.table_sql, e, why)
                    warned = True
            self._stop.wait(self.interval)
        self._close()

    def _close(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

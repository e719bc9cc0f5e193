"""Where incremental sync starts for a task's `start_time`: the binlog position of the first transaction
committed at or after a given time.

    position_at_time(endpoint, when, server_id=...) -> LogPosition   # give it to BinlogReader(start=...)

`when` is an aware datetime (the task file's value is parsed by `obsync.task.start_time`).

The commit time of a transaction is the timestamp of its commit event: the XID event of an InnoDB
transaction, the COMMIT (or ROLLBACK / XA COMMIT) query event of a non-transactional one, the XA_PREPARE
event of a prepared XA transaction (the reader delivers its rows there), and the query event itself for a
DDL or any other statement that is its own transaction. Binlog timestamps are whole seconds of the source's
clock (or of the session's `SET TIMESTAMP`).

The search lists the binlog files (SHOW BINARY LOGS), reads the first timestamped event (the format
description event, written when the file was created) of as few files as a binary search needs, then streams
the candidate file and, if needed, the following ones, tracking where each transaction starts (its GTID /
anonymous GTID event, else its BEGIN or the statement itself) and when it commits. Row events are skipped
unparsed, so the cost is one pass over the bytes of the candidate file(s) on the replication connection.
It assumes commit timestamps do not decrease along the log, which holds on a primary with a sane clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import (
    FormatDescriptionEvent,
    GtidEvent,
    MariadbGtidEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)

from obsync.connectors.mysql.binlog.server_log import binlog_files, current_log_position
from obsync.connectors.mysql.binlog.stream import open_stream
from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import DRIVER_ERRORS, StreamLost, retryable
from obsync.core.errors import PositionLostError, SourceError, SourceUnavailable
from obsync.core.positions import LogPosition, binlog_file_number

log = logging.getLogger(__name__)

UTC = UTC

_TRANSACTION_PAYLOAD = 40  # MySQL binlog_transaction_compression: a whole transaction in one event
_QUERY_COMPRESSED = 165  # MariaDB log_bin_compress: a query event whose text we cannot read
_MARIADB_FL_STANDALONE = 1  # MariaDB GTID flag: the transaction is one statement, no XID / COMMIT follows
# What the scan needs; row events are left out (skipped at packet level), table maps are filtered by the
# empty `only_tables` before their columns are parsed.
_SCAN_EVENTS = [RotateEvent, FormatDescriptionEvent, QueryEvent, XidEvent, XAPrepareEvent, GtidEvent,
                MariadbGtidEvent, NotImplementedEvent]


# ---- the search -------------------------------------------------------------------------------------

def position_at_time(endpoint: Endpoint, when: datetime, *, server_id: int,
                     sql_endpoint: Endpoint | None = None) -> LogPosition:
    """The position to start a `BinlogReader` at so that the first transaction it reads is the first one
    (in log order) committed at or after `when`, and nothing before it.

    `when` must be timezone-aware. Binlog timestamps are whole seconds, so a commit counts as "at or after
    `when`" when its timestamp second is >= floor(`when`): with a `when` that is not a whole second, the
    transactions committed earlier in that same second are included too (at most one second too many,
    never one missing).

    The position is the start offset of that transaction's first event (its GTID / anonymous GTID event,
    else its BEGIN query or the statement itself), which is also the end offset of the event before it,
    with row 0: exactly what `BinlogReader(start=...)` restarts at.

    When no transaction committed at or after `when` is in the binlog yet (`when` is after the last
    commit, or in the future), the server's current position is returned (taken before the search, so no
    commit that happens meanwhile is lost): the reader then starts with the next transaction committed,
    whatever its time (commits before a future `when` are delivered too).

    Raises PositionLostError when `when` is before the first event of the oldest binlog file on the server
    (older binlogs were purged, or binary logging started later): changes from then are not available.
    `server_id` is the replica id of the replication connections (as the reader's); `sql_endpoint`, when
    the binlog comes from a separate service, answers the few SQL queries the replication client makes.
    """
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"position_at_time needs a timezone-aware datetime, not {when!r}")
    target = math.floor(when.timestamp())
    # Before anything else, so that every commit from now on starts at or after it.
    end = current_log_position(endpoint)
    end_no = binlog_file_number(end.file)
    files = [name for name, _ in binlog_files(endpoint) if binlog_file_number(name) <= end_no]
    if not files:
        raise SourceError(f"the server {endpoint.host}:{endpoint.port} lists no binary logs")
    scan = _Scanner(endpoint, sql_endpoint, server_id)

    first = scan.first_time(files[0])
    if target < first:
        raise PositionLostError(
            f"start_time {when.isoformat()} is before the oldest binlog on {endpoint.host}:{endpoint.port}: "
            f"{files[0]} begins at {_iso(first)}; the changes before that are no longer in the binlog (purged, "
            f"or binary logging started then). Use full sync, or a start_time at or after {_iso(first)}")

    # The first commit at or after `target` is in the last file created before `target` (a file created in
    # that very second may have been preceded by commits of that second in the file before it) or later.
    lo, hi = 0, len(files) - 1  # invariant: first_time(files[lo]) < target or lo == 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if scan.first_time(files[mid]) < target:
            lo = mid
        else:
            hi = mid - 1
    found = scan.first_commit_at(files[lo], target, end)
    if found is None:
        log.info("start_time %s: no transaction committed since then in %s..%s; starting at the current "
                 "position %s", when.isoformat(), files[lo], end.file, end)
        return end
    log.info("start_time %s: first transaction committed since then starts at %s", when.isoformat(), found)
    return found


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class _Txns:
    """Transaction boundaries along the log: where the open transaction started, and its commit events.

    `event()` returns the start of the transaction that the event commits, or None."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.in_txn = False
        self.explicit = False  # the transaction ends with an XID / COMMIT, not with its first statement
        self.start = 0

    def rotate(self, file: str) -> None:
        self.file = file  # transactions never span files
        self.in_txn = False

    def begin(self, start: int, explicit: bool) -> None:
        self.in_txn, self.explicit, self.start = True, explicit, start

    def commit(self, start: int) -> LogPosition:
        p = LogPosition(self.file, self.start if self.in_txn else start, 0)
        self.in_txn = False
        return p

    def query(self, start: int, q: str | None) -> LogPosition | None:
        """A query event (`q` None: its text is compressed, so it is an ordinary statement)."""
        head = (q or "")[:12].upper().replace("\n", " ")
        if head.startswith(("BEGIN", "XA START")):
            if self.in_txn:
                self.explicit = True
            else:
                self.begin(start, True)
            return None
        if head.startswith(("SAVEPOINT", "XA END", "RELEASE", "ROLLBACK TO")):
            return None
        if head.startswith(("COMMIT", "ROLLBACK", "XA COMMIT", "XA ROLLBACK")):
            return self.commit(start)
        if not self.in_txn:
            self.begin(start, False)
        return None if self.explicit else self.commit(start)  # a statement that is its own transaction


class _Scanner:
    """Short non-blocking replication streams over the binlog files of one server."""

    def __init__(self, endpoint: Endpoint, sql_endpoint: Endpoint | None, server_id: int) -> None:
        self.endpoint = endpoint
        self.sql_endpoint = sql_endpoint or endpoint
        self.server_id = server_id
        self._first: dict[str, int] = {}

    def _open(self, file: str) -> BinLogStreamReader:
        return open_stream(self.endpoint, self.sql_endpoint, server_id=self.server_id, file=file, pos=4,
                           events=_SCAN_EVENTS, blocking=False,
                           only_tables=[])  # table maps: skip before parsing their columns

    def _events(self, file: str) -> Iterator[Any]:
        """The events from the start of `file` to the end of the binlog, with errors made obsync's."""
        stream = self._open(file)
        try:
            while True:
                try:
                    ev = stream.fetchone()
                except StreamLost as e:
                    raise SourceUnavailable(f"the binlog stream from {self.endpoint!r} dropped while searching "
                                            f"for start_time: {e}") from None
                except DRIVER_ERRORS as e:
                    if retryable(e):
                        raise SourceUnavailable(f"cannot read the binlog of {self.endpoint!r}: {e}") from None
                    raise SourceError(f"reading {file} from {self.endpoint!r} to find start_time failed: {e} "
                                      "(a binlog purged meanwhile? retry)") from None
                if ev is None:
                    return
                yield ev
        finally:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a stream we stopped reading
                pass

    def first_time(self, file: str) -> int:
        """The timestamp of the first timestamped event of `file` (its format description event)."""
        if file in self._first:
            return self._first[file]
        for ev in self._events(file):
            if isinstance(ev, RotateEvent) and ev.packet.log_pos == 0:
                continue  # the server's fake rotate to the file
            ts = ev.packet.timestamp
            if ts:
                self._first[file] = ts
                return ts
        raise SourceError(f"binlog file {file} on {self.endpoint!r} has no timestamped event")

    def first_commit_at(self, file: str, target: int, end: LogPosition) -> LogPosition | None:
        """The start of the first transaction from the start of `file` up to `end` whose commit event's
        timestamp is >= `target`, or None."""
        txns = _Txns(file)
        end_key = (binlog_file_number(end.file), end.pos)
        fileno = binlog_file_number(file)
        for ev in self._events(file):
            pkt = ev.packet
            cls = type(ev)
            if cls is RotateEvent:
                if ev.next_binlog != txns.file:
                    txns.rotate(ev.next_binlog)
                    fileno = binlog_file_number(txns.file)
                    if fileno > end_key[0]:
                        return None
                continue
            start = pkt.log_pos - pkt.event_size
            if (fileno, start) >= end_key:
                return None  # what starts here committed after the search began
            committed: LogPosition | None = None
            if cls is XidEvent or cls is XAPrepareEvent:
                committed = txns.commit(start)
            elif cls is QueryEvent:
                committed = txns.query(start, ev.query)
            elif cls is GtidEvent:
                txns.begin(start, False)
            elif cls is MariadbGtidEvent:
                txns.begin(start, not ev.flags & _MARIADB_FL_STANDALONE)
            elif cls is NotImplementedEvent:
                if pkt.event_type == BINLOG.ANONYMOUS_GTID_LOG_EVENT:
                    txns.begin(start, False)
                elif pkt.event_type == _TRANSACTION_PAYLOAD:
                    committed = txns.commit(start)
                elif pkt.event_type == _QUERY_COMPRESSED:
                    committed = txns.query(start, None)
            if committed is not None and pkt.timestamp >= target:
                return committed
        return None

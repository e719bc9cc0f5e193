"""What a MySQL / MariaDB / OceanBase failure means, and how long obsync keeps trying.

    classify(exc) -> Failure        # TRANSIENT, CONNECTION_LOST, POSITION_PURGED or FATAL
    ReconnectPolicy(...).run(fn, "what")   # fn() again after a failure worth retrying, with backoff

Every error number obsync knows is in one table (`CODES`, built from `_TABLE`), with its name and the class
it belongs to; nothing else in obsync compares error numbers to decide whether to retry. `classify` reads
errors of both SQL drivers (pymysql; mysqlclient, `MySQLdb`, when installed), socket errors, the replication
stream's own `StreamLost` and obsync's `SourceError`s. What each class asks of the caller:

- TRANSIENT: the statement (or its transaction) failed but the session is fine: run it again. Lock waits,
  deadlocks, OceanBase's timeouts, leader switches and rolled-back transactions.
- CONNECTION_LOST: the session is gone or could not be opened: reconnect, then resume after the last thing
  handed out. Also socket errors (OSError, EOFError; not those about local files), a driver's InterfaceError
  (a closed connection), `StreamLost` and `SourceUnavailable`.
- POSITION_PURGED: the server cannot serve the binlog from the position asked for (1236); the caller checks
  whether the position was purged or the stream failed for another reason. `PositionLostError` is this too.
- FATAL: retrying cannot help: refused credentials or privileges, a statement the server rejects, a read
  point that is gone. Also an error number the table does not know (unless the caller says otherwise with
  `unknown`: opening a connection, for one, retries whatever is not a refusal), and any exception that does
  not come from talking to the source.

`ReconnectPolicy` is the one backoff: exponential with a cap and jitter, a budget of attempts and/or seconds
("patience"), and `run()`, the retry loop around a call, whose waits a stop can end (`stoppable_sleep`: an
engine worker is never held up by a source that is away when the task is asked to stop). The policies below:
the log and a snapshot chunk retry as long as the task's `source.patience` allows (10 minutes by default, or
forever; the readers use their endpoint's; a snapshot statement that keeps failing, three times), a SQL
session (schema catalog, row-filter evaluator) reconnects once at once.
Warnings name what is retried and the server's message, never the connection settings (so never a password).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import pymysql

from obsync.core.errors import ObsyncError, PositionLostError, StopWhileWaiting

try:
    import MySQLdb
except ImportError:  # mysqlclient is optional (extra "fast"); pymysql is always there
    MySQLdb = None

log = logging.getLogger(__name__)

T = TypeVar("T")


class Failure(Enum):
    """What a failure asks of the caller (see the module)."""

    TRANSIENT = "transient"
    CONNECTION_LOST = "connection lost"
    POSITION_PURGED = "position purged"
    FATAL = "fatal"

    @property
    def retryable(self) -> bool:
        """True for the classes a retry (after a reconnect, for CONNECTION_LOST) may cure."""
        return self is Failure.TRANSIENT or self is Failure.CONNECTION_LOST


class StreamLost(Exception):
    """The replication connection dropped. Raised by the stream's connection in place of the driver's error
    (`obsync.connectors.mysql.binlog.stream`), so mysql-replication does not reconnect on its own from its
    own position, possibly inside a transaction whose table maps came before it."""


@dataclass(frozen=True, slots=True)
class Code:
    """One error number obsync knows."""

    code: int
    name: str  # the server's or client library's name for it (ER_*, CR_*, OceanBase's OB_*)
    failure: Failure
    hint: str | None = None  # what to do, added to obsync's message where the caller shows hints
    # The number means this only from mysqlclient (libmariadb's client errors); from pymysql it is a server
    # error of the same number (OceanBase uses 5000-5999 for its SQL layer) and is not in the table.
    mysqlclient_only: bool = False


_T, _L, _P, _F = Failure.TRANSIENT, Failure.CONNECTION_LOST, Failure.POSITION_PURGED, Failure.FATAL
_CREDENTIALS = "check user and password"

_TABLE: tuple[Code, ...] = (
    # ---- the statement failed, the session lives: run it again -------------------------------------
    Code(1205, "ER_LOCK_WAIT_TIMEOUT", _T),
    Code(1213, "ER_LOCK_DEADLOCK", _T),
    Code(1317, "ER_QUERY_INTERRUPTED", _T),  # KILL QUERY: the connection stays open
    # OceanBase (MySQL mode). 4012 is also what OceanBase reports for a transaction timeout, an RPC that
    # timed out or failed, a request that waited too long in a queue, an unknown transaction outcome.
    Code(4012, "OB_TIMEOUT", _T, hint="the query ran out of time (ob_query_timeout)"),
    Code(4013, "OB_ALLOCATE_MEMORY_FAILED", _T),  # "No memory or reach tenant memory limit"
    Code(4023, "OB_EAGAIN", _T),  # "Try again"
    Code(4030, "OB_TENANT_OUT_OF_MEM", _T),  # memstore full until the next freeze
    Code(4038, "OB_NOT_MASTER", _T),  # the leader moved: the retry is routed to the new one
    # 6002 also stands for a transaction killed, needing rollback, idle too long, whose context is gone
    Code(6002, "OB_TRANS_ROLLBACKED", _T),
    # ---- the session is gone or cannot be opened now: reconnect, then resume -------------------------
    Code(1040, "ER_CON_COUNT_ERROR", _L),  # too many connections: try again later
    Code(1053, "ER_SERVER_SHUTDOWN", _L),
    Code(1152, "ER_ABORTING_CONNECTION", _L),
    Code(1158, "ER_NET_READ_ERROR", _L),
    Code(1159, "ER_NET_READ_INTERRUPTED", _L),
    Code(1160, "ER_NET_ERROR_ON_WRITE", _L),
    Code(1161, "ER_NET_WRITE_INTERRUPTED", _L),
    Code(1927, "ER_CONNECTION_KILLED", _L),  # MariaDB: KILL of the session
    Code(3169, "ER_SESSION_WAS_KILLED", _L),  # MySQL 8: KILL of the session
    Code(2002, "CR_CONNECTION_ERROR", _L),  # libmariadb: can't connect over TCP (pymysql says 2003)
    Code(2003, "CR_CONN_HOST_ERROR", _L),  # can't connect
    Code(2005, "CR_UNKNOWN_HOST", _L),  # libmariadb: the name does not resolve (now)
    Code(2006, "CR_SERVER_GONE_ERROR", _L),  # gone between statements
    Code(2013, "CR_SERVER_LOST", _L),  # lost during a statement
    Code(2055, "CR_SERVER_LOST_EXTENDED", _L),
    Code(5013, "CR_ERR_NET_READ", _L, mysqlclient_only=True),  # libmariadb: network read error
    Code(5014, "CR_ERR_NET_WRITE", _L, mysqlclient_only=True),  # libmariadb: network write error
    # OceanBase: a statement that reaches a session being killed (likelier with pipelined snapshot pages,
    # whose next query is usually on its way): the session is going, as with MariaDB's 1927.
    Code(5066, "OB_ERR_SESSION_INTERRUPTED", _L),
    # MariaDB: a replica with our server_id is still connected: the stream of a run that was just killed, which
    # the server drops once a heartbeat to its closed socket fails (within a second or so): reconnect.
    Code(4052, "ER_SLAVE_SAME_ID", _L),
    # ---- the binlog cannot be read from the position asked for ---------------------------------------
    # MySQL 8.0.26+ calls it ER_SOURCE_FATAL_ERROR_READING_BINLOG. Mostly a purged binlog, but also a
    # duplicate server_id or an event larger than max_allowed_packet: the caller checks the position.
    Code(1236, "ER_MASTER_FATAL_ERROR_READING_BINLOG", _P),
    # ---- retrying cannot help ------------------------------------------------------------------------
    Code(1044, "ER_DBACCESS_DENIED_ERROR", _F, hint=_CREDENTIALS),
    Code(1045, "ER_ACCESS_DENIED_ERROR", _F, hint=_CREDENTIALS),
    Code(1054, "ER_BAD_FIELD_ERROR", _F),
    Code(1064, "ER_PARSE_ERROR", _F),
    Code(1142, "ER_TABLEACCESS_DENIED_ERROR", _F),
    Code(1146, "ER_NO_SUCH_TABLE", _F),
    Code(1227, "ER_SPECIFIC_ACCESS_DENIED_ERROR", _F),  # e.g. REPLICATION CLIENT missing
    Code(1381, "ER_NO_BINARY_LOGGING", _F),
    # A read at a fixed point (OceanBase's AS OF SNAPSHOT, a consistent-snapshot transaction) of a table
    # altered after that point: the same read fails again.
    Code(1412, "ER_TABLE_DEF_CHANGED", _F,
         hint="the table's definition changed after the snapshot's read point (DDL during full sync): restart "
              "the full sync"),
    # OceanBase: the snapshot's read point is older than the tenant keeps; the same read fails again.
    Code(4138, "OB_SNAPSHOT_DISCARDED", _F,
         hint="the snapshot's read point is older than the tenant keeps (undo_retention): restart the full "
              "sync, and raise undo_retention above the time a full sync takes"),
)

CODES: Mapping[int, Code] = {c.code: c for c in _TABLE}
assert len(CODES) == len(_TABLE), "an error number is in the table twice"

# DRIVER_ERRORS: the error classes of both SQL drivers (what a session on the source raises).
if MySQLdb is not None:
    DRIVER_ERRORS: tuple[type[Exception], ...] = (pymysql.err.MySQLError, MySQLdb.MySQLError)
    _INTERFACE: tuple[type[Exception], ...] = (pymysql.err.InterfaceError, MySQLdb.InterfaceError)
    _OPERATIONAL: tuple[type[Exception], ...] = (pymysql.err.OperationalError, MySQLdb.OperationalError)
else:
    DRIVER_ERRORS = (pymysql.err.MySQLError,)
    _INTERFACE = (pymysql.err.InterfaceError,)
    _OPERATIONAL = (pymysql.err.OperationalError,)

# OSErrors about local files (the schema history, the state directory), not about the source.
_LOCAL_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def error_code(exc: BaseException) -> int | None:
    """The error number of a driver error (server or client), or None."""
    if isinstance(exc, DRIVER_ERRORS) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _known(exc: BaseException) -> Code | None:
    code = error_code(exc)
    known = CODES.get(code) if code is not None else None
    if known is not None and known.mysqlclient_only and not _from_mysqlclient(exc):
        return None
    return known


def _from_mysqlclient(exc: BaseException) -> bool:
    return MySQLdb is not None and isinstance(exc, MySQLdb.MySQLError)


def code_name(exc: BaseException) -> str | None:
    """The table's name of the error's number (`ER_NO_BINARY_LOGGING`), or None when it is not in it."""
    known = _known(exc)
    return known.name if known is not None else None


def hint(exc: BaseException) -> str | None:
    """What to do about the error, when the table says."""
    known = _known(exc)
    return known.hint if known is not None else None


def describe(exc: BaseException) -> str:
    """The error's own message: a driver error's text without its number (the server's words), else
    str(exc). Errors carry no connection settings, so neither does this."""
    if isinstance(exc, DRIVER_ERRORS) and exc.args:
        return str(exc.args[-1])
    return str(exc)


def classify(exc: BaseException, *, unknown: Failure = Failure.FATAL) -> Failure:
    """What `exc` asks of the caller (see the module).

    `unknown`: what an OperationalError with an error number the table does not list counts as (the
    drivers put every server error they do not sort into ProgrammingError, DataError, IntegrityError or
    NotSupportedError there). FATAL by default; opening a connection passes CONNECTION_LOST (only refused
    credentials are final there), and so do the SQL sessions that always reconnected on such errors.
    """
    if isinstance(exc, StreamLost):
        return Failure.CONNECTION_LOST
    if isinstance(exc, ObsyncError):
        if isinstance(exc, PositionLostError):
            return Failure.POSITION_PURGED
        return Failure.CONNECTION_LOST if exc.transient else Failure.FATAL
    if isinstance(exc, DRIVER_ERRORS):
        if isinstance(exc, _INTERFACE):
            return Failure.CONNECTION_LOST  # used after it was closed ("(0, '')")
        known = _known(exc)
        if known is not None:
            return known.failure
        if error_code(exc) is None:  # no number: the drivers' own socket and protocol errors
            return Failure.CONNECTION_LOST if isinstance(exc, _OPERATIONAL) else Failure.FATAL
        return unknown if isinstance(exc, _OPERATIONAL) else Failure.FATAL
    if isinstance(exc, _LOCAL_FILE_ERRORS):
        return Failure.FATAL
    if isinstance(exc, (OSError, EOFError)):  # sockets: reset, refused, timed out, closed mid-packet
        return Failure.CONNECTION_LOST
    return Failure.FATAL


def retryable(exc: BaseException, *, unknown: Failure = Failure.FATAL) -> bool:
    """True when a retry (after a reconnect, for a lost connection) may cure `exc`."""
    return classify(exc, unknown=unknown).retryable


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How long to keep trying: the waits before each retry grow from `initial` by `multiplier` up to
    `cap`, each shortened by a random fraction up to `jitter` (clients that lost the same server do not
    come back in step; never longer, so the cap and the budget hold). The budget: at most `attempts` tries
    in all (the first included; None: no limit), and no retry that would start more than `patience` seconds
    after the first failure (None: no limit). `transient_attempts` caps the tries on which the statement
    failed while the session lived (TRANSIENT: a server that answers, and keeps saying no, is not an outage
    to wait out); None: the same budget as the rest."""

    initial: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2
    attempts: int | None = None
    patience: float | None = None
    transient_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial < 0 or self.multiplier < 1 or self.cap < 0 or not 0 <= self.jitter < 1:
            raise ValueError(f"not a usable reconnect policy: {self!r}")
        if (self.attempts is not None and self.attempts < 1) or (self.patience is not None and self.patience < 0):
            raise ValueError(f"not a usable reconnect policy: {self!r}")
        if self.transient_attempts is not None and self.transient_attempts < 1:
            raise ValueError(f"not a usable reconnect policy: {self!r}")

    def delays(self, rand: Callable[[], float] = random.random,
               clock: Callable[[], float] = time.monotonic) -> Iterator[float]:
        """The waits before the retries, in seconds, until the budget is spent (endless without one). Start
        it at the first failure: `patience` counts from the first value asked for."""
        start = clock()
        delay = min(self.cap, self.initial)
        n = 1  # tries made
        while self.attempts is None or n < self.attempts:
            wait = delay * (1 - self.jitter * rand())
            if self.patience is not None and clock() - start + wait > self.patience:
                return
            yield wait
            n += 1
            delay = min(self.cap, delay * self.multiplier)

    def run(self, fn: Callable[[], T], what: str, *, reset: Callable[[], object] | None = None,
            unknown: Failure = Failure.FATAL, sleep: Callable[[float], object] | None = None,
            on_retry: Callable[[BaseException, float], object] | None = None) -> T:
        """fn(), again after each failure `classify(..., unknown=unknown)` finds retryable, until it returns
        or the budget is spent; the failure that ends it (not retryable, or the last one) is raised as it
        is, for the caller to turn into its own error. `reset` runs after each retryable failure (drop the
        broken connection); each retry is logged as a warning naming `what`, and `on_retry(failure, wait)`
        is told before the wait (to show it elsewhere)."""
        delays: Iterator[float] | None = None
        transient = 0  # tries that failed TRANSIENT
        while True:
            try:
                return fn()
            except Exception as e:
                failure = classify(e, unknown=unknown)
                if not failure.retryable:
                    raise
                if reset is not None:
                    reset()
                if failure is Failure.TRANSIENT:
                    transient += 1
                    if self.transient_attempts is not None and transient >= self.transient_attempts:
                        raise
                if delays is None:
                    delays = self.delays()
                wait = next(delays, None)
                if wait is None:
                    raise
                log.warning("%s: %s; %s in %.1fs", what, describe(e),
                            "reconnecting" if failure is Failure.CONNECTION_LOST else "retrying", wait)
                if on_retry is not None:
                    on_retry(e, wait)
                (sleep or time.sleep)(wait)


STOP_SLICE = 0.2  # s between two looks at whether a stop was requested, while a retry waits


def stoppable_sleep(stopping: Callable[[], bool], what: str) -> Callable[[float], None]:
    """A `sleep` for `ReconnectPolicy.run` that a stop ends: it waits in slices of `STOP_SLICE` s and raises
    `StopWhileWaiting` naming `what` (what was waited for) as soon as `stopping()` is true."""

    def sleep(wait: float) -> None:
        end = time.monotonic() + wait
        while True:
            if stopping():
                raise StopWhileWaiting(f"stopped while {what}; the next start resumes from the last saved point")
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(STOP_SLICE, left))

    return sleep


# Each caller's limits (see the module docstring).
# the binlog stream: its reader uses its endpoint's `source.patience` and its `max_backoff` as the cap
LOG_POLICY = ReconnectPolicy(initial=0.5, cap=30.0, patience=600.0)
# a snapshot chunk: a lost source for up to 10 minutes, the default `source.patience` (the reader uses its
# endpoint's); a statement the server keeps failing 3 times (waits of 0.5 s and 1 s)
SNAPSHOT_POLICY = ReconnectPolicy(initial=0.5, cap=30.0, patience=600.0, transient_attempts=3)
SESSION_POLICY = ReconnectPolicy(initial=0.0, attempts=2)  # schema catalog, row-filter evaluator: once, at once

"""The log offset: where the log partition resumes, as one frozen, validated value.

A `LogOffset` is the binlog reader's resume state (what Bytewax snapshots for the "log" partition). Its JSON
form is the one obsync has always written (version 2; version 1, without backfills, still loads):

    {"version": 2, "file": "binlog.000003", "pos": 4711, "last": ["log", "binlog.000003", 5120, 17] | null,
     "gtid": "0-1-42" (only when known),
     "backfill": {"done": [1], "current": {"n": 2, "table": ["shop", "items"], "attempt": 0,
                                           "hi": [4000], "rows": 4000} | null,
                  "waiting": [...] (only when some)} | null}

- `file`/`pos` (the restart point) is an event boundary to restart the stream at: the start of the
  transaction holding the last change handed out, or the end of the last transaction when everything up to
  it was handed out.
- `last` is the last change handed out; on restart every change at or before it is skipped. A log position
  is (file, end offset of the rows event, index of the row in the event), so `last` says both how many
  events and how many rows of the next event to skip within the transaction, and a restart inside a
  multi-event transaction neither skips nor repeats a row.
- `gtid` is the GTID of the transaction `last` belongs to, for operators; positioning uses `file`/`pos`.
- `backfill` is the progress of the backfills of tables added to the running task
  (`obsync.connectors.mysql.binlog.backfill`), as of `last`.

The binlog session (`obsync.connectors.mysql.binlog.session`) keeps the restart point and `last` in plain
fields as the stream moves and builds a `LogOffset` only when it hands its state on.

`LogOffset.from_dict` is the one loader: anything else (an older or newer obsync's state, a damaged file)
raises `StateError` naming where the state came from, the field, and what to do (`FRESH_STATE_HINT`).
`to_dict()` is plain JSON (lists, dicts, str, int), so Bytewax's pickled snapshots hold no obsync class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obsync.core.errors import StateError
from obsync.core.positions import LogPosition, SnapshotPosition, binlog_file_number, position_from_json

VERSION = 2  # written
READABLE_VERSIONS = (1, 2)  # 1: before backfills (read as having none)

# What actually gets a task going again when its saved state cannot be used.
FRESH_STATE_HINT = (
    "the saved state cannot be resumed: run the task with a new state directory (`--state-dir`), or stop it "
    "and remove its state directory (`obsync delete <task file>`) and run it again. Either starts the task "
    "over: full sync again with sync.full, else incremental sync from the source's current log position")

TableName = tuple[str, str]


def _fail(where: str, field: str, problem: str) -> StateError:
    return StateError(f"{where}: field `{field}` {problem}; {FRESH_STATE_HINT}")


def _int(d: dict[str, Any], key: str, where: str, field: str, default: int | None = None) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(where, field, f"is {v!r}, not an integer")
    return v


def _str(v: Any, where: str, field: str) -> str:
    if not isinstance(v, str) or not v:
        raise _fail(where, field, f"is {v!r}, not a name")
    return v


@dataclass(frozen=True, slots=True)
class BackfillCursor:
    """One backfill's progress: request `n` of table `db`.`table`, written by reader run `attempt`, the
    highest key emitted (`hi`, None before the first row) and the rows emitted."""

    n: int
    db: str
    table: str
    attempt: int = 0
    hi: tuple[Any, ...] | None = None
    rows: int = 0

    @property
    def name(self) -> TableName:
        return (self.db, self.table)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "table": [self.db, self.table], "attempt": self.attempt,
                "hi": None if self.hi is None else SnapshotPosition("", self.hi).to_json()[2], "rows": self.rows}

    @classmethod
    def _load(cls, d: Any, where: str, field: str) -> BackfillCursor:
        if not isinstance(d, dict):
            raise _fail(where, field, f"is {d!r}, not a backfill")
        table = d.get("table")
        if not isinstance(table, list) or len(table) != 2:
            raise _fail(where, f"{field}.table", f"is {table!r}, not [db, table]")
        hi = d.get("hi")
        if hi is not None:
            if not isinstance(hi, list):
                raise _fail(where, f"{field}.hi", f"is {hi!r}, not an encoded key")
            try:
                hi = position_from_json(["snap", "", hi]).key  # type: ignore[union-attr]  # a "snap" JSON position is a SnapshotPosition
            except (ValueError, TypeError, KeyError, ArithmeticError) as e:
                raise _fail(where, f"{field}.hi", f"is {hi!r}, not an encoded key ({e})") from None
        return cls(_int(d, "n", where, f"{field}.n"), _str(table[0], where, f"{field}.table"),
                   _str(table[1], where, f"{field}.table"), _int(d, "attempt", where, f"{field}.attempt", 0),
                   hi, _int(d, "rows", where, f"{field}.rows", 0))


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """The log partition's backfills: the request numbers done, the one running, and the waiting ones the
    log itself asked for (negative numbers: tables renamed into the rules; the task's own requests are
    given again on every start, so they are not kept)."""

    done: tuple[int, ...] = ()
    current: BackfillCursor | None = None
    waiting: tuple[BackfillCursor, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"done": sorted(self.done),
                               "current": self.current.to_dict() if self.current is not None else None}
        if self.waiting:
            out["waiting"] = [b.to_dict() for b in self.waiting]
        return out

    @classmethod
    def _load(cls, d: Any, where: str) -> BackfillProgress:
        if not isinstance(d, dict):
            raise _fail(where, "backfill", f"is {d!r}, not the backfills' progress")
        done = d.get("done", [])
        if not isinstance(done, list) or any(isinstance(n, bool) or not isinstance(n, int) for n in done):
            raise _fail(where, "backfill.done", f"is {done!r}, not a list of request numbers")
        cur = d.get("current")
        waiting = d.get("waiting", [])
        if not isinstance(waiting, list):
            raise _fail(where, "backfill.waiting", f"is {waiting!r}, not a list")
        return cls(tuple(done), None if cur is None else BackfillCursor._load(cur, where, "backfill.current"),
                   tuple(BackfillCursor._load(b, where, f"backfill.waiting.{i}") for i, b in enumerate(waiting)))


@dataclass(frozen=True, slots=True)
class LogOffset:
    """Where the log partition resumes (see the module docstring)."""

    file: str
    pos: int
    last: LogPosition | None = None
    gtid: str | None = None
    backfill: BackfillProgress | None = None

    @classmethod
    def starting_at(cls, p: LogPosition) -> LogOffset:
        """A fresh start at event boundary `p` (its row index is ignored): nothing handed out yet."""
        return cls(p.file, p.pos)

    @property
    def restart_point(self) -> LogPosition:
        """The event boundary a new stream starts at."""
        return LogPosition(self.file, self.pos, 0)

    def skips(self, p: LogPosition) -> bool:
        """True for a change at or before `last`: handed out already, skipped on restart."""
        return self.last is not None and p.sort_key <= self.last.sort_key

    # ---- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": VERSION, "file": self.file, "pos": self.pos,
                               "last": self.last.to_json() if self.last is not None else None,
                               "backfill": self.backfill.to_dict() if self.backfill is not None else None}
        if self.gtid is not None:
            out["gtid"] = self.gtid
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "the binlog resume state") -> LogOffset:
        """The offset a `to_dict()` of this or an earlier compatible obsync describes; `StateError` (naming
        `where` and the field) for anything else."""
        if not isinstance(d, dict):
            raise StateError(f"{where} is {type(d).__name__} {d!r:.80}, not a binlog resume state; "
                             f"{FRESH_STATE_HINT}")
        version = d.get("version")
        if version not in READABLE_VERSIONS:
            newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
            raise StateError(f"{where} has version {version!r}: it was written by "
                             f"{'a newer' if newer else 'an older'} obsync (this one reads versions "
                             f"{', '.join(map(str, READABLE_VERSIONS))}); {FRESH_STATE_HINT}")
        file = _str(d.get("file"), where, "file")
        try:
            binlog_file_number(file)
        except ValueError as e:
            raise _fail(where, "file", str(e)) from None
        pos = _int(d, "pos", where, "pos")
        if pos < 0:
            raise _fail(where, "pos", f"is {pos}, a negative offset")
        raw_last = d.get("last")
        last = None
        if raw_last is not None:
            try:
                p = position_from_json(raw_last)
                if isinstance(p, LogPosition):
                    binlog_file_number(p.file)
                    last = p
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                pass
            if last is None:
                raise _fail(where, "last", f"is {raw_last!r}, not a log position")
        gtid = d.get("gtid")
        if gtid is not None and not isinstance(gtid, str):
            raise _fail(where, "gtid", f"is {gtid!r}, not a GTID")
        raw_bf = d.get("backfill")
        backfill = None if raw_bf is None else BackfillProgress._load(raw_bf, where)
        return cls(file, pos, last, gtid, backfill)

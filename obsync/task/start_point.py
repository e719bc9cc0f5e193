"""The task's start point (`start.json` in its state directory), as one frozen, validated value.

The start point is fixed once, on the task's first start (under the state directory's lock, so every process
of the task agrees on it), and changes only by the named transitions below when the table selection changes.
Its JSON form is the one obsync has always written:

    {"tables": ["shop.items", "shop.orders"],            every table selected at the start or added since
     "rules": {"match": ["shop.*"], "exclude": []},      the selection it was fixed under (absent: older obsync)
     "lanes": 8,                                         the Kafka sink's lanes (absent: older obsync, refused)
     "log": ["log", "binlog.000003", 4711, 0],          where incremental sync starts (absent without it)
     "plan": {...},                                      the full sync's chunks and read point, OceanBase SCN
                                                         included (`connectors.mysql.snapshot.plan`; absent
                                                         without full sync)
     "backfills": [{"n": 1, "table": ["shop", "new"]}]}  tables added later, to backfill (absent: none)

`StartPoint.from_dict` is the one loader (`TaskState.load_start` reads the file through it): a start point it
cannot use raises `StateError` naming the file, the field and what to do. Keys it does not know are kept as
they are when the start point is written again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from obsync.core.errors import StateError
from obsync.core.offsets import FRESH_STATE_HINT
from obsync.core.positions import LogPosition, binlog_file_number, position_from_json

START_FILE = "start.json"

TableName = tuple[str, str]
BackfillRequest = tuple[int, str, str]  # (request number, db, table)

_KNOWN = frozenset({"tables", "rules", "lanes", "log", "plan", "backfills"})


@dataclass(frozen=True, slots=True)
class SelectionRules:
    """What decides which tables a task syncs (kept in the start point to notice a change)."""

    match: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {"match": list(self.match), "exclude": list(self.exclude)}

    def __str__(self) -> str:
        return str(self.to_dict())


@dataclass(frozen=True)
class StartPoint:
    """Where a task starts and what it started with (see the module docstring)."""

    tables: frozenset[TableName]
    lanes: int
    rules: SelectionRules | None = None
    log: LogPosition | None = None  # None without incremental sync
    plan: dict[str, Any] | None = None  # SnapshotPlan.to_dict() (owned by the snapshot), None without full sync
    backfills: tuple[BackfillRequest, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # keys this obsync ignores

    @property
    def scn(self) -> int | None:
        """The OceanBase read point the full sync reads at (None elsewhere, or without full sync)."""
        scn = (self.plan or {}).get("scn")
        return None if scn is None else int(scn)

    @property
    def full_sync_chunks(self) -> int:
        return len((self.plan or {}).get("chunks", []))

    # ---- transitions --------------------------------------------------------------------------------

    def with_selection(self, rules: SelectionRules, added: Iterable[TableName] = ()) -> StartPoint:
        """The task's selection is now `rules`; `added` tables joined it."""
        return replace(self, rules=rules, tables=self.tables | frozenset(added))

    def with_backfills(self, tables: Iterable[TableName]) -> tuple[StartPoint, list[BackfillRequest]]:
        """Record a backfill request for each of `tables` (numbers continue the existing ones); the new
        start point and the requests made."""
        n = max((b[0] for b in self.backfills), default=0)
        made: list[BackfillRequest] = []
        for db, table in sorted(tables):
            n += 1
            made.append((n, db, table))
        return replace(self, backfills=self.backfills + tuple(made)), made

    # ---- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["tables"] = sorted(f"{d}.{t}" for d, t in self.tables)
        if self.rules is not None:
            out["rules"] = self.rules.to_dict()
        out["lanes"] = self.lanes
        if self.log is not None:
            out["log"] = self.log.to_json()
        if self.plan is not None:
            out["plan"] = self.plan
        if self.backfills:
            out["backfills"] = [{"n": n, "table": [db, table]} for n, db, table in self.backfills]
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str | Path = START_FILE) -> StartPoint:
        """The start point a `to_dict()` of this or an earlier compatible obsync describes (`where` names
        the file in errors); `StateError` for anything else."""
        if not isinstance(d, dict):
            raise StateError(f"{where} holds {type(d).__name__} {d!r:.80}, not a start point; {FRESH_STATE_HINT}")
        if "lanes" not in d:
            raise StateError(f"{where} was written by an older obsync (no Kafka sink lanes); {FRESH_STATE_HINT}")
        lanes = d["lanes"]
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise _fail(where, "lanes", f"is {lanes!r}, not a number of lanes")
        return cls(_tables(d.get("tables", []), where), lanes, _rules(d.get("rules"), where),
                   _log(d.get("log"), where), _plan(d.get("plan"), where), _backfills(d.get("backfills", []), where),
                   {k: v for k, v in d.items() if k not in _KNOWN})


def _fail(where: str | Path, name: str, problem: str) -> StateError:
    return StateError(f"{where}: field `{name}` {problem}; {FRESH_STATE_HINT}")


def _tables(v: Any, where: str | Path) -> frozenset[TableName]:
    if not isinstance(v, list) or not all(isinstance(t, str) and "." in t for t in v):
        raise _fail(where, "tables", f"is {v!r:.80}, not a list of db.table names")
    return frozenset((db, table) for db, table in (t.split(".", 1) for t in v))


def _rules(v: Any, where: str | Path) -> SelectionRules | None:
    if v is None:
        return None

    def names(key: str) -> tuple[str, ...]:
        items = v.get(key, [])
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise _fail(where, f"rules.{key}", f"is {items!r:.80}, not a list of patterns")
        return tuple(items)

    if not isinstance(v, dict):
        raise _fail(where, "rules", f"is {v!r:.80}, not the selection rules")
    return SelectionRules(names("match"), names("exclude"))


def _log(v: Any, where: str | Path) -> LogPosition | None:
    if v is None:
        return None
    try:
        p = position_from_json(v)
        if isinstance(p, LogPosition):
            binlog_file_number(p.file)
            return p
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        pass
    raise _fail(where, "log", f"is {v!r:.80}, not a log position")


def _plan(v: Any, where: str | Path) -> dict[str, Any] | None:
    if v is not None and not isinstance(v, dict):
        raise _fail(where, "plan", f"is {v!r:.80}, not a full sync plan")
    return v


def _backfills(v: Any, where: str | Path) -> tuple[BackfillRequest, ...]:
    out: list[BackfillRequest] = []
    if not isinstance(v, list):
        raise _fail(where, "backfills", f"is {v!r:.80}, not a list")
    for i, b in enumerate(v):
        n = b.get("n") if isinstance(b, dict) else None
        table = b.get("table") if isinstance(b, dict) else None
        if (isinstance(n, bool) or not isinstance(n, int) or not isinstance(table, list) or len(table) != 2
                or not all(isinstance(x, str) for x in table)):
            raise _fail(where, f"backfills.{i}", f"is {b!r:.80}, not {{\"n\": number, \"table\": [db, table]}}")
        out.append((n, table[0], table[1]))
    return tuple(out)

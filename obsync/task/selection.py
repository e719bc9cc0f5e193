"""Which tables a task syncs: its `objects:` include rules and `exclude:` patterns.

A rule is `database.table`, each side an exact name or a pattern: `*` any run of characters (possibly
empty), `?` exactly one character, `[abc]` / `[a-z]` one of the set, `[!abc]` one character not in it.
Matching is case-sensitive and the two sides are matched separately (names cannot contain `.`). A table is
synced when an include rule matches it and no exclude pattern does; when several include rules match, the
first one in list order gives its settings.

Names obsync cannot carry (non-ASCII, spaces, ``. | " ' \\ ` ( ) = ; / &`` and line breaks) are refused
with an error naming the table (`obsync.task.naming.table_name_problem`); exclude them to sync the rest of a
pattern.

Engine- and server-free: `Selection.rule_for(db, table)` is what the runtime, the dry run and the binlog
reader (for tables created while the task runs) ask. A rule is anything with a `match` (the task file's
`ObjectConfig`, whose module imports this one, never the other way round).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, Protocol, TypeVar

from obsync.core.errors import ConfigError
from obsync.task.naming import table_name_problem

TableName = tuple[str, str]

_PATTERN_CHARS = frozenset("*?[")
# Schemas that are never user tables (MySQL, MariaDB, OceanBase).
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys", "oceanbase",
                            "__public", "__recyclebin", "LBACSYS", "ORAAUDITOR"})


def is_pattern(text: str) -> bool:
    """True when `text` holds a wildcard (`*`, `?`, `[`) rather than being an exact name."""
    return any(c in _PATTERN_CHARS for c in text)


def _translate(part: str, where: str) -> str:
    """The regular expression of one side (database or table) of a pattern."""
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            negate = j < len(part) and part[j] == "!"
            if negate:
                j += 1
            k = j + 1 if j < len(part) and part[j] == "]" else j  # `[]abc]`: a leading ] is a member
            end = part.find("]", k)
            if end < 0:
                raise ValueError(f"unclosed '[' in {where}")
            members = part[j:end]
            if not members:
                raise ValueError(f"empty set '[]' in {where}")
            body = "".join("\\" + m if m in "\\^]" else m for m in members)
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    if pattern.count(".") != 1:
        raise ValueError(f"must be 'database.table' (a pattern or a name on each side), got {pattern!r}")
    db, table = pattern.split(".")
    if not db or not table:
        raise ValueError(f"must be 'database.table' with both sides set, got {pattern!r}")
    return (re.compile(_translate(db, f"{pattern!r}") + r"\Z"),
            re.compile(_translate(table, f"{pattern!r}") + r"\Z"))


def check_pattern(pattern: str) -> None:
    """Raise ValueError naming what is wrong with a `database.table` rule."""
    _compile(pattern)
    if not is_pattern(pattern):
        for side in pattern.split("."):
            problem = table_name_problem(side)
            if problem:
                raise ValueError(f"cannot sync {pattern!r}: {problem}")


def matches(pattern: str, db: str, table: str) -> bool:
    """True when the `database.table` rule matches the table."""
    dbre, tre = _compile(pattern)
    return dbre.match(db) is not None and tre.match(table) is not None


@dataclass(frozen=True, slots=True)
class Selected:
    """A table chosen by the task, with the index of the `objects:` entry whose settings it takes."""

    db: str
    table: str
    index: int

    @property
    def name(self) -> TableName:
        return (self.db, self.table)


class Rule(Protocol):
    """An include rule: a `database.table` name or pattern (the task file's `ObjectConfig` is one)."""

    @property
    def match(self) -> str: ...


R = TypeVar("R", bound=Rule)


class Selection(Generic[R]):
    """A task's include rules (its objects, in order) and exclude patterns."""

    def __init__(self, objects: Sequence[R], exclude: Iterable[str] = ()) -> None:
        self.objects = tuple(objects)
        self.exclude = tuple(exclude)
        for p in (*(o.match for o in self.objects), *self.exclude):
            _compile(p)
        self._cache: dict[TableName, int | None] = {}

    def index_for(self, db: str, table: str) -> int | None:
        """The index of the first object matching the table, or None (no rule, or excluded)."""
        key = (db, table)
        hit = self._cache.get(key, -1)
        if hit != -1:
            return hit
        found: int | None = None
        if db not in SYSTEM_SCHEMAS and not any(matches(p, db, table) for p in self.exclude):
            found = next((i for i, o in enumerate(self.objects) if matches(o.match, db, table)), None)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = found
        return found

    def rule_for(self, db: str, table: str) -> R | None:
        """The settings of the table (its first matching object), or None when it is not synced."""
        i = self.index_for(db, table)
        return None if i is None else self.objects[i]

    def __contains__(self, name: TableName) -> bool:
        return self.index_for(*name) is not None

    def excluded_by(self, db: str, table: str) -> str | None:
        """The exclude pattern that removes the table, if any."""
        return next((p for p in self.exclude if matches(p, db, table)), None)

    def select(self, tables: Iterable[TableName]) -> list[Selected]:
        """The synced tables among `tables` (e.g. every table on the source), sorted by name."""
        out = []
        for db, table in sorted(set(tables)):
            i = self.index_for(db, table)
            if i is not None:
                out.append(Selected(db, table, i))
        return out

    def check_names(self, selected: Iterable[Selected]) -> None:
        """Refuse a selected table whose name obsync cannot carry, naming it and the rule that chose it."""
        for s in selected:
            for side in (s.db, s.table):
                problem = table_name_problem(side)
                if problem:
                    raise ConfigError(
                        f"objects.{s.index} ({self.objects[s.index].match!r}) selects table {s.db!r}.{s.table!r}, "
                        f"whose name obsync cannot carry: {problem}. Add it to `exclude:` (or rename it)")

    def schemas(self) -> list[str] | None:
        """The databases the rules can match, or None when a rule's database side is a pattern."""
        dbs = set()
        for o in self.objects:
            db = o.match.split(".")[0]
            if is_pattern(db):
                return None
            dbs.add(db)
        return sorted(dbs)

"""The persisted history of tracked tables' definitions, so a resume knows the schema at its position.

An append-only sequence of JSON lines, kept by a `HistoryStore`: the file `schema_history.jsonl` in the
directory given (`FileHistoryStore`), or any store with the same two methods (a cluster keeps them in the
task's control topic, `obsync.runtime.cluster`). Each line records the definition of one table from a log
position on:

    {"pos": ["log", "binlog.000003", 1234, 0], "db": "shop", "table": "orders",
     "def": {"schema": {...TableSchema.to_dict()...}, "keys": [...], "charset": "utf8mb4"} | null,
     "cause": "start" | "ddl" | "refresh", "ddl": "ALTER TABLE ..." | null}

`def: null` means the table does not exist from that position on (dropped, renamed away, not yet created).
The definition valid at position P is the last entry with position <= P (ties: the later line). A DDL event
ending at offset E is recorded at (file, E, 0), so a stream restarted at E already has it applied and one
restarted before E applies it again (recording it again is skipped when identical).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from obsync.core.errors import StateError
from obsync.core.positions import LogPosition, position_from_json
from obsync.sql.ddl import TableDef, TableName

log = logging.getLogger(__name__)

HISTORY_FILE = "schema_history.jsonl"
T = TypeVar("T")


class HistoryStore(Protocol):
    """Where the history's lines are kept, in the order they were appended."""

    def lines(self) -> list[str]: ...

    def append(self, line: str) -> None: ...


class FileHistoryStore:
    """The lines in `<directory>/schema_history.jsonl`, each appended with an fsync; a last line cut short by a
    crash is dropped (that entry never counted)."""

    def __init__(self, directory: str | os.PathLike[str], file: str = HISTORY_FILE) -> None:
        self.path = Path(directory) / file
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if lines and lines[-1].strip():
            try:
                json.loads(lines[-1])
            except ValueError as e:
                log.warning("schema history %s: ignoring an incomplete last line (%s)", self.path, e)
                lines = lines[:-1]
                self.path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return lines

    def append(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def __str__(self) -> str:
        return str(self.path)


class Timeline(Generic[T]):
    """Values of tables by log position, as a store's JSON lines hold them: each line `{"pos", "db", "table",
    field: value | null, ...}`; the value at P is the last entry at or before P (ties: the later line). Serves
    the definitions (`SchemaHistory`) and the shapes the `ignore` policy keeps (`schema_policy.ShapeHistory`).
    `decode` turns a line's non-null value into T; `damaged` is the error's text after "line N: cause; "."""

    def __init__(self, store: HistoryStore | None, field: str, decode: Callable[[Any], T], what: str,
                 damaged: str) -> None:
        self.store = store
        self.field = field
        # per table: list of (sort key, sequence, value or None), in line order
        self._entries: dict[TableName, list[tuple[tuple[int, int, int, int], int, T | None]]] = {}
        self._seq = 0
        for n, line in enumerate(store.lines() if store is not None else (), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                pos = position_from_json(rec["pos"])
                value = decode(rec[field]) if rec[field] is not None else None
                name = (rec["db"], rec["table"])
            except (ValueError, KeyError, TypeError) as e:
                raise StateError(f"{what} {store} {'are' if what.endswith('s') else 'is'} damaged at line {n}: "
                                 f"{e}; {damaged}") from None
            assert isinstance(pos, LogPosition)
            self._add(name, pos, value)

    def _add(self, name: TableName, pos: LogPosition, value: T | None) -> None:
        self._seq += 1
        self._entries.setdefault(name, []).append((pos.sort_key, self._seq, value))

    def at(self, name: TableName, pos: LogPosition) -> tuple[bool, T | None]:
        """(known, value) of a table at `pos`; known is False when no entry is at or before it."""
        key = pos.sort_key
        best = max(((k, q, v) for k, q, v in self._entries.get(name, ()) if k <= key),
                   key=lambda e: (e[0], e[1]), default=None)
        return (False, None) if best is None else (True, best[2])

    def record(self, name: TableName, pos: LogPosition, value: T | None, encoded: Any, **extra: Any) -> None:
        """Append an entry (skipped when the same value is already recorded at `pos`); `encoded`: the value as
        its line holds it; `extra`: more fields of the line."""
        if any(k == pos.sort_key and v == value for k, _, v in self._entries.get(name, ())):
            return
        self._add(name, pos, value)
        if self.store is not None:
            rec = {"pos": pos.to_json(), "db": name[0], "table": name[1], self.field: encoded, **extra}
            self.store.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))

    def tables(self) -> set[TableName]:
        return set(self._entries)


class SchemaHistory:
    """Definitions of tables by log position: in `store` (a directory: `FileHistoryStore`), in memory only
    when it is None."""

    def __init__(self, store: str | os.PathLike[str] | HistoryStore | None) -> None:
        self.store: HistoryStore | None = (FileHistoryStore(store) if isinstance(store, str | os.PathLike)
                                           else store)
        self._timeline: Timeline[TableDef] = Timeline(
            self.store, "def", TableDef.from_dict, "schema history", "restore it or restart the task with full sync")

    def at(self, name: TableName, pos: LogPosition) -> tuple[bool, TableDef | None]:
        """(known, definition) of a table at `pos`; known is False when no entry is at or before it."""
        return self._timeline.at(name, pos)

    def record(self, name: TableName, pos: LogPosition, d: TableDef | None, cause: str,
               ddl: str | None = None) -> None:
        """Append an entry (skipped when the same definition is already recorded at `pos`)."""
        self._timeline.record(name, pos, d, d.to_dict() if d is not None else None, cause=cause, ddl=ddl)

    def tables(self) -> set[TableName]:
        return self._timeline.tables()

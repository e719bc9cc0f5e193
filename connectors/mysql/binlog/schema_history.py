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
from pathlib import Path
from typing import Any, Protocol

from obsync.core.errors import StateError
from obsync.core.positions import LogPosition, position_from_json
from obsync.sql.ddl import TableDef, TableName

log = logging.getLogger(__name__)

HISTORY_FILE = "schema_history.jsonl"


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


class SchemaHistory:
    """Definitions of tables by log position: in `store` (a directory: `FileHistoryStore`), in memory only
    when it is None."""

    def __init__(self, store: str | os.PathLike[str] | HistoryStore | None) -> None:
        self.store: HistoryStore | None = (FileHistoryStore(store) if isinstance(store, str | os.PathLike)
                                           else store)
        # per table: list of (sort key, sequence, definition or None), in file order
        self._entries: dict[TableName, list[tuple[tuple[int, int, int, int], int, TableDef | None]]] = {}
        self._seq = 0
        if self.store is not None:
            self._load()

    def _load(self) -> None:
        assert self.store is not None
        for n, line in enumerate(self.store.lines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                pos = position_from_json(rec["pos"])
                d = TableDef.from_dict(rec["def"]) if rec["def"] is not None else None
                name = (rec["db"], rec["table"])
            except (ValueError, KeyError, TypeError) as e:
                raise StateError(f"schema history {self.store} is damaged at line {n}: {e}; "
                                 "restore it or restart the task with full sync") from None
            assert isinstance(pos, LogPosition)
            self._add(name, pos, d)

    def _add(self, name: TableName, pos: LogPosition, d: TableDef | None) -> None:
        self._seq += 1
        self._entries.setdefault(name, []).append((pos.sort_key, self._seq, d))

    def at(self, name: TableName, pos: LogPosition) -> tuple[bool, TableDef | None]:
        """(known, definition) of a table at `pos`; known is False when no entry is at or before it."""
        best = None
        key = pos.sort_key
        for entry in self._entries.get(name, ()):
            if entry[0] <= key and (best is None or (entry[0], entry[1]) > (best[0], best[1])):
                best = entry
        if best is None:
            return False, None
        return True, best[2]

    def record(self, name: TableName, pos: LogPosition, d: TableDef | None, cause: str,
               ddl: str | None = None) -> None:
        """Append an entry (skipped when the same definition is already recorded at `pos`)."""
        for entry in self._entries.get(name, ()):
            if entry[0] == pos.sort_key and entry[2] == d:
                return
        self._add(name, pos, d)
        if self.store is None:
            return
        rec: dict[str, Any] = {"pos": pos.to_json(), "db": name[0], "table": name[1],
                               "def": d.to_dict() if d is not None else None, "cause": cause, "ddl": ddl}
        self.store.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))

    def tables(self) -> set[TableName]:
        return set(self._entries)

"""The persisted history of tracked tables' definitions, so a resume knows the schema at its position.

One append-only JSON-lines file, `schema_history.jsonl`, in the directory given. Each line records the
definition of one table from a log position on:

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
from typing import Any

from obsync.core.errors import StateError
from obsync.core.positions import LogPosition, position_from_json
from obsync.sql.ddl import TableDef, TableName

log = logging.getLogger(__name__)

HISTORY_FILE = "schema_history.jsonl"


class SchemaHistory:
    """Definitions of tables by log position; in memory only when `directory` is None."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.path = Path(directory) / HISTORY_FILE if directory is not None else None
        # per table: list of (sort key, sequence, definition or None), in file order
        self._entries: dict[TableName, list[tuple[tuple[int, int, int, int], int, TableDef | None]]] = {}
        self._seq = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self._load()

    def _load(self) -> None:
        assert self.path is not None
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                pos = position_from_json(rec["pos"])
                d = TableDef.from_dict(rec["def"]) if rec["def"] is not None else None
                name = (rec["db"], rec["table"])
            except (ValueError, KeyError, TypeError) as e:
                if n == len(lines):  # a write cut short by a crash: the entry never counted
                    log.warning("schema history %s: ignoring an incomplete last line (%s)", self.path, e)
                    self._truncate_last_line(len(lines) - 1)
                    break
                raise StateError(f"schema history {self.path} is damaged at line {n}: {e}; "
                                 "restore it or restart the task with full sync") from None
            assert isinstance(pos, LogPosition)
            self._add(name, pos, d)

    def _truncate_last_line(self, keep: int) -> None:
        assert self.path is not None
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:keep]
        self.path.write_text("".join(lines), encoding="utf-8")

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
        if self.path is None:
            return
        rec: dict[str, Any] = {"pos": pos.to_json(), "db": name[0], "table": name[1],
                               "def": d.to_dict() if d is not None else None, "cause": cause, "ddl": ddl}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def tables(self) -> set[TableName]:
        return set(self._entries)

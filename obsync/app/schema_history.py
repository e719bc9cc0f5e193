"""`obsync schema-history`: every synced table as of a log position, rebuilt from the task's schema-history topic
alone (`obsync.formats.schema_history`), printed as CREATE TABLE statements or JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition
from obsync.formats.schema_history import create_table_sql, replay
from obsync.runtime.prepare import kafka_conf
from obsync.runtime.schema_history import read_history
from obsync.task.config import TaskConfig

_POSITION = re.compile(r"^(?P<file>[^:#\s]+\.\d+):(?P<pos>\d+)(?:#(?P<row>\d+))?$")


def parse_position(text: str) -> LogPosition:
    """`file:pos` or `file:pos#row` (as `obsync status` prints positions)."""
    m = _POSITION.match(text.strip())
    if m is None:
        raise ConfigError(f"--at {text!r}: not a log position; write FILE:POS (e.g. mysql-bin.000003:1234), "
                          "optionally #ROW")
    return LogPosition(m["file"], int(m["pos"]), int(m["row"] or 0))


def tables_at(task: TaskConfig, at: LogPosition | None) -> dict[tuple[str, str], dict[str, Any]]:
    """Each table's structure at `at` (the latest without it), from the task's history topic."""
    if not task.schema_history.enabled:
        raise ConfigError("field `schema_history.enabled`: the task keeps no schema history; set "
                          "schema_history: {enabled: true} and run it")
    return replay(read_history(kafka_conf(task), task.resolved_history_topic()), at)


def render(tables: dict[tuple[str, str], dict[str, Any]], as_json: bool) -> str:
    if as_json:
        return json.dumps([{"database": db, "table": t, "structure": s} for (db, t), s in sorted(tables.items())],
                          indent=2)
    return "\n\n".join(create_table_sql(db, t, s) + ";" for (db, t), s in sorted(tables.items()))

"""Object settings as CSV: one row per table, for editing many tables in a spreadsheet.

Columns (a header row is required, in any order; `database` and `table` are required, the rest optional):

    database,table,topic,where,columns,sharding_columns
    app,users,users_v1,status = 'active',"id,name,status",id

`topic` is a topic name or template (created when missing); a topic that must already exist is written
`existing:NAME`. `columns` and `sharding_columns` are comma-separated column names inside one cell (CSV
quoting keeps the commas in the cell). An empty cell means the default. Import validates every row and
reports errors with the CSV line number; export writes the tables a task selects now (patterns expanded).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from obsync.core.errors import ConfigError
from obsync.task.config import ObjectConfig
from obsync.task.naming import table_name_problem

FIELDS = ("database", "table", "topic", "where", "columns", "sharding_columns")
REQUIRED = ("database", "table")
EXISTING_PREFIX = "existing:"


def _names(cell: str) -> list[str] | None:
    cell = cell.strip()
    return None if not cell else [c.strip() for c in cell.split(",")]


def object_to_row(db: str, table: str, obj: ObjectConfig, topic: str | None = None) -> dict[str, str]:
    """The CSV row of one table selected by `obj` (`topic`: the resolved topic, else the object's own)."""
    if obj.existing_topic is not None:
        topic_cell = EXISTING_PREFIX + obj.existing_topic
    else:
        topic_cell = topic if topic is not None else (obj.topic or "")
    return {
        "database": db,
        "table": table,
        "topic": topic_cell,
        "where": obj.where or "",
        "columns": ",".join(obj.columns) if obj.columns is not None else "",
        "sharding_columns": ",".join(obj.sharding_columns),
    }


def write_csv(rows: Iterable[dict[str, str]]) -> str:
    """CSV text with a header, one line per row."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return out.getvalue()


def read_csv(text: str, origin: str = "CSV") -> list[dict[str, Any]]:
    """The `objects:` entries (task-file mappings) of a CSV, each checked; ConfigError names the line."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"{origin}: empty; the first line must be the header "
                          f"{','.join(FIELDS)}") from None
    header = [h.strip().lower() for h in header]
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise ConfigError(f"{origin} line 1: unknown column {unknown[0]!r}; the columns are {', '.join(FIELDS)}")
    missing = [f for f in REQUIRED if f not in header]
    if missing:
        raise ConfigError(f"{origin} line 1: the header lacks {missing[0]!r}; the columns are {', '.join(FIELDS)}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ConfigError(f"{origin} line 1: column {dup[0]!r} appears twice")
    objects: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ConfigError(f"{origin} line {line}: {len(cells)} cells, the header has {len(header)} "
                              "(quote cells that hold commas)")
        row = dict(zip(header, cells, strict=True))
        db, table = row["database"].strip(), row["table"].strip()
        for what, name in (("database", db), ("table", table)):
            problem = table_name_problem(name)
            if problem:
                raise ConfigError(f"{origin} line {line}: {what} {name!r}: obsync cannot sync it: {problem}")
        if (db, table) in seen:
            raise ConfigError(f"{origin} line {line}: {db}.{table} is already on line {seen[(db, table)]}")
        seen[(db, table)] = line
        obj: dict[str, Any] = {"match": f"{db}.{table}"}
        topic = row.get("topic", "").strip()
        if topic.startswith(EXISTING_PREFIX):
            obj["existing_topic"] = topic[len(EXISTING_PREFIX):].strip()
        elif topic:
            obj["topic"] = topic
        if row.get("where", "").strip():
            obj["where"] = row["where"].strip()
        for f in ("columns", "sharding_columns"):
            names = _names(row.get(f, ""))
            if names is not None:
                obj[f] = names
        try:
            ObjectConfig.model_validate(obj)
        except ValidationError as e:
            err = e.errors(include_url=False, include_input=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            cell = {"match": "table", "existing_topic": "topic"}.get(field, field)
            raise ConfigError(f"{origin} line {line}: {cell}: {err['msg']}") from None
        objects.append(obj)
    if not objects:
        raise ConfigError(f"{origin}: no rows after the header")
    return objects

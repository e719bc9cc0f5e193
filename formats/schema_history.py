"""The schema-history topic: records a consumer replays to rebuild every synced table at any log position, in the
shape of Debezium's `io.debezium.relational.history` records (what its Kafka schema history stores).

A record's value (JSON):

    {"source": {"server": "<task name>"},
     "position": {"file": "mysql-bin.000003", "pos": 1234, "row": 0},   # + "snapshot": true for the start
     "ts_ms": 1700000000000, "databaseName": "shop", "schemaName": null,
     "ddl": "ALTER TABLE orders ADD COLUMN note TEXT",
     "tableChanges": [{"type": "ALTER", "id": "\\"shop\\".\\"orders\\"", "table": {...}}]}

- `tableChanges` items are Debezium's (`obsync.formats.debezium.table_changes`), split per statement as its
  schema-change events are (`obsync.formats.debezium.schema_changes`: one record per event). A RENAME's item
  also names the old table, `"previousId"` (Debezium keeps it in memory only); its `table` is null when the
  statement renamed several synced tables and obsync knows only the first one's structure (the replay then
  keeps the old structure under the new name). A table renamed out of the task's selection is a DROP of its old
  name; one renamed into it an ALTER without `previousId`. Statements that change no synced table's structure
  (TRUNCATE) write none.
- The start: each synced table's CREATE TABLE (SHOW CREATE TABLE) as a CREATE record at the log position the
  task starts from, `"snapshot": true` (`"last"` on the last one), before any other record.
- A table added to the task's selection (`obsync reload`, or the task file changed while stopped): its CREATE
  TABLE as a CREATE record (no `"snapshot"`) at the log position where the task took the new selection in.
- The key is the database name (UTF-8); the topic has one partition, so records are read in write order.

`replay(values, at)` rebuilds the tables as of a position; `create_table_sql` prints one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from obsync.core.changes import Change
from obsync.core.positions import LogPosition, binlog_file_number
from obsync.core.schema import TableSchema
from obsync.formats.debezium.schema_changes import schema_changes
from obsync.formats.debezium.table_changes import table_change, table_id
from obsync.sql import ddl as D

Struct = dict[str, Any]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _position(pos: LogPosition, snapshot: bool | str = False) -> Struct:
    out: Struct = {"file": pos.file, "pos": pos.pos, "row": pos.row}
    if snapshot:
        out["snapshot"] = snapshot
    return out


def _record(server: str, position: Struct, ts_ms: int | None, db: str, ddl: str | None,
            items: list[Struct]) -> tuple[bytes, bytes]:
    value = {"source": {"server": server}, "position": position, "ts_ms": ts_ms, "databaseName": db,
             "schemaName": None, "ddl": ddl, "tableChanges": items}
    return db.encode(), _dumps(value)


def history_records(change: Change, server: str,
                    synced: Callable[[str, str], bool] = lambda db, name: True) -> list[tuple[bytes, bytes]]:
    """(key, value) of each history record of the DDL `change` (none when it changes no synced table's
    structure). Only tables `synced(db, name)` are described: a table renamed out of the task is dropped from
    the history, one renamed into it appears (its structure, from the change, without a `previousId`)."""
    pos = change.position
    assert isinstance(pos, LogPosition), "the schema history follows the log"
    ts = None if change.commit_time is None else int(change.commit_time * 1000)
    if change.ddl_tables and _is_drop_database(change):
        drops = [table_change("DROP", db, name, None) for db, name in change.ddl_tables if synced(db, name)]
        db = change.ddl_tables[0][0]
        return [_record(server, _position(pos), ts, db, change.ddl, drops)] if drops else []
    out = []
    for sc in schema_changes(change):
        items = [dict(i) for i in sc.table_changes if synced(*parse_table_id(i["id"]))]
        if sc.renamed is not None:
            old, new = sc.renamed
            if not synced(*new):
                items = [{"type": "DROP", "id": table_id(*old), "table": None}] if synced(*old) else []
            else:
                if not items:
                    items = [{"type": "ALTER", "id": table_id(*new), "table": None}]
                if synced(*old):
                    items[0]["previousId"] = table_id(*old)
        if items:
            out.append(_record(server, _position(pos), ts, sc.db, sc.ddl, items))
    return out


def _is_drop_database(change: Change) -> bool:
    try:
        return isinstance(D.parse_ddl(change.ddl or "", change.ddl_db), D.DropDatabase)
    except Exception:  # noqa: BLE001 - a statement the grammar cannot read is not a DROP DATABASE
        return False


def start_record(server: str, position: LogPosition, table: TableSchema, ddl: str | None,
                 last: bool = False) -> tuple[bytes, bytes]:
    """The record of one table at the start: its CREATE TABLE (`ddl`, SHOW CREATE TABLE) and structure;
    `"snapshot": "last"` on the start's last record (as Debezium marks its snapshot's last record)."""
    return create_record(server, position, table, ddl, snapshot="last" if last else True)


def create_record(server: str, position: LogPosition, table: TableSchema, ddl: str | None,
                  snapshot: bool | str = False) -> tuple[bytes, bytes]:
    """A CREATE record of `table` as it is at `position` (`ddl`: its SHOW CREATE TABLE): a start record, or
    (`snapshot` false) a table the task's selection took in while it ran or was stopped."""
    return _record(server, _position(position, snapshot=snapshot), None, table.db, ddl,
                   [table_change("CREATE", table.db, table.name, table)])


def position_of(value: Struct) -> LogPosition:
    p = value["position"]
    return LogPosition(p["file"], int(p["pos"]), int(p.get("row", 0)))


def parse_table_id(text: str) -> tuple[str, str]:
    """`"db"."table"` -> (db, table) (obsync refuses names with double quotes)."""
    db, _, name = text.partition('"."')
    return db.strip('"'), name.strip('"')


def replay(values: Iterable[Struct], at: LogPosition | None = None) -> dict[tuple[str, str], Struct]:
    """Each table's structure (Debezium `table` struct) after the records at or before `at` (all without it),
    applied in topic order: CREATE/ALTER set the table (a `previousId` moves it from its old name first), DROP
    removes it."""
    limit = None if at is None else (binlog_file_number(at.file), at.pos, at.row)
    tables: dict[tuple[str, str], Struct] = {}
    for value in values:
        if limit is not None:
            p = position_of(value)
            if (binlog_file_number(p.file), p.pos, p.row) > limit:
                continue
        for item in value.get("tableChanges") or ():
            name = parse_table_id(item["id"])
            if item["type"] == "DROP":
                tables.pop(name, None)
                continue
            old = tables.pop(parse_table_id(item["previousId"]), None) if item.get("previousId") else None
            struct = item.get("table") or old
            if struct is not None:
                tables[name] = struct
    return tables


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def column_sql(c: Struct) -> str:
    """One column's definition from its Debezium struct."""
    words = c["typeName"].split()
    base, rest = words[0], words[1:]
    if c.get("enumValues") is not None:
        base += "(" + ",".join(c["enumValues"]) + ")"
    elif c.get("length") is not None:
        base += f"({c['length']}" + (f",{c['scale']}" if c.get("scale") is not None else "") + ")"
    parts = [_q(c["name"]), " ".join([base, *rest])]
    if c.get("charsetName"):
        parts.append(f"CHARACTER SET {c['charsetName']}")
    parts.append("NULL" if c["optional"] else "NOT NULL")
    if c.get("defaultValueExpression") is not None:
        parts.append("DEFAULT " + _sql_string(c["defaultValueExpression"]))
    if c.get("autoIncremented"):
        parts.append("AUTO_INCREMENT")
    if c.get("comment"):
        parts.append("COMMENT " + _sql_string(c["comment"]))
    return " ".join(parts)


def create_table_sql(db: str, name: str, table: Struct) -> str:
    """A CREATE TABLE statement of a replayed table (columns in position order, primary key, charset, comment)."""
    cols = sorted(table["columns"], key=lambda c: c["position"])
    lines = [f"  {column_sql(c)}" for c in cols]
    if table.get("primaryKeyColumnNames"):
        lines.append("  PRIMARY KEY (" + ", ".join(_q(k) for k in table["primaryKeyColumnNames"]) + ")")
    tail = ""
    if table.get("defaultCharsetName"):
        tail += f" DEFAULT CHARSET={table['defaultCharsetName']}"
    if table.get("comment"):
        tail += " COMMENT=" + _sql_string(table["comment"])
    return f"CREATE TABLE {_q(db)}.{_q(name)} (\n" + ",\n".join(lines) + f"\n){tail}"

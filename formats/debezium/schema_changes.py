"""What a DDL becomes in Debezium's schema-change topic: the events, each with its database, `source.table`,
statement text and `tableChanges` (items from `obsync.formats.debezium.table_changes`), as the MySQL connector
splits and describes them:

- CREATE TABLE (also `LIKE`): one event; `tableChanges` = [CREATE of the new table].
- ALTER TABLE, CREATE INDEX, DROP INDEX: one; [ALTER of the table after the statement]. With `RENAME TO b`,
  the item is `b`'s and `source.table` is `b`.
- RENAME TABLE a TO b[, c TO d]: one per pair, `ddl` = `RENAME TABLE a TO b` (the statement itself for one
  pair); [ALTER of the new table]; `source.table` = the new names of the pair's database.
- DROP TABLE a[, b]: one per table, `ddl` = "DROP TABLE `db`.`a`" (with the statement's `IF EXISTS`); [DROP of
  the table] (`table` null); `source.table` = every dropped table of its database.
- TRUNCATE TABLE: one with `tableChanges` [], written only when asked (`truncate_schema_changes`).
- anything else (DROP DATABASE, ...): one with `tableChanges` [].

A DDL change carries one table's schema (`Change.table`, the statement's first tracked table after it): in a
RENAME of several tracked tables, only that table's event lists its structure, the others have
`tableChanges` []. A statement obsync could not read (`Unparsed`) is described like an ALTER (a CREATE when it
starts with CREATE) of the table obsync re-read from the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from obsync.core.changes import Change
from obsync.formats.debezium.table_changes import table_change
from obsync.sql import ddl as D

Struct = dict[str, Any]
_DROP_PREFIX = re.compile(r"^\s*(DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?)", re.I)


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One schema-change event's own members (the builder adds `source`'s other members and `ts_ms`)."""

    db: str
    source_table: str | None  # `source.table`: the tables of the event's database, comma-joined
    ddl: str | None
    table_changes: tuple[Struct, ...] = ()
    # a RENAME pair's (old, new) (db, table) names: Debezium's event does not carry the old name, the schema
    # history (`obsync.formats.schema_history`) does
    renamed: tuple[tuple[str, str], tuple[str, str]] | None = None


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _joined(names: list[tuple[str, str]], db: str) -> str | None:
    return ",".join(dict.fromkeys(t for d, t in names if d == db)) or None


def schema_changes(change: Change) -> list[SchemaChange]:
    """The schema-change events of the DDL `change` (see the module's table)."""
    sql = change.ddl or ""
    try:
        st = D.parse_ddl(sql, change.ddl_db)
    except Exception:  # noqa: BLE001 - a statement the grammar cannot read is described from the change alone
        st = None
    table = change.table
    if isinstance(st, D.DropTables) and st.tables:
        m = _DROP_PREFIX.match(sql)
        prefix = m.group(1) if m else "DROP TABLE "
        names = list(st.tables)
        return [SchemaChange(d, _joined(names, d), f"{prefix}{_quote(d)}.{_quote(t)}",
                             (table_change("DROP", d, t, None),)) for d, t in dict.fromkeys(names)]
    if isinstance(st, D.RenameTables) and st.pairs:
        news = [new for _, new in st.pairs]
        out = []
        for old, new in st.pairs:
            items = ((table_change("ALTER", new[0], new[1], table),)
                     if table is not None and (table.db, table.name) == new else ())
            ddl = sql if len(st.pairs) == 1 else \
                f"RENAME TABLE {_quote(old[0])}.{_quote(old[1])} TO {_quote(new[0])}.{_quote(new[1])}"
            out.append(SchemaChange(new[0], _joined(news, new[0]), ddl, items, (old, new)))
        return out
    if isinstance(st, D.TruncateTable):
        return [SchemaChange(st.table[0], st.table[1], sql)]
    if table is not None and isinstance(st, (D.CreateTable, D.AlterTable, D.CreateIndex, D.DropIndex, D.Unparsed)):
        kind = "CREATE" if isinstance(st, D.CreateTable) or (
            isinstance(st, D.Unparsed) and sql.lstrip()[:6].upper() == "CREATE") else "ALTER"
        return [SchemaChange(table.db, table.name, sql, (table_change(kind, table.db, table.name, table),))]
    return [_plain(change)]


def _plain(change: Change) -> SchemaChange:
    """An event without `tableChanges`: database and tables from what the change names."""
    if change.ddl_tables:
        db = change.ddl_tables[0][0]
        return SchemaChange(db, _joined(list(change.ddl_tables), db), change.ddl)
    if change.table is not None:
        return SchemaChange(change.table.db, change.table.name, change.ddl)
    return SchemaChange(change.ddl_db or "", None, change.ddl)

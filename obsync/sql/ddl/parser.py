"""Reading a DDL statement from the binlog: `parse_ddl(sql, default_db, dialect)` gives its `Statement`.

A small grammar reads the statements that change what a table's rows look like: CREATE TABLE, ALTER TABLE
(ADD / DROP / MODIFY / CHANGE / RENAME COLUMN, keys, RENAME TO, CONVERT TO CHARACTER SET), DROP TABLE,
RENAME TABLE, TRUNCATE TABLE, CREATE / DROP INDEX, CREATE / ALTER / DROP DATABASE. Other statements give
None. DDL the grammar cannot read with certainty gives an `Unparsed` naming the tables it touches (found by
pattern, `guess_tables`), so the caller re-reads those tables from the source instead of guessing.
"""

from __future__ import annotations

import re

from obsync.sql.ddl.alter_table import read_alter_table
from obsync.sql.ddl.create_table import key_parts, read_create_table
from obsync.sql.ddl.lexer import Cursor, DdlSyntaxError, TableName, expand_versioned_comments, tokenize
from obsync.sql.ddl.statements import (
    CreateIndex,
    DatabaseChanged,
    DropDatabase,
    DropIndex,
    DropTables,
    IndexDef,
    RenameTables,
    Statement,
    TruncateTable,
    Unparsed,
)

__all__ = ["guess_tables", "parse_ddl"]

_TABLE_REF = re.compile(
    r"""(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+))(?:\s*\.\s*(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+)))?""")
_TABLE_VERB = re.compile(
    r"^\s*(?:ALTER\s+(?:ONLINE\s+|OFFLINE\s+|IGNORE\s+)*TABLE|CREATE\s+(?:OR\s+REPLACE\s+)?TABLE"
    r"(?:\s+IF\s+NOT\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|"
    r"(?:CREATE|DROP)\s+.*?\bINDEX\b.*?\bON)\s+", re.I | re.S)


def guess_tables(sql: str, default_db: str | None) -> tuple[TableName, ...]:
    """The table named right after a DDL verb, found by pattern when the statement cannot be parsed."""
    text = expand_versioned_comments(sql)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    m = _TABLE_VERB.match(text)
    if not m:
        return ()
    r = _TABLE_REF.match(text, m.end())
    if not r:
        return ()
    a = (r.group(1) or "").replace("``", "`") or r.group(2)
    b = (r.group(3) or "").replace("``", "`") or r.group(4)
    if b:
        return ((a, b),)
    return ((default_db, a),) if default_db else ()


def parse_ddl(sql: str, default_db: str | None, dialect: str = "mysql") -> Statement | None:
    """The schema-relevant meaning of a statement from a QueryEvent; None when it changes no table."""
    head = sql.lstrip()[:40].upper()
    if not head.startswith(("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "/*")):
        return None
    try:
        toks = tokenize(sql)
    except Exception as e:  # noqa: BLE001 - the tokenizer raises its own error types
        tables = guess_tables(sql, default_db)
        return Unparsed(tables, f"cannot tokenize: {e}") if tables else None
    while toks and toks[-1].kind == ";":
        toks.pop()
    cur = Cursor(toks)
    try:
        return _statement(cur, default_db, dialect)
    except DdlSyntaxError as e:
        tables = guess_tables(sql, default_db)
        return Unparsed(tables, str(e)) if tables else None


def _statement(cur: Cursor, db: str | None, dialect: str) -> Statement | None:
    if cur.accept("ALTER"):
        while cur.accept("ONLINE") or cur.accept("OFFLINE") or cur.accept("IGNORE"):
            pass
        if cur.accept("TABLE"):
            return read_alter_table(cur, db, dialect)
        if cur.accept("DATABASE") or cur.accept("SCHEMA"):
            name = cur.ident() if cur.kind() in ("word", "ident") and cur.up() not in (
                "DEFAULT", "CHARACTER", "CHARSET", "COLLATE", "CHAR") else (db or "")
            return DatabaseChanged(name)
        return None
    if cur.accept("CREATE"):
        cur.accept("OR", "REPLACE")
        if cur.accept("TEMPORARY"):
            return None
        if cur.accept("TABLE"):
            return read_create_table(cur, db, dialect)
        if cur.accept("DATABASE") or cur.accept("SCHEMA"):
            cur.accept("IF", "NOT", "EXISTS")
            return DatabaseChanged(cur.ident())
        while cur.accept("ONLINE") or cur.accept("OFFLINE"):
            pass
        kind = "index"
        if cur.accept("UNIQUE"):
            kind = "unique"
        elif cur.accept("FULLTEXT") or cur.accept("SPATIAL"):
            kind = "index"
        if cur.accept("INDEX"):
            cur.accept("IF", "NOT", "EXISTS")
            name = cur.ident()
            if cur.accept("USING"):
                cur.next()
            if not cur.accept("ON"):
                raise DdlSyntaxError("expected ON in CREATE INDEX")
            table = cur.table_name(db)
            cols = key_parts(cur)
            return CreateIndex(table, IndexDef(name, kind, cols))
        return None
    if cur.accept("DROP"):
        if cur.accept("TEMPORARY"):
            return None
        if cur.accept("TABLE") or cur.accept("TABLES"):
            cur.accept("IF", "EXISTS")
            tables = [cur.table_name(db)]
            while cur.accept_punct(","):
                tables.append(cur.table_name(db))
            return DropTables(tuple(tables))
        if cur.accept("DATABASE") or cur.accept("SCHEMA"):
            cur.accept("IF", "EXISTS")
            return DropDatabase(cur.ident())
        while cur.accept("ONLINE") or cur.accept("OFFLINE"):
            pass
        if cur.accept("INDEX"):
            cur.accept("IF", "EXISTS")
            name = cur.ident()
            if not cur.accept("ON"):
                raise DdlSyntaxError("expected ON in DROP INDEX")
            return DropIndex(cur.table_name(db), name)
        return None
    if cur.accept("RENAME"):
        if not (cur.accept("TABLE") or cur.accept("TABLES")):
            return None
        pairs = []
        while True:
            old = cur.table_name(db)
            if not cur.accept("TO"):
                raise DdlSyntaxError("expected TO in RENAME TABLE")
            pairs.append((old, cur.table_name(db)))
            if not cur.accept_punct(","):
                break
        return RenameTables(tuple(pairs))
    if cur.accept("TRUNCATE"):
        cur.accept("TABLE")
        return TruncateTable(cur.table_name(db))
    return None

"""The grammar of CREATE TABLE: its columns, the keys that identify rows, and the table's default character set.

Also the key definitions ALTER TABLE ... ADD and CREATE INDEX share (`table_element`, `key_parts`).
`CREATE TABLE ... SELECT` raises `DdlSyntaxError` (its columns come from a query); `CREATE TABLE ... LIKE`
reads as a `CreateTable` with `like` set.
"""

from __future__ import annotations

from obsync.sql.ddl.columns import charset_of_collation, normalize_charset, parse_column_def
from obsync.sql.ddl.lexer import Cursor, DdlSyntaxError, split_top
from obsync.sql.ddl.statements import ColumnDef, CreateTable, IndexDef, Statement

__all__ = ["key_parts", "read_create_table", "table_element"]


def key_parts(cur: Cursor) -> tuple[str, ...]:
    """`(a, b(10) DESC, ...)`: the column names; () if any part is an expression."""
    parts = split_top(cur.skip_parens())
    cols = []
    for p in parts:
        if p[0].kind == "(" or p[0].kind not in ("word", "ident"):
            return ()
        cols.append(p[0].text)
    return tuple(cols)


def _index_def(cur: Cursor, kind: str) -> IndexDef:
    """After PRIMARY KEY / UNIQUE / KEY|INDEX: [name] [USING x] (parts) [options]."""
    name = None
    if kind != "primary":
        cur.accept("KEY") or cur.accept("INDEX")
        cur.accept("IF", "NOT", "EXISTS")
        if cur.kind() in ("word", "ident") and cur.up() != "USING":
            name = cur.ident()
    if cur.accept("USING"):
        cur.next()
    cols = key_parts(cur)
    while not cur.at_end() and cur.kind() != ",":  # index options
        if cur.kind() == "(":
            cur.skip_parens()
        else:
            cur.next()
    return IndexDef("PRIMARY" if kind == "primary" else name, kind, cols)


def table_element(cur: Cursor) -> IndexDef | None | str:
    """A key definition inside CREATE TABLE / ALTER ... ADD: an IndexDef, None for keys that do not
    identify rows (plain, fulltext, spatial, foreign, check), or "column" when it is a column."""
    if cur.accept("CONSTRAINT"):
        if cur.up() not in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
            cur.ident()
    if cur.accept("PRIMARY", "KEY"):
        return _index_def(cur, "primary")
    if cur.accept("UNIQUE"):
        return _index_def(cur, "unique")
    if cur.up() in ("KEY", "INDEX", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK", "PERIOD"):
        while not cur.at_end() and cur.kind() != ",":
            if cur.kind() == "(":
                cur.skip_parens()
            else:
                cur.next()
        return None
    return "column"


def read_create_table(cur: Cursor, db: str | None, dialect: str) -> Statement:
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    table = cur.table_name(db)
    if cur.accept("LIKE"):
        return CreateTable(table, like=cur.table_name(db))
    if cur.kind() == "(" and cur.up(1) == "LIKE":
        inner = Cursor(cur.skip_parens())
        inner.accept("LIKE")
        return CreateTable(table, like=inner.table_name(db))
    if cur.kind() != "(":
        raise DdlSyntaxError("CREATE TABLE without a column list (CREATE ... SELECT)")
    body = cur.skip_parens()
    columns: list[ColumnDef] = []
    indexes: list[IndexDef] = []
    for item in split_top(body):
        c = Cursor(item)
        el = table_element(c)
        if el == "column":
            name = c.ident()
            col, _ = parse_column_def(c, name, dialect)
            if not c.at_end():
                raise DdlSyntaxError(f"unexpected {c.text()!r} after column {name}")
            columns.append(col)
        elif isinstance(el, IndexDef):
            indexes.append(el)
    charset = None
    collation = None
    comment = None
    while not cur.at_end():
        if cur.up() in ("SELECT", "AS", "WITH") or cur.kind() == "(":
            raise DdlSyntaxError("CREATE TABLE ... SELECT")
        if cur.accept("PARTITION", "BY"):
            break
        cur.accept("DEFAULT")
        if cur.accept("CHARACTER", "SET") or cur.accept("CHARSET") or cur.accept("CHAR", "SET"):
            cur.accept_punct("=")
            charset = normalize_charset(cur.ident())
        elif cur.accept("COLLATE"):
            cur.accept_punct("=")
            collation = cur.ident()
        elif cur.accept("COMMENT"):
            cur.accept_punct("=")
            comment = cur.next().text or None
        else:
            cur.next()
    if charset is None and collation:
        charset = charset_of_collation(collation)
    return CreateTable(table, tuple(columns), tuple(indexes), charset, if_not_exists=if_not_exists,
                       comment=comment)

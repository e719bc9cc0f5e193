"""The grammar of ALTER TABLE: each clause as an action tuple of an `AlterTable`.

Actions: `("add_column", ColumnDef, position)`, `("drop_column", name)`, `("modify_column", old name,
ColumnDef, position)`, `("rename_column", old, new)`, `("set_default", name, literal)`, `("add_index",
IndexDef)`, `("drop_index", name)`, `("drop_primary",)`, `("rename_index", old, new)`, `("rename_table",
TableName)`, `("default_charset", charset)`, `("convert_charset", charset)`, `("table_comment", text or None)`;
a position is None, "FIRST" or ("AFTER", column). Table options (but the character set and COMMENT) and
partition maintenance change no column and give no action; a clause this grammar does not know raises
`DdlSyntaxError`.
"""

from __future__ import annotations

from obsync.sql.ddl.columns import charset_of_collation, normalize_charset, parse_column_def
from obsync.sql.ddl.create_table import table_element
from obsync.sql.ddl.lexer import Cursor, DdlSyntaxError, Tok, split_top
from obsync.sql.ddl.literals import read_default
from obsync.sql.ddl.statements import AlterAction, AlterTable, ColumnDef, IndexDef, Statement

__all__ = ["read_alter_table"]

_NOOP_ALTER_WORDS = frozenset({
    "ENGINE", "AUTO_INCREMENT", "COMMENT", "ROW_FORMAT", "ALGORITHM", "LOCK", "FORCE", "ORDER",
    "KEY_BLOCK_SIZE", "STATS_PERSISTENT", "STATS_AUTO_RECALC", "STATS_SAMPLE_PAGES", "AVG_ROW_LENGTH",
    "CHECKSUM", "PAGE_CHECKSUM", "COMPRESSION", "CONNECTION", "DATA", "INDEX", "DELAY_KEY_WRITE",
    "ENCRYPTION", "INSERT_METHOD", "MAX_ROWS", "MIN_ROWS", "PACK_KEYS", "PASSWORD", "TABLESPACE", "UNION",
    "DISABLE", "ENABLE", "DISCARD", "IMPORT", "WITH", "WITHOUT", "TRUNCATE", "COALESCE", "REORGANIZE",
    "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR", "REMOVE", "PARTITION", "TRANSACTIONAL",
    "PAGE_COMPRESSED", "PAGE_COMPRESSION_LEVEL", "IETF_QUOTES", "SEQUENCE", "WAIT", "NOWAIT",
    "SECONDARY_ENGINE", "ENGINE_ATTRIBUTE", "AUTOEXTEND_SIZE", "UPGRADE",
    # OceanBase table options
    "TABLEGROUP", "BLOCK_SIZE", "REPLICA_NUM", "PRIMARY_ZONE", "PCTFREE", "USE_BLOOM_FILTER",
    "PROGRESSIVE_MERGE_NUM", "TABLET_SIZE", "LOCALITY", "STORAGE_FORMAT_VERSION", "READ", "TABLE_MODE",
    "DUPLICATE_SCOPE", "ENABLE_MACRO_BLOCK_BLOOM_FILTER", "KV_ATTRIBUTES", "TTL", "AUTO_INCREMENT_MODE",
})
_PARTITION_WORDS = frozenset({"TRUNCATE", "COALESCE", "REORGANIZE", "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE",
                              "REBUILD", "REPAIR", "REMOVE", "PARTITION", "DISABLE", "ENABLE", "DISCARD",
                              "IMPORT", "FORCE", "UPGRADE", "ORDER", "ALGORITHM", "LOCK", "WITH", "WITHOUT"})


def read_alter_table(cur: Cursor, db: str | None, dialect: str) -> Statement:
    cur.accept("IF", "EXISTS")
    table = cur.table_name(db)
    actions: list[AlterAction] = []
    rest = cur.toks[cur.i:]
    for spec in split_top(rest):
        if _partition_spec(spec):  # partition maintenance comes last and lists partitions with commas
            break
        actions.extend(_alter_spec(Cursor(spec), db, dialect))
    return AlterTable(table, tuple(actions))


def _partition_spec(spec: list[Tok]) -> bool:
    """Whether an ALTER TABLE clause maintains partitions (`TRUNCATE PARTITION p0, p1`, `DROP SUBPARTITION s`,
    `ADD PARTITION (...)`, `PARTITION BY ...`, OceanBase's `MODIFY PARTITION p ADD SUBPARTITION ...`): it
    changes no column, and its comma-separated partition names run to the end of the statement."""
    words = [t.up for t in spec[:2]]
    if not words:
        return False
    if words[0] in ("ADD", "DROP", "MODIFY", "TRUNCATE", "COALESCE", "REORGANIZE", "EXCHANGE", "ANALYZE",
                    "CHECK", "OPTIMIZE", "REBUILD", "REPAIR", "DISCARD", "IMPORT") and len(words) > 1 \
            and words[1] in ("PARTITION", "SUBPARTITION"):
        return True
    return words[0] in ("PARTITION", "SUBPARTITION", "REMOVE")


def _position(c: Cursor) -> str | tuple[str, str] | None:
    if c.accept("FIRST"):
        return "FIRST"
    if c.accept("AFTER"):
        return ("AFTER", c.ident())
    return None


def _column_with_position(c: Cursor, name: str, dialect: str) -> tuple[ColumnDef, str | tuple[str, str] | None]:
    col, _ = parse_column_def(c, name, dialect)
    pos = _position(c)
    if not c.at_end():
        raise DdlSyntaxError(f"unexpected {c.text()!r} after column {name}")
    return col, pos


def _alter_spec(c: Cursor, db: str | None, dialect: str) -> list[AlterAction]:
    w = c.up()
    if c.accept("ADD"):
        if c.up() in ("PARTITION",):
            return []
        if c.accept("COLUMN") or c.up() not in ("CONSTRAINT", "PRIMARY", "UNIQUE", "KEY", "INDEX", "FULLTEXT",
                                                "SPATIAL", "FOREIGN", "CHECK", "PERIOD", "SYSTEM"):
            c.accept("IF", "NOT", "EXISTS")
            if c.kind() == "(":
                added: list[AlterAction] = []
                for item in split_top(c.skip_parens()):
                    ic = Cursor(item)
                    el = table_element(ic)
                    if el == "column":
                        name = ic.ident()
                        col, _ = parse_column_def(ic, name, dialect)
                        added.append(("add_column", col, None))
                    elif isinstance(el, IndexDef):
                        added.append(("add_index", el))
                return added
            name = c.ident()
            col, pos = _column_with_position(c, name, dialect)
            return [("add_column", col, pos)]
        el = table_element(c)
        if isinstance(el, IndexDef):
            return [("add_index", el)]
        if el is None:
            return []
        raise DdlSyntaxError("cannot read ADD clause")
    if c.accept("DROP"):
        if c.accept("PRIMARY", "KEY"):
            return [("drop_primary",)]
        if c.accept("INDEX") or c.accept("KEY") or c.accept("CONSTRAINT"):
            c.accept("IF", "EXISTS")
            return [("drop_index", c.ident())]
        if c.accept("FOREIGN", "KEY") or c.accept("CHECK") or c.accept("PARTITION") or c.accept("PERIOD"):
            return []
        if c.accept("SYSTEM", "VERSIONING"):
            return []
        c.accept("COLUMN")
        c.accept("IF", "EXISTS")
        name = c.ident()
        c.accept("RESTRICT") or c.accept("CASCADE")
        if not c.at_end():
            raise DdlSyntaxError(f"unexpected {c.text()!r} after DROP COLUMN {name}")
        return [("drop_column", name)]
    if c.accept("MODIFY"):
        c.accept("COLUMN")
        c.accept("IF", "EXISTS")
        name = c.ident()
        col, pos = _column_with_position(c, name, dialect)
        return [("modify_column", name, col, pos)]
    if c.accept("CHANGE"):
        c.accept("COLUMN")
        c.accept("IF", "EXISTS")
        old = c.ident()
        name = c.ident()
        col, pos = _column_with_position(c, name, dialect)
        return [("modify_column", old, col, pos)]
    if c.accept("RENAME"):
        if c.accept("COLUMN"):
            c.accept("IF", "EXISTS")
            old = c.ident()
            if not c.accept("TO"):
                raise DdlSyntaxError("expected TO in RENAME COLUMN")
            return [("rename_column", old, c.ident())]
        if c.accept("INDEX") or c.accept("KEY"):
            old = c.ident()
            c.accept("TO")
            return [("rename_index", old, c.ident())]
        c.accept("TO") or c.accept("AS")
        return [("rename_table", c.table_name(db))]
    if c.accept("ALTER"):
        if c.accept("INDEX") or c.accept("KEY"):
            return []
        c.accept("COLUMN")
        name = c.ident()
        if c.accept("SET", "DEFAULT"):
            lit = read_default(c)
            if not c.at_end():
                raise DdlSyntaxError(f"unexpected {c.text()!r} after SET DEFAULT of column {name}")
            return [("set_default", name, lit)]
        if c.accept("DROP", "DEFAULT"):
            return [("set_default", name, None)]
        if c.accept("SET", "VISIBLE") or c.accept("SET", "INVISIBLE"):
            return []
        raise DdlSyntaxError("cannot read ALTER COLUMN clause")
    if c.up() == "SET":  # OceanBase: ALTER TABLE t SET table_options
        c.next()
        w = c.up()
    if c.accept("CONVERT", "TO"):
        if not (c.accept("CHARACTER", "SET") or c.accept("CHARSET") or c.accept("CHAR", "SET")):
            raise DdlSyntaxError("expected CHARACTER SET after CONVERT TO")
        cs = c.ident()
        if cs.upper() == "DEFAULT":
            raise DdlSyntaxError("CONVERT TO CHARACTER SET DEFAULT")
        return [("convert_charset", normalize_charset(cs))]
    # table options (several may follow each other without commas) and partition maintenance: only the
    # default character set matters
    if w not in _NOOP_ALTER_WORDS and w not in ("DEFAULT", "CHARACTER", "CHARSET", "CHAR", "COLLATE"):
        raise DdlSyntaxError(f"unknown ALTER TABLE clause starting {w!r}")
    if w in _PARTITION_WORDS:
        return []
    out: list[AlterAction] = []
    while not c.at_end():
        if c.accept("CHARACTER", "SET") or c.accept("CHARSET") or c.accept("CHAR", "SET"):
            c.accept_punct("=")
            out.append(("default_charset", normalize_charset(c.ident())))
        elif c.accept("COLLATE"):
            c.accept_punct("=")
            out.append(("default_charset", charset_of_collation(c.ident())))
        elif c.accept("COMMENT"):
            c.accept_punct("=")
            out.append(("table_comment", c.next().text or None))
        elif c.kind() == "(":
            c.skip_parens()
        else:
            c.next()
    return out

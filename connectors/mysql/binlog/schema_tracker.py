"""The definition of every tracked table at the current log position.

Started from the persisted history (or the source's information_schema) at the start position, then moved
forward by the DDL in the stream. Each table map is checked against it before rows are decoded; a mismatch
is settled by the source's current definition only when that one matches the table map, else it is an
error: values are never decoded against the wrong columns.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import pymysql

from obsync.connectors.mysql.binlog.rows import mismatch_reason
from obsync.connectors.mysql.binlog.schema_history import SchemaHistory
from obsync.connectors.mysql.catalog import load_table_schema
from obsync.connectors.mysql.connection import Endpoint, close_quietly, connect, detect_dialect
from obsync.connectors.mysql.failures import (
    DRIVER_ERRORS,
    SESSION_POLICY,
    Failure,
    retryable,
)
from obsync.core.errors import SchemaMismatchError, SourceError, SourceUnavailable
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.sql import ddl as D
from obsync.sql.ddl import TableDef, TableName

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_KEY_NAMES_SQL = """
SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0
ORDER BY INDEX_NAME, SEQ_IN_INDEX
"""
_TABLE_COLLATION_SQL = "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s"
_DB_CHARSET_SQL = "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s"


def _text(v: object) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


class SourceCatalog:
    """Reads current table definitions from the source over SQL (reconnecting when needed)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn: pymysql.Connection | None = None
        self._dialect: str | None = None
        self._db_charsets: dict[str, str | None] = {}

    def _cursor(self) -> pymysql.cursors.Cursor:
        if self._conn is None:
            self._conn = connect(self.endpoint)
            self._dialect = detect_dialect(self._conn)
        return self._conn.cursor()

    def _run(self, fn: Callable[[], _T]) -> _T:
        """fn() with one reconnect (SESSION_POLICY); an operational error the failure table does not know
        counts as a lost connection, so the log retries it as before."""
        what = f"reading the schema from {self.endpoint!r}"
        try:
            return SESSION_POLICY.run(fn, what, reset=self.close, unknown=Failure.CONNECTION_LOST)
        except DRIVER_ERRORS as e:
            self.close()
            error = SourceUnavailable if retryable(e, unknown=Failure.CONNECTION_LOST) else SourceError
            raise error(f"{what} failed: {e}") from None

    @property
    def dialect(self) -> str:
        if self._dialect is None:
            self._run(lambda: self._cursor().close())
        assert self._dialect is not None
        return self._dialect

    def load(self, name: TableName) -> TableDef | None:
        """The table's current definition, or None when it does not exist."""
        def go() -> TableDef | None:
            cur = self._cursor()
            assert self._conn is not None
            try:
                schema = load_table_schema(self._conn, name[0], name[1])
            except SourceError:
                return None
            cur.execute(_KEY_NAMES_SQL, name)
            keys: dict[str, list[str]] = {}
            for idx, col in cur.fetchall():
                if col is not None:
                    keys.setdefault(_text(idx), []).append(_text(col))
            cur.execute(_TABLE_COLLATION_SQL, name)
            row = cur.fetchone()
            charset = D.charset_of_collation(_text(row[0])) if row and row[0] else None
            cur.close()
            key_list = tuple((n, "primary" if n == "PRIMARY" else "unique", tuple(c)) for n, c in keys.items())
            return TableDef(schema, key_list, charset)
        return self._run(go)

    def db_charset(self, db: str) -> str | None:
        """The database's default character set (the server's when the database is gone)."""
        if db not in self._db_charsets:
            def go() -> str | None:
                cur = self._cursor()
                cur.execute(_DB_CHARSET_SQL, (db,))
                row = cur.fetchone()
                if not row:
                    cur.execute("SELECT @@character_set_server")
                    row = cur.fetchone()
                cur.close()
                return D.normalize_charset(_text(row[0])) if row and row[0] else None
            self._db_charsets[db] = self._run(go)
        return self._db_charsets[db]

    def forget_db(self, db: str) -> None:
        self._db_charsets.pop(db, None)

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None


@dataclass(frozen=True, slots=True)
class DdlOutcome:
    """What a DDL statement did: the tables it names, and the new schema to emit with it."""

    tables: tuple[TableName, ...]
    schema: TableSchema | None
    touches_tracked: bool


class SchemaTracker:
    """Definitions of the tracked tables at the reader's position."""

    def __init__(self, tracked: Iterable[TableName], history: SchemaHistory, catalog: SourceCatalog,
                 selector: Callable[[TableName], bool] | None = None) -> None:
        self.tracked: set[TableName] = set(tracked)
        self.selector = selector
        self._untracked: set[TableName] = set()  # asked and refused by the selector
        self.renamed_in: list[TableName] = []  # tables a RENAME brought into the rules (the reader takes them)
        self.history = history
        self.catalog = catalog
        self._defs: dict[TableName, TableDef | None] = {}
        self.version = 0  # bumped on every change, so compiled decoders know when to recompile
        # (table, before, after) of each definition a DDL changed, for the schema-change policy (the session
        # empties it)
        self.changed: list[tuple[TableName, TableDef | None, TableDef | None]] = []

    def start(self, pos: LogPosition) -> None:
        """Load every tracked table's definition at `pos`: from the history, else from the source now.

        On a resume the tables given are those the rules select on the source *now*; a table the history knows
        and the rules select is tracked too, though it may be gone from the source (renamed or dropped by DDL
        after `pos` that the stream is about to replay)."""
        if self.selector is not None:
            for name in self.history.tables() - self.tracked:
                if self.selector(name) and self.history.at(name, pos)[0]:
                    self.tracked.add(name)
        for name in sorted(self.tracked):
            known, d = self.history.at(name, pos)
            if not known:
                d = self.catalog.load(name)
                self.history.record(name, pos, d, "start")
                log.info("schema of %s.%s read from the source at %s%s", name[0], name[1], pos,
                         "" if d else " (the table does not exist yet)")
            self._defs[name] = d
        self.version += 1

    def is_tracked(self, name: TableName) -> bool:
        """True for a tracked table; a table the selector accepts becomes tracked (its definition unknown
        until a CREATE or a table map brings it)."""
        if name in self.tracked:
            return True
        if self.selector is None or name in self._untracked:
            return False
        if self.selector(name):
            self.tracked.add(name)
            log.info("table %s.%s matches the task's rules: it is synced from here on", name[0], name[1])
            return True
        if len(self._untracked) > 100_000:
            self._untracked.clear()
        self._untracked.add(name)
        return False

    def get(self, name: TableName) -> TableDef | None:
        return self._defs.get(name)

    def schema(self, name: TableName) -> TableSchema | None:
        d = self._defs.get(name)
        return d.schema if d is not None else None

    def _set(self, name: TableName, d: TableDef | None, pos: LogPosition, cause: str, ddl: str | None) -> None:
        if not self.is_tracked(name):
            return
        if d is not None and cause == "ddl":
            d = self._fill_collations(name, d, self._defs.get(name))
        before = self._defs.get(name)
        if cause != "refresh" or ddl is not None:
            if d != before:
                self.changed.append((name, before, d))
        self._defs[name] = d
        self.history.record(name, pos, d, cause, ddl)
        self.version += 1

    def _fill_collations(self, name: TableName, d: TableDef, prev: TableDef | None) -> TableDef:
        """Text columns a DDL defined without COLLATE get their collation (which row filters compare by):
        the same column's before the DDL when its character set is unchanged, else the source's current one."""
        cols = d.schema.columns
        if all(c.collation is not None or c.charset in (None, "binary") for c in cols):
            return d
        before = {c.name: c for c in prev.schema.columns} if prev is not None else {}
        current: dict[str, Column] | None = None
        out = []
        for c in cols:
            if c.collation is None and c.charset not in (None, "binary"):
                p = before.get(c.name)
                if p is None or p.charset != c.charset or p.collation is None:
                    if current is None:
                        try:
                            now = self.catalog.load(name)
                        except SourceError:
                            now = None
                        current = {x.name: x for x in now.schema.columns} if now is not None else {}
                    p = current.get(c.name)
                if p is not None and p.charset == c.charset and p.collation is not None:
                    c = dataclasses.replace(c, collation=p.collation)
            out.append(c)
        return TableDef(dataclasses.replace(d.schema, columns=tuple(out)), d.keys, d.charset)

    def _refresh(self, name: TableName, pos: LogPosition, ddl: str | None) -> TableDef | None:
        d = self.catalog.load(name)
        self._set(name, d, pos, "refresh", ddl)
        return d

    # ---- table maps ----------------------------------------------------------------------------------

    def check_table_map(self, name: TableName, tm_columns: list, tm_names: list[str] | None,
                        pos: LogPosition, record_at: LogPosition) -> TableSchema:
        """The schema to decode a table map's rows with. On mismatch, adopt the source's current
        definition if it matches the table map (recorded at `record_at`); else SchemaMismatchError."""
        current = self.schema(name)
        reason = mismatch_reason(current, tm_columns, tm_names)
        if reason is None:
            assert current is not None
            return current
        fresh = self.catalog.load(name)
        fresh_reason = mismatch_reason(fresh.schema if fresh else None, tm_columns, tm_names)
        if fresh_reason is None:
            assert fresh is not None
            log.warning("table map of %s.%s at %s does not match the tracked schema (%s); the source's current "
                        "definition matches and is used from here on", name[0], name[1], pos, reason)
            self._set(name, fresh, record_at, "refresh", None)
            return fresh.schema
        raise SchemaMismatchError(
            f"binlog table map of {name[0]}.{name[1]} at {pos} does not match the tracked schema ({reason}), "
            f"nor the source's current definition ({fresh_reason}); obsync will not decode rows against the "
            "wrong columns. Restart the task with full sync from a current position")

    # ---- DDL -----------------------------------------------------------------------------------------

    def apply_ddl(self, sql: str, default_db: str | None, pos: LogPosition) -> DdlOutcome | None:
        """Apply a statement from a QueryEvent ending at `pos`; None when it is not DDL on tables."""
        st = D.parse_ddl(sql, default_db, self.catalog_dialect())
        if st is None:
            return None
        if isinstance(st, D.DatabaseChanged):
            self.catalog.forget_db(st.db)
            return None
        if isinstance(st, D.DropDatabase):
            gone = tuple(n for n in sorted(self.tracked) if n[0] == st.db)
            for n in gone:
                self._set(n, None, pos, "ddl", sql)
            self.catalog.forget_db(st.db)
            return DdlOutcome(gone, None, bool(gone))
        names = D.statement_tables(st)
        tracked = [n for n in names if self.is_tracked(n)]
        if not tracked:
            return DdlOutcome(names, None, False)
        if isinstance(st, D.Unparsed):
            log.warning("cannot read DDL at %s (%s); re-reading %s from the source. Statement: %s", pos,
                        st.reason, ", ".join(f"{d}.{t}" for d, t in tracked), sql)
            for n in tracked:
                self._refresh(n, pos, sql)
            return DdlOutcome(names, self.schema(tracked[0]), True)
        target = self._apply(st, sql, pos)
        return DdlOutcome(names, self.schema(target) if target else None, True)

    def catalog_dialect(self) -> str:
        try:
            return self.catalog.dialect
        except SourceError:
            return "mysql"

    def _apply(self, st: D.Statement, sql: str, pos: LogPosition) -> TableName | None:
        """Apply a parsed statement; returns the tracked table whose schema goes with the DDL event."""
        def fallback(name: TableName, why: str) -> None:
            log.warning("DDL at %s does not fit the tracked definition of %s.%s (%s); re-reading it from the "
                        "source. Statement: %s", pos, name[0], name[1], why, sql)
            self._refresh(name, pos, sql)

        if isinstance(st, D.CreateTable):
            if st.if_not_exists and self.get(st.table) is not None:
                return st.table
            if st.like is not None:
                src = self.get(st.like) if st.like in self.tracked else self.catalog.load(st.like)
                if src is None:
                    fallback(st.table, f"source table {st.like[0]}.{st.like[1]} unknown")
                else:
                    self._set(st.table, src.renamed(st.table), pos, "ddl", sql)
                return st.table
            default = self.catalog.db_charset(st.table[0]) if st.charset is None else None
            self._set(st.table, D.create_table_def(st, st.charset or default), pos, "ddl", sql)
            return st.table
        if isinstance(st, D.AlterTable):
            return self._alter(st.table, st, sql, pos, fallback)
        if isinstance(st, D.CreateIndex):
            return self._alter(st.table, D.AlterTable(st.table, (("add_index", st.index),)), sql, pos, fallback)
        if isinstance(st, D.DropIndex):
            return self._alter(st.table, D.AlterTable(st.table, (("drop_index", st.name),)), sql, pos, fallback)
        if isinstance(st, D.DropTables):
            for n in st.tables:
                self._set(n, None, pos, "ddl", sql)
            return None
        if isinstance(st, D.TruncateTable):
            return st.table if self.is_tracked(st.table) else None
        if isinstance(st, D.RenameTables):
            unknown = object()
            for old_name, new in st.pairs:
                came_in = not self.is_tracked(old_name)
                if self.is_tracked(new) and came_in:  # renamed into the task's rules: tracked from here
                    self.renamed_in.append(new)
            state: dict[TableName, object] = {n: self._defs.get(n) for n in self.tracked}
            for old, new in st.pairs:
                d = state.get(old, unknown)
                state[old] = None
                state[new] = d.renamed(new) if isinstance(d, TableDef) else d
            for n in sorted(self.tracked):
                d = state[n]
                if d is unknown:
                    self._refresh(n, pos, sql)
                elif d != self._defs.get(n):
                    self._set(n, d if isinstance(d, TableDef) else None, pos, "ddl", sql)  # not `unknown`
            return next((new for _, new in st.pairs if self.is_tracked(new) and self._defs.get(new)), None)
        raise AssertionError(f"unhandled statement {st!r}")

    def _alter(self, name: TableName, st: D.AlterTable, sql: str, pos: LogPosition, fallback) -> TableName | None:
        current = self.get(name)
        new_name = st.new_name or name
        if new_name != name and not self.is_tracked(name) and self.is_tracked(new_name):
            self.renamed_in.append(new_name)
        if current is None:
            if self.is_tracked(name):
                fallback(name, "the table is not known at this position")
            if new_name != name and self.is_tracked(new_name):
                self._refresh(new_name, pos, sql)
            return new_name if self.is_tracked(new_name) else None
        try:
            new = D.apply_alter(current, st)
        except D.DdlSyntaxError as e:
            fallback(name, str(e))
            return name
        if new_name != name:
            self._set(name, None, pos, "ddl", sql)
        self._set(new_name, new, pos, "ddl", sql)
        return new_name if self.is_tracked(new_name) else None

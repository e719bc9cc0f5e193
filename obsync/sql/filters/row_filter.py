"""`compile_filter`: a `where:` clause parsed, checked and compiled for one table, as a `RowFilter`."""

from __future__ import annotations

from collections.abc import Callable

from obsync.core.errors import ConfigError
from obsync.core.schema import TableSchema
from obsync.sql.filters.compiler import Compiler
from obsync.sql.filters.syntax import LIMITS, parse_clause, render
from obsync.sql.filters.terms import Row, SqlEval, truth

__all__ = ["RowFilter", "compile_filter"]


class RowFilter:
    """A compiled `where:` clause: `sql` for the database, `matches` for row images."""

    __slots__ = ("sql", "columns", "_test")

    def __init__(self, sql: str, columns: tuple[str, ...], test: Callable[[Row], bool]) -> None:
        self.sql = sql  # regenerated from the parse: safe inside `WHERE (...)` of a SELECT on the table
        self.columns = columns  # the columns the clause reads, in order of appearance
        self._test = test

    def matches(self, row: Row) -> bool:
        """True iff the clause is TRUE for `row` ({column: canonical value}); FALSE and NULL give False."""
        return self._test(row)

    def __repr__(self) -> str:
        return f"RowFilter({self.sql!r})"


def compile_filter(where: str, schema: TableSchema, *, origin: str,
                   sql_eval: SqlEval | None = None) -> RowFilter:
    """Parse, check and compile `where` for `schema`; ConfigError (starting with `origin`) if it is refused.

    `sql_eval(sql, params)` runs `SELECT <sql>` with `params` on the source and returns the single value; it is
    called only for the comparisons obsync leaves to the database (see `obsync.sql.filters`). Without it, such a
    comparison raises SourceError when a row needs it."""
    tree = parse_clause(where, origin)
    compiler = Compiler(schema, origin, sql_eval)
    try:
        fn = truth(compiler.condition(tree)).fn
        sql = render(tree, where, origin)
    except RecursionError:  # within the limits parse_clause checks, only when called from deep in a stack
        raise ConfigError(f"{origin}: the clause nests too deeply to check; {LIMITS}") from None
    return RowFilter(sql, tuple(compiler.columns), lambda row: fn(row) is True)

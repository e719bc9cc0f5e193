"""Asking the source to evaluate an expression: what row filters delegate (`obsync.sql.filters`).

Comparisons obsync cannot prove it evaluates exactly as the database would (ordering text under a
case-insensitive collation, non-ASCII text, unusual collations) are answered by the source itself:
`SqlEvaluator()(sql, params)` runs `SELECT <sql>` with `%s` parameters on a session in UTC and utf8mb4, with
the sql_mode flags that would change the answer (`NO_BACKSLASH_ESCAPES`, `NO_UNSIGNED_SUBTRACTION`,
`PAD_CHAR_TO_FULL_LENGTH`) removed, and returns the single value. The filter caches the answers.
"""

from __future__ import annotations

import threading
from typing import Any

import pymysql

from obsync.connectors.mysql.connection import Endpoint, close_quietly, connect
from obsync.connectors.mysql.failures import (
    DRIVER_ERRORS,
    SESSION_POLICY,
    Failure,
    retryable,
)
from obsync.core.errors import SourceError, SourceUnavailable

_UNSAFE_MODES = frozenset({"NO_BACKSLASH_ESCAPES", "NO_UNSIGNED_SUBTRACTION", "PAD_CHAR_TO_FULL_LENGTH"})


def neutral_sql_mode(conn: pymysql.Connection) -> None:
    """Remove from the session's sql_mode the flags under which row filters would mean something else."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.sql_mode")
        row = cur.fetchone()
        modes = str(row[0] or "") if row else ""
        kept = [m for m in modes.split(",") if m and m.upper() not in _UNSAFE_MODES]
        if len(kept) != len([m for m in modes.split(",") if m]):
            cur.execute("SET SESSION sql_mode = %s", (",".join(kept),))


class SqlEvaluator:
    """A lazily opened, reconnecting session on the source that evaluates one expression at a time."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn: pymysql.Connection | None = None
        self._lock = threading.Lock()  # workers of one process may share it

    def __call__(self, sql: str, params: tuple) -> Any:
        # An operational error the failure table does not know is retried too (as a lost connection), once.
        with self._lock:
            try:
                return SESSION_POLICY.run(lambda: self._evaluate(sql, params), "evaluating a row filter on the "
                                          "source", reset=self.close, unknown=Failure.CONNECTION_LOST)
            except DRIVER_ERRORS as e:
                if retryable(e, unknown=Failure.CONNECTION_LOST):
                    self.close()
                    raise SourceUnavailable(f"evaluating a row filter on the source failed: {e}") from None
                raise SourceError(f"the source refused a row-filter comparison ({sql}): {e}") from None

    def _evaluate(self, sql: str, params: tuple) -> Any:
        if self._conn is None:
            self._conn = connect(self.endpoint)
            neutral_sql_mode(self._conn)
        with self._conn.cursor() as cur:
            cur.execute("SELECT " + sql, params)
            row = cur.fetchone()
        return row[0] if row else None

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None

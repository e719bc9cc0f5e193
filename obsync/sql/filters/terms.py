"""A compiled sub-expression of a row filter (`Term`): a function of the row, and its MySQL type.

A term's `fn(row)` gives its value, None for NULL; `kind` is one of the kinds below (or a temporal column type),
what decides which operators accept it. The helpers build terms with SQL's NULL logic: an operation on NULL
is NULL, and `truth` reads a term as a condition (True / False / None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from obsync.core.schema import Column
from obsync.sql.filters import semantics as sem

__all__ = ["BYTES", "DEC", "FLOAT", "INT", "NULL", "NUMBERS", "OPAQUE", "STR", "TEMPORAL", "Fn", "Op", "Row",
           "SqlEval", "Term", "binary", "boolean", "constant", "converted", "truth"]

Row = dict[str, Any]
Fn = Callable[[Row], Any]
Op = Callable[[Any, Any], Any]
SqlEval = Callable[[str, tuple], Any]

# The MySQL type of a compiled sub-expression.
INT, DEC, FLOAT, STR, BYTES, NULL = "integer", "decimal", "double", "text", "binary string", "NULL"
OPAQUE = "unsupported type"
TEMPORAL = ("date", "datetime", "timestamp", "time")
NUMBERS = (INT, DEC, FLOAT)


@dataclass(frozen=True, slots=True)
class Term:
    """One compiled sub-expression: `fn(row)` gives its value (None for NULL), `kind` its MySQL type."""

    fn: Fn
    kind: str
    text: str  # its SQL, for messages
    const: bool = False
    value: Any = None  # when const
    boolean: bool = False  # fn gives exactly True / False / None
    unsigned: bool = False
    scale: int = 0
    digits: int = 20  # numbers: at most this many digits before the point
    coll: sem.Collation | None = None  # text columns
    column: Column | None = None  # a column itself
    why: str = ""  # OPAQUE: why it cannot be compared


def constant(value: Any, kind: str, text: str, **kw: Any) -> Term:
    return Term(lambda row: value, kind, text, const=True, value=value, **kw)


def truth(t: Term) -> Term:
    """`t` as a condition: True / False / None (MySQL: a number is true when not zero)."""
    if t.boolean:
        return t
    f = t.fn
    return replace(t, fn=lambda row: None if (v := f(row)) is None else v != 0, boolean=True, kind=INT)


def binary(f: Fn, g: Fn, op: Op) -> Fn:
    """`op(f(row), g(row))`, NULL when either is NULL."""
    def fn(row: Row) -> Any:
        a = f(row)
        if a is None:
            return None
        b = g(row)
        return None if b is None else op(a, b)
    return fn


def converted(t: Term, conv: Callable[[Any], Any] | None) -> Term:
    if conv is None:
        return t
    if t.const:
        value = None if t.value is None else conv(t.value)
        return replace(t, value=value, fn=lambda row: value)
    f = t.fn
    return replace(t, fn=lambda row: None if (v := f(row)) is None else conv(v))


def boolean(fn: Fn, text: str) -> Term:
    return Term(fn, INT, text, boolean=True)

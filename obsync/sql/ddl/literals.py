"""DEFAULT values in DDL: the literal a column definition gives (canonical text, see `obsync.core.defaults`),
and a column with that default.

A value that is not a plain literal (NULL, CURRENT_TIMESTAMP and its synonyms, a function call, `(expr)`) is
skipped and read as no literal, except that the current-time words read as `("now", None)`.
"""

from __future__ import annotations

from dataclasses import replace

from obsync.core.defaults import Literal, default_text
from obsync.core.schema import Column
from obsync.sql.ddl.lexer import Cursor, Tok, tokenize

__all__ = ["literal_of", "read_default", "skip_expr", "with_default"]


def with_default(col: Column, literal: Literal | None) -> Column:
    """`col` with the default `literal` (canonical text, see `obsync.core.defaults`; None: no default)."""
    text = default_text(col, literal)
    return col if text == col.default else replace(col, default=text)


_TYPED_LITERALS = frozenset({"DATE", "TIME", "TIMESTAMP"})


def read_default(cur: Cursor) -> Literal | None:
    """Read a DEFAULT value: its literal (see `obsync.core.defaults`), or None for NULL and for an expression
    (CURRENT_TIMESTAMP, a function call, `(expr)`), which is skipped."""
    start = cur.i
    lit = _literal(cur)
    if lit is not None and _value_ends(cur):
        return lit
    cur.i = start
    t = cur.peek()
    if t is not None and t.kind == "word" and t.up in _NOW_WORDS:  # CURRENT_TIMESTAMP, NOW(), NOW(6), ...
        cur.next()
        if cur.kind() == "(":
            cur.skip_parens()
        if _value_ends(cur):
            return ("now", None)
        cur.i = start
    skip_expr(cur)
    return None


_NOW_WORDS = frozenset({"CURRENT_TIMESTAMP", "NOW", "LOCALTIME", "LOCALTIMESTAMP"})


def _value_ends(cur: Cursor) -> bool:
    """True when the DEFAULT value ends at the cursor (not an operator continuing an expression)."""
    return cur.at_end() or cur.kind() in (",", ")") or (
        cur.kind() == "word" and cur.text() not in ("+", "-", "*", "/", "||"))


def _literal(cur: Cursor) -> Literal | None:
    """A literal at the cursor, consumed (None, not consumed or partly: not a literal, or NULL)."""
    sign = ""
    while cur.kind() == "word" and cur.text() in ("+", "-"):
        if cur.next().text == "-":
            sign = "" if sign else "-"
    t = cur.peek()
    if t is None:
        return None
    frac = cur.peek(1)
    if t.kind == "." and frac is not None and frac.kind == "num" and frac.base == 10:  # .5
        cur.i += 2
        return ("num", f"{sign}0.{cur.toks[cur.i - 1].text}")
    if t.kind == "num":
        cur.next()
        if t.base == 10:
            return ("num", sign + t.text)
        if sign:
            return None
        return ("bytes", _literal_bytes(t))
    if sign:
        return None
    if t.kind == "word" and t.up in ("TRUE", "FALSE"):
        cur.next()
        return ("num", "1" if t.up == "TRUE" else "0")
    if t.kind == "word" and (t.text.startswith("_") or t.up in _TYPED_LITERALS) and cur.kind(1) in ("str", "num"):
        cur.next()  # a character set introducer (_utf8mb4'x', _binary 0x61) or DATE '...'
        t = cur.toks[cur.i]  # the str or num checked above
        if t.kind == "num":
            if t.base == 10:
                return None
            cur.next()
            return ("bytes", _literal_bytes(t))
    if t.kind == "str":
        text = ""
        while cur.kind() == "str":  # adjacent strings are concatenated
            text += cur.next().text
        return ("str", text)
    return None


def literal_of(sql: str) -> Literal | None:
    """The literal `sql` is (`'it''s'`, `-5`, `b'101'`, `_utf8mb4'x'`), or None for NULL, an expression or
    anything else (what MariaDB writes in information_schema.COLUMNS.COLUMN_DEFAULT)."""
    try:
        cur = Cursor(tokenize(sql))
        lit = _literal(cur)
    except Exception:  # noqa: BLE001 - text that does not lex is no literal
        return None
    return lit if cur.at_end() else None


def _literal_bytes(t: Tok) -> bytes:
    if t.base == 2:
        return int(t.text or "0", 2).to_bytes((len(t.text) + 7) // 8, "big")
    return bytes.fromhex(t.text if len(t.text) % 2 == 0 else "0" + t.text)


def skip_expr(cur: Cursor) -> None:
    """Skip a DEFAULT / ON UPDATE value: a literal, a signed number, a function call or (expr)."""
    while cur.kind() == "word" and cur.text() in ("+", "-"):
        cur.next()
    if cur.kind() == "(":
        cur.skip_parens()
        return
    t = cur.next()
    if t.kind == "word" and t.text.startswith("_") and cur.kind() == "str":  # _utf8mb4'x'
        cur.next()
    if cur.kind() == "(":
        cur.skip_parens()

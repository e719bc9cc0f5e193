"""The DDL lexer: a statement's tokens, and the cursor the grammar reads them with.

Statements are lexed with sqlglot's MySQL tokenizer (quoting, escapes, comments); versioned comments
(`/*!50100 ... */`, MariaDB's `/*M!... */`) count as code, as MySQL reads them. `Cursor` raises
`DdlSyntaxError` at the first token it cannot accept; nothing here knows a statement's meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import TokenType

__all__ = ["Cursor", "DdlSyntaxError", "TableName", "Tok", "expand_versioned_comments", "split_top", "tokenize"]

TableName = tuple[str, str]  # (db, table)

_VERSIONED_COMMENT = re.compile(r"/\*M?!\d*(.*?)\*/", re.S)
_DIALECT = MySQL()


class DdlSyntaxError(ValueError):
    """The statement is DDL the grammar cannot read with certainty."""


def expand_versioned_comments(sql: str) -> str:
    """`sql` with versioned comments (`/*!50100 ... */`) replaced by their content, as MySQL reads them."""
    return _VERSIONED_COMMENT.sub(lambda m: " " + m.group(1) + " ", sql)


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str  # "word", "ident" (quoted), "str", "num", or the punctuation itself: "(", ")", ",", ".", "=", ";"
    text: str
    base: int = 10  # of a "num": 2 for a bit-value literal (b'101', 0b101), 16 for a hexadecimal one (x'0a', 0x0a)

    @property
    def up(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


_PUNCT = {TokenType.L_PAREN: "(", TokenType.R_PAREN: ")", TokenType.COMMA: ",", TokenType.DOT: ".",
          TokenType.EQ: "=", TokenType.SEMICOLON: ";"}
_COMMANDS = {TokenType.RENAME, TokenType.REPLACE, TokenType.COMMAND, TokenType.EXECUTE, TokenType.FETCH}
_STRINGS = {TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.RAW_STRING}


def tokenize(sql: str) -> list[Tok]:
    """Tokens of a statement; versioned comments (`/*!50100 ... */`) count as code, like MySQL does."""
    sql = expand_versioned_comments(sql)
    out: list[Tok] = []
    raw = _DIALECT.tokenizer().tokenize(sql)
    for k, t in enumerate(raw):
        tt = t.token_type
        if tt in _COMMANDS and k + 1 < len(raw) and raw[k + 1].token_type == TokenType.STRING \
                and sql[t.end + 1:].lstrip()[:1] not in ("'", '"'):
            # sqlglot keeps the rest of a "command" (RENAME ...) as one string: lex it as code
            out.append(Tok("word", t.text))
            out.extend(tokenize(sql[t.end + 1:]))
            break
        if tt in _PUNCT:
            out.append(Tok(_PUNCT[tt], t.text))
        elif tt == TokenType.IDENTIFIER:
            out.append(Tok("ident", t.text))
        elif tt in _STRINGS:
            out.append(Tok("str", t.text))
        elif tt == TokenType.NUMBER:
            out.append(Tok("num", t.text))
        elif tt in (TokenType.BIT_STRING, TokenType.HEX_STRING, TokenType.BYTE_STRING):
            out.append(Tok("num", t.text, 2 if tt == TokenType.BIT_STRING else 16 if tt == TokenType.HEX_STRING
                           else 10))
        elif " " in t.text.strip() and tt not in _STRINGS:
            out.extend(Tok("word", w) for w in t.text.split())  # "PRIMARY KEY", "DOUBLE PRECISION", ...
        else:
            out.append(Tok("word", t.text))
    return out


class Cursor:
    """A position in a statement's tokens, read by the grammar."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def up(self, k: int = 0) -> str:
        t = self.peek(k)
        return t.up if t is not None else ""

    def kind(self, k: int = 0) -> str:
        t = self.peek(k)
        return t.kind if t is not None else ""

    def text(self, k: int = 0) -> str:
        """The text of the token `k` ahead ("" past the end)."""
        t = self.peek(k)
        return t.text if t is not None else ""

    def at_end(self) -> bool:
        return self.i >= len(self.toks)

    def next(self) -> Tok:
        if self.i >= len(self.toks):
            raise DdlSyntaxError("unexpected end of statement")
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, *words: str) -> bool:
        """Consume the words if they come next (all of them)."""
        for k, w in enumerate(words):
            if self.up(k) != w:
                return False
        self.i += len(words)
        return True

    def accept_punct(self, p: str) -> bool:
        if self.kind() == p:
            self.i += 1
            return True
        return False

    def expect_punct(self, p: str) -> None:
        if not self.accept_punct(p):
            got = self.peek()
            raise DdlSyntaxError(f"expected {p!r}, got {got.text if got else 'end of statement'!r}")

    def ident(self) -> str:
        t = self.next()
        if t.kind in ("word", "ident"):
            return t.text
        if t.kind == "str":  # MySQL accepts 'name' in a few places (ANSI_QUOTES off)
            return t.text
        raise DdlSyntaxError(f"expected a name, got {t.text!r}")

    def table_name(self, default_db: str | None) -> TableName:
        a = self.ident()
        if self.accept_punct("."):
            return (a, self.ident())
        if not default_db:
            raise DdlSyntaxError(f"table {a} has no database and the statement ran without a default one")
        return (default_db, a)

    def skip_parens(self) -> list[Tok]:
        """Consume a balanced ( ... ) and return the tokens inside."""
        self.expect_punct("(")
        start, depth = self.i, 1
        while depth:
            t = self.next()
            if t.kind == "(":
                depth += 1
            elif t.kind == ")":
                depth -= 1
        return self.toks[start:self.i - 1]


def split_top(toks: list[Tok], sep: str = ",") -> list[list[Tok]]:
    """Split tokens at `sep` outside parentheses."""
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.kind == "(":
            depth += 1
        elif t.kind == ")":
            depth -= 1
        if t.kind == sep and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]

"""Reading DDL statements from the binlog and computing the table definitions they produce.

Statements are lexed with sqlglot's MySQL tokenizer (quoting, escapes, comments) and read by a small
grammar for the statements that change what a table's rows look like: CREATE TABLE, ALTER TABLE
(ADD / DROP / MODIFY / CHANGE / RENAME COLUMN, keys, RENAME TO, CONVERT TO CHARACTER SET), DROP TABLE,
RENAME TABLE, TRUNCATE TABLE, CREATE / DROP INDEX, DROP DATABASE. sqlglot's own parser is not used for
these because it loses MySQL type details (REAL, LONG and INT8 come back as FLOAT, BIGINT and TINYINT),
fails on spatial types, and falls back to an opaque command for RENAME TABLE, `ADD (a INT, b INT)` and
CONVERT TO. Anything this grammar cannot read with certainty becomes an `Unparsed` statement naming the
tables it touches, so the caller re-reads those tables from the source instead of guessing.

Everything here is pure: `parse_ddl(sql, default_db)` and `TableDef` transformations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Union

from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import TokenType

from obsync.core.defaults import Literal, default_text
from obsync.core.schema import Column, TableSchema

TableName = tuple[str, str]  # (db, table)

_VERSIONED_COMMENT = re.compile(r"/\*M?!\d*(.*?)\*/", re.S)
_DIALECT = MySQL()


class DdlSyntaxError(ValueError):
    """The statement is DDL this module cannot read with certainty."""


# ---- lexing ----------------------------------------------------------------------------------------

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
    sql = _VERSIONED_COMMENT.sub(lambda m: " " + m.group(1) + " ", sql)
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


class _Cursor:
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


def _split_top(toks: list[Tok], sep: str = ",") -> list[list[Tok]]:
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


# ---- column definitions ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ColumnDef:
    """A column as written in DDL; its character set may still be the table's default."""

    name: str
    data_type: str
    column_type: str
    unsigned: bool = False
    length: int | None = None  # CHAR/BINARY length, DECIMAL precision
    scale: int | None = None
    fsp: int = 0
    values: tuple[str, ...] = ()
    charset: str | None = None  # explicit CHARACTER SET (or implied by COLLATE / NATIONAL / binary types)
    nullable: bool = True
    generated: str | None = None
    primary: bool = False
    collation: str | None = None  # explicit COLLATE (else the tracker fills it in, see SchemaTracker)
    unique: bool = False
    is_char: bool = False  # takes the table's default character set when none is given
    default: Literal | None = None  # the DEFAULT literal (None: none, NULL or an expression)

    def to_column(self, default_charset: str | None) -> Column:
        charset = self.charset
        if self.is_char and charset is None:
            charset = default_charset
        precision: int | None
        if self.data_type == "decimal":
            precision = self.length
        else:
            precision = _char_max_length(self.data_type, self.length, self.values)
        col = Column(
            name=self.name, data_type=self.data_type, column_type=self.column_type,
            nullable=self.nullable and not self.primary, unsigned=self.unsigned, charset=charset,
            precision=precision, scale=self.scale if self.data_type == "decimal" else None,
            fsp=self.fsp if self.data_type in ("time", "datetime", "timestamp") else 0,
            values=self.values, generated=self.generated,
            collation=self.collation.lower() if self.collation and charset not in (None, "binary") else None,
        )
        return with_default(col, self.default)


_LOB_LENGTHS = {"tinytext": 255, "tinyblob": 255, "text": 65535, "blob": 65535,
                "mediumtext": 16777215, "mediumblob": 16777215}


def _char_max_length(data_type: str, length: int | None, values: tuple[str, ...]) -> int | None:
    """information_schema.COLUMNS.CHARACTER_MAXIMUM_LENGTH, as `catalog` stores it."""
    if data_type in ("char", "varchar", "binary", "varbinary"):
        return length
    if data_type in _LOB_LENGTHS:
        return _LOB_LENGTHS[data_type]
    if data_type == "enum":
        return max((len(v) for v in values), default=0)
    if data_type == "set":
        return sum(len(v) for v in values) + max(len(values) - 1, 0)
    return None


_INT_ALIASES = {
    "TINYINT": "tinyint", "INT1": "tinyint", "SMALLINT": "smallint", "INT2": "smallint",
    "MEDIUMINT": "mediumint", "MIDDLEINT": "mediumint", "INT3": "mediumint", "INT": "int", "INTEGER": "int",
    "INT4": "int", "BIGINT": "bigint", "INT8": "bigint",
}
_SIMPLE = {
    "DATE": "date", "YEAR": "year", "JSON": "json", "TINYTEXT": "tinytext", "MEDIUMTEXT": "mediumtext",
    "LONGTEXT": "longtext", "TINYBLOB": "tinyblob", "MEDIUMBLOB": "mediumblob", "LONGBLOB": "longblob",
    "GEOMETRY": "geometry", "POINT": "point", "LINESTRING": "linestring", "POLYGON": "polygon",
    "MULTIPOINT": "multipoint", "MULTILINESTRING": "multilinestring", "MULTIPOLYGON": "multipolygon",
    "GEOMETRYCOLLECTION": "geometrycollection", "GEOMCOLLECTION": "geomcollection",
    "INET6": "inet6", "INET4": "inet4", "UUID": "uuid",
}
_CHAR_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})
_BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
_TEXT_TO_BLOB = {"char": "binary", "varchar": "varbinary", "tinytext": "tinyblob", "text": "blob",
                 "mediumtext": "mediumblob", "longtext": "longblob"}


def normalize_charset(cs: str) -> str:
    cs = cs.lower()
    return "utf8mb3" if cs == "utf8" else cs


def charset_of_collation(collation: str) -> str:
    return normalize_charset(collation.split("_", 1)[0])


def _lob_by_length(kind: str, n: int | None) -> str:
    """TEXT(n) / BLOB(n): the smallest type that holds n (characters or bytes)."""
    if n is None:
        return kind
    prefix = "tiny" if n < 256 else "" if n < 65536 else "medium" if n < 16777216 else "long"
    return prefix + kind


def _int_args(args: list[list[Tok]]) -> list[int]:
    out = []
    for a in args:
        if len(a) != 1 or a[0].kind != "num":
            raise DdlSyntaxError("expected a number in a type's parentheses")
        out.append(int(a[0].text))
    return out


def parse_column_def(cur: _Cursor, name: str, dialect: str = "mysql") -> tuple[ColumnDef, int]:
    """A column definition after its name. Returns the definition and the index where it ends."""
    t = cur.next()
    if t.kind != "word":
        raise DdlSyntaxError(f"expected a type for column {name}, got {t.text!r}")
    word = t.up
    def take_args() -> list[list[Tok]]:
        if cur.kind() == "(":
            return _split_top(cur.skip_parens())
        return []

    charset: str | None = None
    is_char = False
    values: tuple[str, ...] = ()
    length = scale = None
    fsp = 0
    unsigned = False
    width = ""  # display width, kept in column_type
    if word == "NATIONAL":
        word = cur.next().up
        if word == "CHARACTER":
            word = "CHAR"
        if word not in ("CHAR", "VARCHAR"):
            raise DdlSyntaxError(f"unknown type NATIONAL {word}")
        if cur.accept("VARYING"):
            word = "VARCHAR"
        charset = "utf8mb3"
    elif word in ("NCHAR", "NVARCHAR"):
        if word == "NCHAR" and cur.accept("VARCHAR"):
            word = "NVARCHAR"
        elif word == "NCHAR" and cur.accept("VARYING"):
            word = "NVARCHAR"
        word = "CHAR" if word == "NCHAR" else "VARCHAR"
        charset = "utf8mb3"
    elif word == "CHARACTER":
        word = "VARCHAR" if cur.accept("VARYING") else "CHAR"
    elif word == "CHAR" and cur.accept("VARYING"):
        word = "VARCHAR"
    elif word == "VARCHARACTER":
        word = "VARCHAR"
    elif word == "LONG":
        if cur.accept("VARBINARY"):
            word = "MEDIUMBLOB"
        else:
            cur.accept("VARCHAR") or cur.accept("CHAR", "VARYING")
            word = "MEDIUMTEXT"

    if word in _INT_ALIASES:
        data_type = _INT_ALIASES[word]
        a = _int_args(take_args())
        width = f"({a[0]})" if a else ""
    elif word in ("BOOL", "BOOLEAN"):
        data_type, width = "tinyint", "(1)"
    elif word == "SERIAL":
        data_type, unsigned = "bigint", True
    elif word in ("DECIMAL", "DEC", "NUMERIC", "FIXED"):
        data_type = "decimal"
        a = _int_args(take_args())
        length = a[0] if a else 10
        scale = a[1] if len(a) > 1 else 0
    elif word in ("FLOAT", "FLOAT4"):
        a = _int_args(take_args())
        data_type = "double" if (len(a) == 1 and a[0] > 24) else "float"
        width = f"({a[0]},{a[1]})" if len(a) == 2 else ""
    elif word in ("DOUBLE", "REAL", "FLOAT8"):
        cur.accept("PRECISION")
        a = _int_args(take_args())
        data_type = "double"
        width = f"({a[0]},{a[1]})" if len(a) == 2 else ""
    elif word == "BIT":
        a = _int_args(take_args())
        data_type, length = "bit", (a[0] if a else 1)
        width = f"({length})"
    elif word in ("CHAR", "VARCHAR", "BINARY", "VARBINARY"):
        data_type = word.lower()
        a = _int_args(take_args())
        if not a and data_type in ("varchar", "varbinary"):
            raise DdlSyntaxError(f"{word} needs a length")
        length = a[0] if a else 1
        if cur.accept("BYTE") and data_type == "char":
            data_type = "binary"
        is_char = data_type in ("char", "varchar")
    elif word in ("TEXT", "BLOB"):
        a = _int_args(take_args())
        data_type = _lob_by_length(word.lower(), a[0] if a else None)
        is_char = word == "TEXT"
    elif word in ("TIME", "DATETIME", "TIMESTAMP"):
        data_type = word.lower()
        a = _int_args(take_args())
        fsp = a[0] if a else 0
        width = f"({fsp})" if fsp else ""
    elif word in ("ENUM", "SET"):
        data_type = word.lower()
        items = take_args()
        vals = []
        for item in items:
            strs = [x for x in item if x.kind == "str"]
            if len(strs) != 1:
                raise DdlSyntaxError(f"cannot read the members of {word} column {name}")
            vals.append(strs[0].text)
        values = tuple(vals)
        is_char = True
    elif word in _SIMPLE:
        data_type = _SIMPLE[word]
        if word == "YEAR":
            take_args()
        is_char = data_type in _CHAR_TYPES
    else:
        raise DdlSyntaxError(f"unknown type {t.text} for column {name}")

    if data_type == "json" and dialect == "mariadb":  # MariaDB's JSON is an alias of LONGTEXT
        data_type, charset, is_char = "longtext", "utf8mb4", True

    # SERIAL is BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE (a unique key, not the primary key)
    nullable, generated, primary, unique, zerofill = True, None, False, word == "SERIAL", False
    if word == "SERIAL":
        nullable = False
    collation: str | None = None
    default: Literal | None = None
    while not cur.at_end() and cur.kind() != "," and cur.kind() != ")":
        w = cur.up()
        if cur.accept("UNSIGNED"):
            unsigned = True
        elif cur.accept("SIGNED"):
            pass
        elif cur.accept("ZEROFILL"):
            zerofill = unsigned = True
        elif cur.accept("CHARACTER", "SET") or cur.accept("CHARSET") or cur.accept("CHAR", "SET"):
            charset = normalize_charset(cur.ident())
        elif cur.accept("COLLATE"):
            collation = cur.ident()
        elif cur.accept("BINARY"):  # a binary *collation* of the character set: the values stay text
            pass
        elif cur.accept("ASCII"):
            charset = "latin1"
        elif cur.accept("UNICODE"):
            charset = "ucs2"
        elif cur.accept("NOT", "NULL"):
            nullable = False
        elif cur.accept("NULL"):
            nullable = True
        elif cur.accept("DEFAULT"):
            default = read_default(cur)
        elif cur.accept("ON", "UPDATE"):
            _skip_expr(cur)
        elif cur.accept("AUTO_INCREMENT"):
            pass
        elif cur.accept("UNIQUE"):
            cur.accept("KEY")
            unique = True
        elif cur.accept("PRIMARY", "KEY") or cur.accept("KEY"):
            primary = True
        elif cur.accept("COMMENT"):
            cur.next()
        elif cur.accept("COLUMN_FORMAT") or cur.accept("STORAGE") or cur.accept("SRID"):
            cur.next()
        elif cur.accept("INVISIBLE") or cur.accept("VISIBLE") or cur.accept("COMPRESSED"):
            if cur.accept_punct("="):
                cur.next()
        elif cur.accept("GENERATED", "ALWAYS", "AS") or cur.accept("AS"):
            cur.skip_parens()
            generated = "VIRTUAL"
            if cur.accept("STORED") or cur.accept("PERSISTENT"):
                generated = "STORED"
            else:
                cur.accept("VIRTUAL")
        elif cur.accept("CHECK"):
            cur.skip_parens()
        elif cur.accept("CONSTRAINT"):
            if cur.up() != "CHECK":
                cur.ident()
        elif cur.accept("REFERENCES"):
            while not cur.at_end() and cur.kind() not in (",", ")"):
                if cur.kind() == "(":
                    cur.skip_parens()
                else:
                    cur.next()
        elif w in ("FIRST", "AFTER"):
            break
        else:
            got = cur.peek()
            raise DdlSyntaxError(f"unknown attribute {got.text if got else ''!r} of column {name}")

    if collation and charset is None:
        charset = charset_of_collation(collation)
    if charset == "binary" and data_type in _TEXT_TO_BLOB:
        data_type, is_char = _TEXT_TO_BLOB[data_type], False
    if data_type in _BINARY_TYPES:
        charset, is_char = "binary", False

    if not width and dialect in _WIDTH_DIALECTS:
        if data_type in _DEFAULT_WIDTHS:  # MariaDB and OceanBase print int(11), bigint(20) unsigned, ...
            width = f"({_DEFAULT_WIDTHS[data_type][1 if unsigned else 0]})"
        elif data_type == "year":
            width = "(4)"
    base = data_type
    if data_type in ("char", "varchar", "binary", "varbinary", "decimal"):
        inner = f"{length}" if data_type != "decimal" else f"{length},{scale}"
        column_type = f"{base}({inner})"
    elif data_type in ("enum", "set"):
        column_type = base + "(" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + ")"
    else:
        column_type = base + width
    if unsigned and data_type in ("tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float",
                                  "double"):
        column_type += " unsigned"
    else:
        unsigned = unsigned and data_type in ("tinyint", "smallint", "mediumint", "int", "bigint", "decimal",
                                              "float", "double")
    if zerofill:
        column_type += " zerofill"
    return ColumnDef(name=name, data_type=data_type, column_type=column_type, unsigned=unsigned, length=length,
                     scale=scale, fsp=fsp, values=values, charset=charset, nullable=nullable,
                     generated=generated, primary=primary, unique=unique, is_char=is_char,
                     collation=collation, default=default), cur.i


_WIDTH_DIALECTS = frozenset({"mariadb", "oceanbase"})  # MySQL 8 prints no integer display width
_DEFAULT_WIDTHS = {"tinyint": (4, 3), "smallint": (6, 5), "mediumint": (9, 8), "int": (11, 10), "bigint": (20, 20)}


def with_default(col: Column, literal: Literal | None) -> Column:
    """`col` with the default `literal` (canonical text, see `obsync.core.defaults`; None: no default)."""
    text = default_text(col, literal)
    return col if text == col.default else replace(col, default=text)


_TYPED_LITERALS = frozenset({"DATE", "TIME", "TIMESTAMP"})


def read_default(cur: _Cursor) -> Literal | None:
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
    _skip_expr(cur)
    return None


_NOW_WORDS = frozenset({"CURRENT_TIMESTAMP", "NOW", "LOCALTIME", "LOCALTIMESTAMP"})


def _value_ends(cur: _Cursor) -> bool:
    """True when the DEFAULT value ends at the cursor (not an operator continuing an expression)."""
    return cur.at_end() or cur.kind() in (",", ")") or (
        cur.kind() == "word" and cur.peek().text not in ("+", "-", "*", "/", "||"))


def _literal(cur: _Cursor) -> Literal | None:
    """A literal at the cursor, consumed (None, not consumed or partly: not a literal, or NULL)."""
    sign = ""
    while cur.kind() == "word" and cur.peek().text in ("+", "-"):
        if cur.next().text == "-":
            sign = "" if sign else "-"
    t = cur.peek()
    if t is None:
        return None
    if t.kind == "." and cur.kind(1) == "num" and cur.peek(1).base == 10:  # .5
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
        t = cur.peek()
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
        cur = _Cursor(tokenize(sql))
        lit = _literal(cur)
    except Exception:  # noqa: BLE001 - text that does not lex is no literal
        return None
    return lit if cur.at_end() else None


def _literal_bytes(t: Tok) -> bytes:
    if t.base == 2:
        return int(t.text or "0", 2).to_bytes((len(t.text) + 7) // 8, "big")
    return bytes.fromhex(t.text if len(t.text) % 2 == 0 else "0" + t.text)


def _skip_expr(cur: _Cursor) -> None:
    """Skip a DEFAULT / ON UPDATE value: a literal, a signed number, a function call or (expr)."""
    while cur.kind() == "word" and cur.peek().text in ("+", "-"):
        cur.next()
    if cur.kind() == "(":
        cur.skip_parens()
        return
    t = cur.next()
    if t.kind == "word" and t.text.startswith("_") and cur.kind() == "str":  # _utf8mb4'x'
        cur.next()
    if cur.kind() == "(":
        cur.skip_parens()


# ---- statements ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IndexDef:
    name: str | None  # None: the server names it after its first column
    kind: str  # "primary", "unique" or "index"
    columns: tuple[str, ...]  # empty when a key part is an expression (not usable as a row key)


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: TableName
    columns: tuple[ColumnDef, ...] = ()
    indexes: tuple[IndexDef, ...] = ()
    charset: str | None = None
    like: TableName | None = None
    if_not_exists: bool = False


@dataclass(frozen=True, slots=True)
class AlterTable:
    table: TableName
    actions: tuple[tuple[Any, ...], ...]  # ("add_column", ColumnDef, position), ("drop_column", name), ...

    @property
    def new_name(self) -> TableName | None:
        for a in self.actions:
            if a[0] == "rename_table":
                return a[1]
        return None


@dataclass(frozen=True, slots=True)
class DropTables:
    tables: tuple[TableName, ...]


@dataclass(frozen=True, slots=True)
class RenameTables:
    pairs: tuple[tuple[TableName, TableName], ...]


@dataclass(frozen=True, slots=True)
class TruncateTable:
    table: TableName


@dataclass(frozen=True, slots=True)
class CreateIndex:
    table: TableName
    index: IndexDef


@dataclass(frozen=True, slots=True)
class DropIndex:
    table: TableName
    name: str


@dataclass(frozen=True, slots=True)
class DropDatabase:
    db: str


@dataclass(frozen=True, slots=True)
class DatabaseChanged:
    """CREATE / ALTER DATABASE: its default character set may have changed."""

    db: str


@dataclass(frozen=True, slots=True)
class Unparsed:
    """DDL on `tables` that could not be read: re-read those tables from the source."""

    tables: tuple[TableName, ...]
    reason: str


Statement = Union[CreateTable, AlterTable, DropTables, RenameTables, TruncateTable, CreateIndex, DropIndex,
                  DropDatabase, DatabaseChanged, Unparsed]


def statement_tables(st: Statement) -> tuple[TableName, ...]:
    """The (db, table) pairs a statement names, in order, without duplicates."""
    names: list[TableName] = []
    if isinstance(st, CreateTable):
        names = [st.table] + ([st.like] if st.like else [])
    elif isinstance(st, AlterTable):
        names = [st.table] + ([st.new_name] if st.new_name else [])
    elif isinstance(st, (DropTables, Unparsed)):
        names = list(st.tables)
    elif isinstance(st, RenameTables):
        names = [n for pair in st.pairs for n in pair]
    elif isinstance(st, (TruncateTable, CreateIndex, DropIndex)):
        names = [st.table]
    return tuple(dict.fromkeys(names))


_TABLE_REF = re.compile(
    r"""(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+))(?:\s*\.\s*(?:`((?:[^`]|``)+)`|([A-Za-z0-9_$]+)))?""")
_TABLE_VERB = re.compile(
    r"^\s*(?:ALTER\s+(?:ONLINE\s+|OFFLINE\s+|IGNORE\s+)*TABLE|CREATE\s+(?:OR\s+REPLACE\s+)?TABLE"
    r"(?:\s+IF\s+NOT\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|"
    r"(?:CREATE|DROP)\s+.*?\bINDEX\b.*?\bON)\s+", re.I | re.S)


def guess_tables(sql: str, default_db: str | None) -> tuple[TableName, ...]:
    """The table named right after a DDL verb, found by pattern when the statement cannot be parsed."""
    text = _VERSIONED_COMMENT.sub(lambda m: " " + m.group(1) + " ", sql)
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
    cur = _Cursor(toks)
    try:
        return _statement(cur, default_db, dialect)
    except DdlSyntaxError as e:
        tables = guess_tables(sql, default_db)
        return Unparsed(tables, str(e)) if tables else None


def _statement(cur: _Cursor, db: str | None, dialect: str) -> Statement | None:
    if cur.accept("ALTER"):
        while cur.accept("ONLINE") or cur.accept("OFFLINE") or cur.accept("IGNORE"):
            pass
        if cur.accept("TABLE"):
            return _alter_table(cur, db, dialect)
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
            return _create_table(cur, db, dialect)
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
            cols = _key_parts(cur)
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


def _key_parts(cur: _Cursor) -> tuple[str, ...]:
    """`(a, b(10) DESC, ...)`: the column names; () if any part is an expression."""
    parts = _split_top(cur.skip_parens())
    cols = []
    for p in parts:
        if p[0].kind == "(" or p[0].kind not in ("word", "ident"):
            return ()
        cols.append(p[0].text)
    return tuple(cols)


def _index_def(cur: _Cursor, kind: str) -> IndexDef:
    """After PRIMARY KEY / UNIQUE / KEY|INDEX: [name] [USING x] (parts) [options]."""
    name = None
    if kind != "primary":
        cur.accept("KEY") or cur.accept("INDEX")
        cur.accept("IF", "NOT", "EXISTS")
        if cur.kind() in ("word", "ident") and cur.up() != "USING":
            name = cur.ident()
    if cur.accept("USING"):
        cur.next()
    cols = _key_parts(cur)
    while not cur.at_end() and cur.kind() != ",":  # index options
        if cur.kind() == "(":
            cur.skip_parens()
        else:
            cur.next()
    return IndexDef("PRIMARY" if kind == "primary" else name, kind, cols)


def _table_element(cur: _Cursor) -> IndexDef | None | str:
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


def _create_table(cur: _Cursor, db: str | None, dialect: str) -> Statement:
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    table = cur.table_name(db)
    if cur.accept("LIKE"):
        return CreateTable(table, like=cur.table_name(db))
    if cur.kind() == "(" and cur.up(1) == "LIKE":
        inner = _Cursor(cur.skip_parens())
        inner.accept("LIKE")
        return CreateTable(table, like=inner.table_name(db))
    if cur.kind() != "(":
        raise DdlSyntaxError("CREATE TABLE without a column list (CREATE ... SELECT)")
    body = cur.skip_parens()
    columns: list[ColumnDef] = []
    indexes: list[IndexDef] = []
    for item in _split_top(body):
        c = _Cursor(item)
        el = _table_element(c)
        if el == "column":
            name = c.ident()
            col, _ = parse_column_def(c, name, dialect)
            if not c.at_end():
                raise DdlSyntaxError(f"unexpected {c.peek().text!r} after column {name}")
            columns.append(col)
        elif isinstance(el, IndexDef):
            indexes.append(el)
    charset = None
    collation = None
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
        else:
            cur.next()
    if charset is None and collation:
        charset = charset_of_collation(collation)
    return CreateTable(table, tuple(columns), tuple(indexes), charset, if_not_exists=if_not_exists)


_NOOP_ALTER_WORDS = frozenset({
    "ENGINE", "AUTO_INCREMENT", "COMMENT", "ROW_FORMAT", "ALGORITHM", "LOCK", "FORCE", "ORDER",
    "KEY_BLOCK_SIZE", "STATS_PERSISTENT", "STATS_AUTO_RECALC", "STATS_SAMPLE_PAGES", "AVG_ROW_LENGTH",
    "CHECKSUM", "PAGE_CHECKSUM", "COMPRESSION", "CONNECTION", "DATA", "INDEX", "DELAY_KEY_WRITE",
    "ENCRYPTION", "INSERT_METHOD", "MAX_ROWS", "MIN_ROWS", "PACK_KEYS", "PASSWORD", "TABLESPACE", "UNION",
    "DISABLE", "ENABLE", "DISCARD", "IMPORT", "WITH", "WITHOUT", "TRUNCATE", "COALESCE", "REORGANIZE",
    "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR", "REMOVE", "PARTITION", "TRANSACTIONAL",
    "PAGE_COMPRESSED", "PAGE_COMPRESSION_LEVEL", "IETF_QUOTES", "SEQUENCE", "WAIT", "NOWAIT",
    "SECONDARY_ENGINE", "STATS_AUTO_RECALC", "ENGINE_ATTRIBUTE", "AUTOEXTEND_SIZE", "UPGRADE",
    # OceanBase table options
    "TABLEGROUP", "BLOCK_SIZE", "REPLICA_NUM", "PRIMARY_ZONE", "PCTFREE", "USE_BLOOM_FILTER",
    "PROGRESSIVE_MERGE_NUM", "TABLET_SIZE", "LOCALITY", "STORAGE_FORMAT_VERSION", "READ", "TABLE_MODE",
    "DUPLICATE_SCOPE", "ENABLE_MACRO_BLOCK_BLOOM_FILTER", "KV_ATTRIBUTES", "TTL", "AUTO_INCREMENT_MODE",
})
_PARTITION_WORDS = frozenset({"TRUNCATE", "COALESCE", "REORGANIZE", "EXCHANGE", "ANALYZE", "CHECK", "OPTIMIZE",
                              "REBUILD", "REPAIR", "REMOVE", "PARTITION", "DISABLE", "ENABLE", "DISCARD",
                              "IMPORT", "FORCE", "UPGRADE", "ORDER", "ALGORITHM", "LOCK", "WITH", "WITHOUT"})


def _alter_table(cur: _Cursor, db: str | None, dialect: str) -> Statement:
    cur.accept("IF", "EXISTS")
    table = cur.table_name(db)
    actions: list[tuple[Any, ...]] = []
    rest = cur.toks[cur.i:]
    for spec in _split_top(rest):
        if _partition_spec(spec):  # partition maintenance comes last and lists partitions with commas
            break
        actions.extend(_alter_spec(_Cursor(spec), db, dialect))
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


def _position(c: _Cursor) -> Any:
    if c.accept("FIRST"):
        return "FIRST"
    if c.accept("AFTER"):
        return ("AFTER", c.ident())
    return None


def _column_with_position(c: _Cursor, name: str, dialect: str) -> tuple[ColumnDef, Any]:
    col, _ = parse_column_def(c, name, dialect)
    pos = _position(c)
    if not c.at_end():
        raise DdlSyntaxError(f"unexpected {c.peek().text!r} after column {name}")
    return col, pos


def _alter_spec(c: _Cursor, db: str | None, dialect: str) -> list[tuple[Any, ...]]:
    w = c.up()
    if c.accept("ADD"):
        if c.up() in ("PARTITION",):
            return []
        if c.accept("COLUMN") or c.up() not in ("CONSTRAINT", "PRIMARY", "UNIQUE", "KEY", "INDEX", "FULLTEXT",
                                                "SPATIAL", "FOREIGN", "CHECK", "PERIOD", "SYSTEM"):
            c.accept("IF", "NOT", "EXISTS")
            if c.kind() == "(":
                out = []
                for item in _split_top(c.skip_parens()):
                    ic = _Cursor(item)
                    el = _table_element(ic)
                    if el == "column":
                        name = ic.ident()
                        col, _ = parse_column_def(ic, name, dialect)
                        out.append(("add_column", col, None))
                    elif isinstance(el, IndexDef):
                        out.append(("add_index", el))
                return out
            name = c.ident()
            col, pos = _column_with_position(c, name, dialect)
            return [("add_column", col, pos)]
        el = _table_element(c)
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
            raise DdlSyntaxError(f"unexpected {c.peek().text!r} after DROP COLUMN {name}")
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
                raise DdlSyntaxError(f"unexpected {c.peek().text!r} after SET DEFAULT of column {name}")
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
    out: list[tuple[Any, ...]] = []
    while not c.at_end():
        if c.accept("CHARACTER", "SET") or c.accept("CHARSET") or c.accept("CHAR", "SET"):
            c.accept_punct("=")
            out.append(("default_charset", normalize_charset(c.ident())))
        elif c.accept("COLLATE"):
            c.accept_punct("=")
            out.append(("default_charset", charset_of_collation(c.ident())))
        elif c.kind() == "(":
            c.skip_parens()
        else:
            c.next()
    return out


# ---- table definitions and applying statements ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TableDef:
    """A tracked table: its schema plus what the schema does not carry (key names, default charset)."""

    schema: TableSchema
    keys: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (index name, "primary"|"unique", columns)
    charset: str | None = None  # the table's default character set

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "keys": [[n, k, list(c)] for n, k, c in self.keys],
                "charset": self.charset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableDef:
        return cls(TableSchema.from_dict(d["schema"]), tuple((n, k, tuple(c)) for n, k, c in d.get("keys", ())),
                   d.get("charset"))

    def renamed(self, name: TableName) -> TableDef:
        return replace(self, schema=build_schema(name, self.schema.columns, self.keys))


def build_schema(name: TableName, columns: Iterable[Column], keys: Iterable[tuple[str, str, tuple[str, ...]]]
                 ) -> TableSchema:
    """A TableSchema with keys derived like `catalog.load_table_schema` does."""
    columns = tuple(columns)
    nullable = {c.name for c in columns if c.nullable}
    pk: tuple[str, ...] = ()
    uks = []
    for n, kind, cols in sorted(keys, key=lambda k: (k[1] != "primary", k[0])):
        if kind == "primary":
            pk = cols
        elif cols and not (set(cols) & nullable):
            uks.append(cols)
    return TableSchema(db=name[0], name=name[1], columns=columns, primary_key=pk, unique_keys=tuple(uks))


class _Cols:
    """Case-insensitive column lookup over a mutable list (MySQL column names ignore case)."""

    def __init__(self, cols: Iterable[Column]) -> None:
        self.cols = list(cols)

    def index(self, name: str) -> int:
        low = name.lower()
        for i, c in enumerate(self.cols):
            if c.name.lower() == low:
                return i
        raise DdlSyntaxError(f"no column {name}")

    def has(self, name: str) -> bool:
        return any(c.name.lower() == name.lower() for c in self.cols)

    def insert(self, col: Column, pos: Any) -> None:
        if pos == "FIRST":
            self.cols.insert(0, col)
        elif pos is None:
            self.cols.append(col)
        else:
            self.cols.insert(self.index(pos[1]) + 1, col)


def _auto_index_name(col: str, taken: set[str]) -> str:
    if col.lower() not in {t.lower() for t in taken}:
        return col
    n = 2
    while f"{col}_{n}".lower() in {t.lower() for t in taken}:
        n += 1
    return f"{col}_{n}"


def _add_key(keys: list[tuple[str, str, tuple[str, ...]]], idx: IndexDef, cols: _Cols) -> None:
    if idx.kind not in ("primary", "unique"):
        return
    names = tuple(cols.cols[cols.index(c)].name for c in idx.columns) if idx.columns else ()
    if idx.kind == "primary":
        keys[:] = [k for k in keys if k[1] != "primary"]
        keys.append(("PRIMARY", "primary", names))
        for c in names:  # primary key columns are NOT NULL
            i = cols.index(c)
            cols.cols[i] = replace(cols.cols[i], nullable=False)
        return
    name = idx.name or _auto_index_name(names[0] if names else "key", {k[0] for k in keys})
    if names:
        keys.append((name, "unique", names))


def create_table_def(st: CreateTable, default_charset: str | None) -> TableDef:
    """The table a CREATE TABLE (with a column list) defines."""
    charset = st.charset or default_charset
    cols = _Cols(d.to_column(charset) for d in st.columns)
    keys: list[tuple[str, str, tuple[str, ...]]] = []
    for d in st.columns:
        if d.primary:
            _add_key(keys, IndexDef("PRIMARY", "primary", (d.name,)), cols)
    for idx in st.indexes:
        _add_key(keys, idx, cols)
    for d in st.columns:
        if d.unique and not d.primary:
            _add_key(keys, IndexDef(None, "unique", (d.name,)), cols)
    return TableDef(build_schema(st.table, cols.cols, keys), tuple(keys), charset)


def apply_alter(tdef: TableDef, st: AlterTable) -> TableDef:
    """The table after an ALTER TABLE. Raises DdlSyntaxError when the statement does not fit the table
    (a column that is not there), which means the tracked definition cannot be trusted."""
    cols = _Cols(tdef.schema.columns)
    keys = list(tdef.keys)
    charset = tdef.charset
    name: TableName = (tdef.schema.db, tdef.schema.name)
    for action in st.actions:
        kind = action[0]
        if kind == "add_column":
            d: ColumnDef = action[1]
            if cols.has(d.name):
                raise DdlSyntaxError(f"column {d.name} already exists")
            cols.insert(d.to_column(charset), action[2])
            if d.primary:
                _add_key(keys, IndexDef("PRIMARY", "primary", (d.name,)), cols)
            elif d.unique:
                _add_key(keys, IndexDef(None, "unique", (d.name,)), cols)
        elif kind == "drop_column":
            i = cols.index(action[1])
            gone = cols.cols.pop(i).name
            keys = [(n, k, tuple(c for c in cs if c != gone)) for n, k, cs in keys]
            keys = [k for k in keys if k[2]]
        elif kind == "modify_column":
            old, d, pos = action[1], action[2], action[3]
            i = cols.index(old)
            old_name = cols.cols.pop(i).name
            new = d.to_column(charset)
            if pos is None:
                cols.cols.insert(i, new)
            else:
                cols.insert(new, pos)
            if new.name != old_name:
                keys = [(n, k, tuple(new.name if c == old_name else c for c in cs)) for n, k, cs in keys]
            if d.primary:
                _add_key(keys, IndexDef("PRIMARY", "primary", (new.name,)), cols)
            elif d.unique:
                _add_key(keys, IndexDef(None, "unique", (new.name,)), cols)
            if any(new.name in cs for n, k, cs in keys if k == "primary") and new.nullable:
                cols.cols[cols.index(new.name)] = replace(new, nullable=False)
        elif kind == "rename_column":
            i = cols.index(action[1])
            old_name = cols.cols[i].name
            cols.cols[i] = replace(cols.cols[i], name=action[2])
            keys = [(n, k, tuple(action[2] if c == old_name else c for c in cs)) for n, k, cs in keys]
        elif kind == "set_default":
            i = cols.index(action[1])
            cols.cols[i] = with_default(cols.cols[i], action[2])
        elif kind == "add_index":
            _add_key(keys, action[1], cols)
        elif kind == "drop_index":
            keys = [k for k in keys if k[0].lower() != action[1].lower()]
        elif kind == "drop_primary":
            keys = [k for k in keys if k[1] != "primary"]
        elif kind == "rename_index":
            keys = [(action[2] if n.lower() == action[1].lower() else n, k, cs) for n, k, cs in keys]
        elif kind == "rename_table":
            name = action[1]
        elif kind == "default_charset":
            charset = action[1]
        elif kind == "convert_charset":
            charset = action[1]
            cols.cols = [_convert(c, charset) for c in cols.cols]
        else:
            raise DdlSyntaxError(f"unknown action {kind}")
    return TableDef(build_schema(name, cols.cols, keys), tuple(keys), charset)


def _convert(c: Column, charset: str) -> Column:
    """CONVERT TO CHARACTER SET: text columns take the new set (binary ones keep theirs)."""
    if c.charset is None or c.charset == "binary":
        return c
    if charset == "binary" and c.data_type in _TEXT_TO_BLOB:
        dtype = _TEXT_TO_BLOB[c.data_type]
        blob = replace(c, data_type=dtype, column_type=c.column_type.replace(c.data_type, dtype, 1),
                       charset="binary", default=None)
        return with_default(blob, None if c.default is None else ("str", c.default))
    return replace(c, charset=charset)

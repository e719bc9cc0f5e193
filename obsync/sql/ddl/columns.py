"""Column definitions in DDL: a column's type, as `information_schema.COLUMNS` would show it, and its attributes.

`parse_column_def` reads what follows a column's name in CREATE TABLE and ALTER TABLE: the types MySQL,
MariaDB and OceanBase accept with their aliases (INT8 is bigint, REAL double, LONG mediumtext, NATIONAL
CHAR utf8mb3 char, ...), spatial types, MariaDB's JSON as LONGTEXT, and the display widths MariaDB and
OceanBase print; then NULL / NOT NULL, DEFAULT, keys, character set, collation and generated columns.
Anything else raises `DdlSyntaxError`.
"""

from __future__ import annotations

from obsync.core.defaults import Literal
from obsync.sql.ddl.lexer import Cursor, DdlSyntaxError, Tok, split_top
from obsync.sql.ddl.literals import read_default, skip_expr
from obsync.sql.ddl.statements import ColumnDef

__all__ = ["TEXT_TO_BLOB", "charset_of_collation", "normalize_charset", "parse_column_def"]

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
TEXT_TO_BLOB = {"char": "binary", "varchar": "varbinary", "tinytext": "tinyblob", "text": "blob",
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


def parse_column_def(cur: Cursor, name: str, dialect: str = "mysql") -> tuple[ColumnDef, int]:
    """A column definition after its name. Returns the definition and the index where it ends."""
    t = cur.next()
    if t.kind != "word":
        raise DdlSyntaxError(f"expected a type for column {name}, got {t.text!r}")
    word = t.up

    def take_args() -> list[list[Tok]]:
        if cur.kind() == "(":
            return split_top(cur.skip_parens())
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
    auto_increment, comment = word == "SERIAL", None
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
            skip_expr(cur)
        elif cur.accept("AUTO_INCREMENT"):
            auto_increment = True
        elif cur.accept("UNIQUE"):
            cur.accept("KEY")
            unique = True
        elif cur.accept("PRIMARY", "KEY") or cur.accept("KEY"):
            primary = True
        elif cur.accept("COMMENT"):
            comment = cur.next().text or None
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
    if charset == "binary" and data_type in TEXT_TO_BLOB:
        data_type, is_char = TEXT_TO_BLOB[data_type], False
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
                     collation=collation, default=default, auto_increment=auto_increment,
                     comment=comment), cur.i


_WIDTH_DIALECTS = frozenset({"mariadb", "oceanbase"})  # MySQL 8 prints no integer display width
_DEFAULT_WIDTHS = {"tinyint": (4, 3), "smallint": (6, 5), "mediumint": (9, 8), "int": (11, 10), "bigint": (20, 20)}

"""Row filters: the per-object `where:` clause, applied by the database to full sync and by obsync to changes.

`where:` holds one SQL condition over the table's columns, written as in MySQL:

    objects:
      - {match: shop.orders, where: "status IN ('paid', 'shipped') AND amount >= 100"}

Full sync puts it in its SELECT (`RowFilter.sql`, generated again from the parsed clause: the user's text never
reaches the database as written). Incremental sync evaluates it on every row image (`RowFilter.matches`) with
the answer the database would give for that row (sessions in UTC). A row passes when the condition is TRUE;
FALSE and NULL drop it. An update is judged on its before and after images. A clause obsync cannot evaluate
exactly is refused when the task is checked, and the error names what is not supported.

Supported, and evaluated by obsync exactly as MySQL and MariaDB do:

- `AND` `&&` `OR` `||` `XOR` `NOT` `!` with SQL's NULL logic; `IS [NOT] NULL` (on any column), `IS [NOT] TRUE`
  and `IS [NOT] FALSE`; a number as a condition (true when not zero, as `where: "active"`).
- `=` `<>` `!=` `<` `<=` `>` `>=` `<=>`, `[NOT] BETWEEN`, `[NOT] IN (...)` (with MySQL's answer for a NULL in the
  list), between a column and literals, and between two columns of the same kind (text: the same collation).
- Numbers: integer (signed, unsigned) and YEAR, DECIMAL, FLOAT and DOUBLE columns; literals `42`, `1.50` (an exact
  DECIMAL), `1e3` (a DOUBLE), `TRUE`/`FALSE`; `+` `-` `*` `DIV` `MOD`/`%` and unary `-`: exact on integers and
  decimals, in doubles as soon as a DOUBLE takes part; `/` when a DOUBLE takes part. Division by zero is NULL.
  Where the database fails the query (a result out of the BIGINT range, e.g. `unsigned_col - 1` on 0), obsync
  stops with an error on that row too.
- Dates and times: DATE, DATETIME, TIMESTAMP and TIME columns against quoted literals `'2024-05-01'`,
  `'2024-05-01 12:30:00[.ffffff]'` (UTC for TIMESTAMP columns) and `'[-]hhh:mm:ss[.ffffff]'`; zero dates stored
  in the table (`0000-00-00`) order before every date, as in MySQL.
- Text: `[NOT] LIKE` with `%`, `_`, the default `\\` escape or `ESCAPE 'c'`, and the comparisons above, following
  the column's collation. Binary strings (BINARY, VARBINARY, BLOB) compare byte by byte; `_bin` collations by
  code point, ignoring trailing spaces when the collation is PAD SPACE (`utf8mb4_bin`) and not when NO PAD
  (`utf8mb4_nopad_bin`, `utf8mb4_0900_bin`); case-insensitive collations (`*_general_ci`, `*_unicode_ci`,
  `*_unicode_520_ci`, `utf8mb4_0900_ai_ci`, `*_uca1400_ai_ci`, `latin1_swedish_ci`, their NO PAD variants) for
  `=`, `<>`, `IN` and `LIKE` when both sides are printable ASCII.

Asked from the source database (one `SELECT` of the comparison with the two values as parameters; answers cached
per filter), because only the collation knows: `<`, `>`, `BETWEEN` on case-insensitive text; `=` and `LIKE`
on case-insensitive text with non-ASCII characters (is `'ß' = 'ss'`?); ordering non-ASCII `latin1_bin` text;
every comparison under other collations (language-specific, accent- or case-sensitive `_as_cs`, other
character sets).

Refused, naming the construct: functions of any kind, subqueries, `;` and further statements, variables and
parameters, CASE, REGEXP, COLLATE, CAST and typed literals (`DATE '...'`), INTERVAL, bitwise operators, row
constructors, executable comments (`/*! ... */`); unknown columns (the error lists the table's columns);
comparisons on JSON, SET, BIT, spatial and FLOAT(M,D)/DOUBLE(M,D) columns; a number compared with a quoted
string or a text column (MySQL compares both as inexact doubles) and a date with a number; `/` on integers and
decimals (MySQL and MariaDB round its result differently depending on where it is used: write `a > 2 * b` rather
than `a / b > 2`, or use `DIV`); dates not written as above; two-digit years against YEAR columns (MySQL reads
24 as 2024); `IN` and `BETWEEN` mixing DOUBLE values with exact numbers; `ESCAPE ''`; comparing text columns
whose collation the schema does not know.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from obsync.sql import filter_semantics as sem
from obsync.core.errors import ConfigError, SourceError
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column, TableSchema

Row = dict[str, Any]
Fn = Callable[[Row], Any]
Op = Callable[[Any, Any], Any]
SqlEval = Callable[[str, tuple], Any]

# The MySQL type of a compiled sub-expression.
INT, DEC, FLOAT, STR, BYTES, NULL = "integer", "decimal", "double", "text", "binary string", "NULL"
OPAQUE = "unsupported type"
TEMPORAL = ("date", "datetime", "timestamp", "time")
NUMBERS = (INT, DEC, FLOAT)
CACHE_SIZE = 4096  # answers kept per filter from the database

_COMPARISONS: dict[type, tuple[str, Op]] = {
    exp.EQ: ("=", operator.eq), exp.NEQ: ("<>", operator.ne), exp.LT: ("<", operator.lt),
    exp.LTE: ("<=", operator.le), exp.GT: (">", operator.gt), exp.GTE: (">=", operator.ge),
    exp.NullSafeEQ: ("<=>", operator.eq),
}
_ARITHMETIC = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.IntDiv: "DIV", exp.Mod: "%"}
_INT_DIGITS = {"tinyint": 3, "smallint": 5, "mediumint": 8, "int": 10, "integer": 10, "bigint": 20, "year": 4}
_INT_LIT = re.compile(r"\d+")
_DEC_LIT = re.compile(r"\d*\.(\d*)")
_FLOAT_LIT = re.compile(r"(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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
    called only for the comparisons obsync leaves to the database (see above). Without it, such a comparison
    raises SourceError when a row needs it."""
    tree = _parse(where, origin)
    compiler = _Compiler(schema, origin, sql_eval)
    fn = _truth(compiler.condition(tree)).fn
    sql = _render(tree, where, origin)
    return RowFilter(sql, tuple(compiler.columns), lambda row: fn(row) is True)


# -- parsing and SQL generation --------------------------------------------------------------------------------

def _parse(where: str, origin: str) -> exp.Expression:
    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{origin}: {msg}")

    if not isinstance(where, str) or not where.strip():
        raise fail("an empty row filter")
    try:
        tokens = sqlglot.tokenize(where, read="mysql")
    except TokenError as e:
        raise fail(f"cannot read the clause: {e}") from None
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            raise fail("`;` is not allowed: a row filter is one WHERE condition, not statements")
        for comment in tok.comments:
            if comment.lstrip().startswith(("!", "M!", "+")):
                raise fail(f"executable comment or hint `/*{comment}*/` is not supported")
    try:
        tree = sqlglot.parse_one(where, read="mysql", into=exp.Condition)
    except (ParseError, TokenError) as e:
        raise fail(f"not a single WHERE condition ({str(e).splitlines()[0]})") from None
    if tree is None:
        raise fail("not a WHERE condition")
    return tree


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _parenthesize(node: exp.Expression) -> exp.Expression:
    """Every operand that is itself an operation in parentheses, so MySQL reads the SQL as it was parsed."""
    for key, value in list(node.args.items()):
        if isinstance(node, exp.Escape) and key == "this":  # `a LIKE b ESCAPE c` is one operator
            node.set(key, _parenthesize(_unparen(value)))
        elif isinstance(value, exp.Expression):
            node.set(key, _wrapped(value))
        elif isinstance(value, list):
            node.set(key, [_wrapped(v) if isinstance(v, exp.Expression) else v for v in value])
    return node


def _wrapped(child: exp.Expression) -> exp.Expression:
    child = _parenthesize(_unparen(child))
    compound = isinstance(child, (exp.Binary, exp.Unary, exp.In, exp.Between))
    return exp.Paren(this=child) if compound else child


def _normal(node: exp.Expression) -> exp.Expression:
    """`node` (modified) without parentheses and with quoted identifiers, for comparing trees."""
    node = _unparen(node)
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _normal(value))
        elif isinstance(value, list):
            node.set(key, [_normal(v) if isinstance(v, exp.Expression) else v for v in value])
    if isinstance(node, exp.Identifier):
        node.set("quoted", True)
    return node


def _sql(node: exp.Expression, identify: bool = False) -> str:
    """`node` as MySQL SQL, fully parenthesized, without comments (backquoted names with `identify`)."""
    return _parenthesize(_unparen(node.copy())).sql(dialect="mysql", identify=identify, comments=False)


def _render(tree: exp.Expression, where: str, origin: str) -> str:
    """The SQL of `tree`, checked to parse back to the same tree."""
    sql = _sql(tree, identify=True)
    try:
        back = sqlglot.parse_one(sql, read="mysql", into=exp.Condition)
        same = _normal(back) == _normal(tree.copy()) and not any(
            t.token_type == TokenType.SEMICOLON for t in sqlglot.tokenize(sql, read="mysql"))
    except (ParseError, TokenError):
        same = False
    if not same:
        raise ConfigError(f"{origin}: the clause cannot be written back as SQL safely: {where!r}")
    return sql


def _refused(node: exp.Expression) -> str:
    """What `node` is, for the message refusing it."""
    if isinstance(node, (exp.Query, exp.Subquery, exp.Exists, exp.All, exp.Any)):
        return "a subquery"
    if isinstance(node, exp.Anonymous):
        return f"function {str(node.name).upper()}()"
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return "CAST or a typed literal such as DATE '...' (write the value as a quoted string)"
    if isinstance(node, exp.RegexpLike):
        return "REGEXP / RLIKE"
    if isinstance(node, (exp.Case, exp.If)):
        return "CASE / IF"
    if isinstance(node, exp.Placeholder):
        return "a parameter placeholder"
    if isinstance(node, (exp.Parameter, exp.SessionParameter)):
        return "a variable (@name, @@name)"
    if isinstance(node, (exp.Introducer, exp.National)):
        return "a character set introducer (_charset'...', N'...')"
    if isinstance(node, exp.BitString):
        return "a bit literal b'...'"
    if isinstance(node, exp.Tuple):
        return "a row constructor (a, b)"
    if isinstance(node, exp.Interval):
        return "INTERVAL"
    if isinstance(node, exp.Collate):
        return "COLLATE"
    if "Bitwise" in type(node).__name__:
        return "a bitwise operator"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name()}()"
    return f"{type(node).__name__.upper()} (`{node.sql(dialect='mysql', comments=False)}`)"


# -- compiled sub-expressions ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _T:
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


def _const(value: Any, kind: str, text: str, **kw: Any) -> _T:
    return _T(lambda row: value, kind, text, const=True, value=value, **kw)


def _truth(t: _T) -> _T:
    """`t` as a condition: True / False / None (MySQL: a number is true when not zero)."""
    if t.boolean:
        return t
    f = t.fn
    return replace(t, fn=lambda row: None if (v := f(row)) is None else v != 0, boolean=True, kind=INT)


def _binary(f: Fn, g: Fn, op: Op) -> Fn:
    """`op(f(row), g(row))`, NULL when either is NULL."""
    def fn(row: Row) -> Any:
        a = f(row)
        if a is None:
            return None
        b = g(row)
        return None if b is None else op(a, b)
    return fn


def _converted(t: _T, conv: Callable[[Any], Any] | None) -> _T:
    if conv is None:
        return t
    if t.const:
        value = None if t.value is None else conv(t.value)
        return replace(t, value=value, fn=lambda row: value)
    f = t.fn
    return replace(t, fn=lambda row: None if (v := f(row)) is None else conv(v))


def _bool(fn: Fn, text: str) -> _T:
    return _T(fn, INT, text, boolean=True)


class _Compiler:
    """Turns a parsed clause into nested closures over a row, checking every node on the way."""

    def __init__(self, schema: TableSchema, origin: str, sql_eval: SqlEval | None) -> None:
        self.schema = schema
        self.origin = origin
        self.columns: list[str] = []
        self._sql_eval = sql_eval
        self.ask = lru_cache(maxsize=CACHE_SIZE)(self._ask)

    def fail(self, msg: str) -> None:
        raise ConfigError(f"{self.origin}: {msg}")

    def overflow(self, text: str) -> Callable[[str], None]:
        def fail(what: str) -> None:
            raise ConfigError(f"{self.origin}: the database fails this filter on a row: {what} in {text}")
        return fail

    def _ask(self, sql: str, params: tuple) -> bool | None:
        if self._sql_eval is None:
            raise SourceError(f"{self.origin}: this row needs the source database to evaluate `{sql}` (a "
                              "collation obsync does not emulate), and no SQL connection was given")
        v = self._sql_eval(sql, params)
        return None if v is None else bool(int(v))

    def expr(self, node: exp.Expression) -> _T:
        node = _unparen(node)
        kind = type(node)
        if kind is exp.Column:
            return self.column(node)
        if kind is exp.Literal:
            return self.literal(node)
        if kind is exp.Null:
            return _const(None, NULL, "NULL")
        if kind is exp.Boolean:
            return _const(int(bool(node.this)), INT, "TRUE" if node.this else "FALSE", digits=1)
        if kind is exp.HexString:
            hexa = str(node.this)
            if len(hexa) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", hexa):
                self.fail(f"hexadecimal literal x'{hexa}' must have an even number of digits")
            return _const(bytes.fromhex(hexa), BYTES, f"x'{hexa}'")
        if kind in _COMPARISONS:
            op_sql, op = _COMPARISONS[kind]
            return self.comparison(self.expr(node.this), self.expr(node.expression), op_sql, op, _sql(node))
        if kind in (exp.And, exp.Or, exp.Xor):
            return self.logic(node)
        if kind is exp.Not:
            f = _truth(self.condition(node.this)).fn
            return _bool(lambda row: None if (v := f(row)) is None else not v, _sql(node))
        if kind is exp.Is:
            return self.is_(node)
        if kind is exp.In:
            return self.in_(node)
        if kind is exp.Between:
            return self.between(node)
        if kind in (exp.Like, exp.Escape):
            return self.like(node)
        if kind in _ARITHMETIC:
            return self.arithmetic(node, _ARITHMETIC[kind])
        if kind is exp.Neg:
            return self.negate(node)
        self.fail(f"{_refused(node)} is not supported in a row filter")
        raise AssertionError

    def only(self, node: exp.Expression, *allowed: str) -> None:
        """Refuse the variants of a supported node (`IN (SELECT ...)`, `BETWEEN SYMMETRIC`, ...)."""
        for key, value in node.args.items():
            if value not in (None, False, []) and key not in allowed:
                what = _refused(value) if isinstance(value, exp.Expression) else key.upper()
                self.fail(f"`{_sql(node)}`: {what} is not supported in a row filter")

    def column(self, node: exp.Column) -> _T:
        if not isinstance(node.this, exp.Identifier) or any(node.args.get(k) for k in ("table", "db", "catalog")):
            self.fail(f"`{node.sql(dialect='mysql')}`: name columns without a table or database prefix")
        name, names = str(node.this.this), self.schema.column_names
        found = name if name in names else next((n for n in names if n.lower() == name.lower()), None)
        if found is None:
            self.fail(f"table {self.schema.full_name} has no column {name!r}; its columns: {', '.join(names)}")
        assert found is not None
        node.this.set("this", found)  # the generated SQL names the column as the catalog does
        if found not in self.columns:
            self.columns.append(found)
        col = self.schema.column(found)
        fn = operator.itemgetter(found)
        t = col.data_type
        if t in INTEGER_TYPES or t == "year":
            unsigned = col.unsigned or t == "year"
            return _T(fn, INT, found, unsigned=unsigned, digits=_INT_DIGITS.get(t, 20), column=col)
        if t in ("decimal", "numeric"):
            m = re.match(r"\w+\((\d+)", col.column_type)
            precision, scale = col.precision or (int(m.group(1)) if m else 10), col.scale or 0
            return _T(fn, DEC, found, scale=scale, digits=precision - scale, unsigned=col.unsigned, column=col)
        if t in ("float", "double", "real") and "," not in col.column_type:
            return _T(fn, FLOAT, found, column=col)
        if t in BINARY_TYPES or (t in TEXT_TYPES and col.is_binary):
            return _T(fn, BYTES, found, column=col)
        if t in TEXT_TYPES or t == "enum":
            coll = sem.Collation.of(col)
            why = "" if coll else f"the collation of column {found} is not known"
            return _T(fn, STR if coll else OPAQUE, found, coll=coll, column=col, why=why)
        if t in TEMPORAL:
            return _T(fn, t, found, column=col)
        return _T(fn, OPAQUE, found, column=col, why=f"column {found} is {col.column_type}: only IS [NOT] NULL is "
                  "supported on JSON, SET, BIT, spatial and FLOAT(M,D)/DOUBLE(M,D) columns")

    def literal(self, node: exp.Literal) -> _T:
        text = str(node.this)
        if node.is_string:
            return _const(text, STR, exp.Literal.string(text).sql(dialect="mysql"))
        if _INT_LIT.fullmatch(text) and int(text) <= 2**64 - 1:
            return _const(int(text), INT, text, unsigned=int(text) > 2**63 - 1, digits=len(str(int(text))))
        if _INT_LIT.fullmatch(text) or ((m := _DEC_LIT.fullmatch(text)) and text != "."):
            v, scale = Decimal(text), 0 if _INT_LIT.fullmatch(text) else len(m.group(1))
            digits = max(v.adjusted() + 1, 1)
            if digits + scale > 65 or scale > 30:
                self.fail(f"number {text} has more digits than a DECIMAL holds (65, 30 after the point)")
            return _const(v, DEC, text, scale=scale, digits=digits)
        if _FLOAT_LIT.fullmatch(text) and not math.isinf(float(text)):
            return _const(float(text), FLOAT, text)
        self.fail(f"number {text} is not supported")
        raise AssertionError

    def condition(self, node: exp.Expression) -> _T:
        t = self.expr(node)
        if t.kind not in NUMBERS + (NULL,):
            self.fail(f"`{_sql(node)}` is a {t.kind} used as a condition: compare it with something "
                      "(MySQL would convert it to a number)" + (f"; {t.why}" if t.why else ""))
        return t

    def logic(self, node: exp.Expression) -> _T:
        f = _truth(self.condition(node.this)).fn
        g = _truth(self.condition(node.expression)).fn
        if isinstance(node, exp.Xor):
            return _bool(_binary(f, g, operator.ne), _sql(node))
        stop = isinstance(node, exp.Or)  # the value that decides: TRUE for OR, FALSE for AND

        def fn(row: Row) -> bool | None:
            a = f(row)
            if a is stop:
                return stop
            b = g(row)
            if b is stop:
                return stop
            return None if a is None or b is None else not stop
        return _bool(fn, _sql(node))

    def is_(self, node: exp.Is) -> _T:
        target, negate = node.expression, bool(node.args.get("negate"))
        if isinstance(target, exp.Null):
            f = self.expr(node.this).fn
            return _bool(lambda row: (f(row) is None) is not negate, _sql(node))
        if isinstance(target, exp.Boolean):
            f, want = _truth(self.condition(node.this)).fn, bool(target.this)
            return _bool(lambda row: (f(row) is want) is not negate, _sql(node))
        self.fail(f"`{_sql(node)}`: only IS [NOT] NULL / TRUE / FALSE are supported")
        raise AssertionError

    # -- comparisons --

    def comparison(self, left: _T, right: _T, op_sql: str, op: Op, text: str) -> _T:
        """`left op right` (op_sql "<=>": NULL-safe equality) as a compiled condition."""
        if NULL in (left.kind, right.kind):
            other = right if left.kind == NULL else left
            self.comparable(other, text)
            if op_sql != "<=>":
                return _const(None, INT, text, boolean=True)
            g = other.fn
            return _bool(lambda row: g(row) is None, text)
        lconv, rconv, cmp = self.comparator(left, right, op_sql, op, text)
        left, right = _converted(left, lconv), _converted(right, rconv)
        f, g = left.fn, right.fn
        if op_sql == "<=>":
            def fn(row: Row) -> bool | None:
                a, b = f(row), g(row)
                return a is None and b is None if a is None or b is None else cmp(a, b)
            return _bool(fn, text)
        if right.const:
            c = right.value
            return _bool(lambda row: None if (a := f(row)) is None else cmp(a, c), text)
        return _bool(_binary(f, g, cmp), text)

    def comparable(self, t: _T, text: str) -> None:
        if t.kind == OPAQUE:
            self.fail(f"`{text}`: {t.why}")

    def comparator(self, left: _T, right: _T, op_sql: str, op: Op, text: str) -> tuple[Any, Any, Op]:
        """How to compare non-NULL values of `left` and `right`: a conversion for each side and the test."""
        self.comparable(left, text)
        self.comparable(right, text)
        lk, rk = left.kind, right.kind
        if lk in NUMBERS and rk in NUMBERS:
            for a, b in ((left, right), (right, left)):
                if a.column is not None and a.column.data_type == "year" and b.const:
                    if b.kind != INT or not (b.value == 0 or 1901 <= b.value <= 2155):
                        self.fail(f"`{text}`: compare YEAR column {a.text} with a four-digit year (1901-2155) "
                                  "or 0 (MySQL reads other numbers as years: 24 is 2024)")
            return (float, float, op) if FLOAT in (lk, rk) else (None, None, op)
        if lk in NUMBERS or rk in NUMBERS:
            num, other = (left, right) if lk in NUMBERS else (right, left)
            if other.kind == STR and other.const:
                self.fail(f"`{text}`: compares a number with the string {other.text}; MySQL compares both as "
                          "DOUBLE (inexact): write the number without quotes")
            if other.kind == STR:
                self.fail(f"`{text}`: compares text column {other.text} with the number {num.text}; MySQL "
                          "compares both as DOUBLE (inexact): quote the literal ('...') to compare as text")
            self.fail(f"`{text}`: cannot compare {num.text} ({num.kind}) with {other.text} ({other.kind}); "
                      "write dates and times as quoted literals")
        if lk in (STR, BYTES) and rk in (STR, BYTES):
            return self.string_comparator(left, right, op_sql, op, text)
        if lk in TEMPORAL or rk in TEMPORAL:
            return self.temporal_comparator(left, right, op, text)
        self.fail(f"`{text}`: cannot compare {lk} with {rk}")
        raise AssertionError

    def string_comparator(self, left: _T, right: _T, op_sql: str, op: Op, text: str) -> tuple[Any, Any, Op]:
        if left.const and right.const:
            self.fail(f"`{text}` compares two literals; compare a column")
        if BYTES in (left.kind, right.kind):  # binary comparison: a text literal is its utf8mb4 bytes
            for t in (left, right):
                if t.kind == STR and not t.const:
                    self.fail(f"`{text}`: compares text column {t.text} with a binary string")
            enc = str.encode
            return (enc if left.kind == STR else None), (enc if right.kind == STR else None), op
        coll = left.coll or right.coll
        assert coll is not None
        for t in (left, right):
            if t.coll is not None and t.coll.name != coll.name:
                self.fail(f"`{text}`: compares text of two collations ({left.coll.name if left.coll else ''}, "
                          f"{right.coll.name if right.coll else ''})")
            if t.const and not coll.holds(t.value):
                self.fail(f"`{text}`: {t.text} has characters that {coll.charset} cannot hold")
        conv, cmp = sem.text_comparison(coll, "=" if op_sql == "<=>" else op_sql, op, self.ask)
        return conv, conv, cmp

    def temporal_comparator(self, left: _T, right: _T, op: Op, text: str) -> tuple[Any, Any, Op]:
        cmp = sem.temporal_comparison(op)
        if left.kind == right.kind:
            return None, None, cmp
        col, lit = (left, right) if left.kind in TEMPORAL else (right, left)
        if lit.kind != STR or not lit.const:
            self.fail(f"`{text}`: cannot compare {col.text} ({col.kind}) with {lit.text} ({lit.kind})")
        try:
            value, promote = sem.temporal_literal(col.kind, lit.value)
        except ValueError:
            form = "'[-]hhh:mm:ss[.ffffff]'" if col.kind == "time" else \
                "'YYYY-MM-DD' or 'YYYY-MM-DD hh:mm:ss[.ffffff]'"
            self.fail(f"`{text}`: {lit.text} is not a valid {col.kind} for column {col.text}; write it as {form}")
            raise
        as_literal: Callable[[Any], Any] = lambda _: value  # noqa: E731
        return (promote, as_literal, cmp) if col is left else (as_literal, promote, cmp)

    def in_(self, node: exp.In) -> _T:
        self.only(node, "this", "expressions")
        text = _sql(node)
        if not node.expressions:
            self.fail(f"`{text}`: an empty IN list")
        left, items = self.expr(node.this), [self.expr(e) for e in node.expressions]
        self.same_exactness(left, items, text)
        tests = [self.comparison(left, i, "=", operator.eq, text) for i in items]
        if left.kind in NUMBERS and all(i.const and i.kind in NUMBERS + (NULL,) for i in items):
            to = float if left.kind == FLOAT else None  # (exact numbers against DOUBLE items are refused)
            values = frozenset(i.value if to is None else to(i.value) for i in items if i.kind != NULL)
            miss = None if any(i.kind == NULL for i in items) else False
            f = _converted(left, to).fn
            return _bool(lambda row: None if (v := f(row)) is None else (True if v in values else miss), text)
        fns = [t.fn for t in tests]

        def fn(row: Row) -> bool | None:
            unknown = False
            for t in fns:
                r = t(row)
                if r is True:
                    return True
                unknown = unknown or r is None
            return None if unknown else False
        return _bool(fn, text)

    def same_exactness(self, left: _T, items: list[_T], text: str) -> None:
        if left.kind in (INT, DEC) and any(i.kind == FLOAT for i in items):
            self.fail(f"`{text}` mixes exact numbers with DOUBLE values, which MySQL then compares all as DOUBLE; "
                      "write the literals without exponent")

    def between(self, node: exp.Between) -> _T:
        self.only(node, "this", "low", "high")
        text = _sql(node)
        left, low, high = self.expr(node.this), self.expr(node.args["low"]), self.expr(node.args["high"])
        self.same_exactness(left, [low, high], text)
        ge = self.comparison(left, low, ">=", operator.ge, text)
        le = self.comparison(left, high, "<=", operator.le, text)
        return self.logic_of(ge, le, text)

    def logic_of(self, a: _T, b: _T, text: str) -> _T:
        f, g = a.fn, b.fn

        def fn(row: Row) -> bool | None:
            x = f(row)
            if x is False:
                return False
            y = g(row)
            if y is False:
                return False
            return None if x is None or y is None else True
        return _bool(fn, text)

    # -- LIKE --

    def like(self, node: exp.Expression) -> _T:
        text, escape = _sql(node), "\\"
        if isinstance(node, exp.Escape):
            esc = _unparen(node.expression)
            if not (isinstance(esc, exp.Literal) and esc.is_string and len(str(esc.this)) == 1):
                self.fail(f"`{text}`: ESCAPE takes one character in quotes (ESCAPE '' means `\\` or none, "
                          "depending on the server's sql_mode)")
            escape, node = str(esc.this), _unparen(node.this)
            if not isinstance(node, exp.Like):
                self.fail(f"`{text}`: ESCAPE goes with LIKE")
        self.only(node, "this", "expression", "negate")
        value, pattern = self.expr(node.this), self.expr(node.expression)
        if value.kind not in (STR, BYTES) or value.const:
            self.fail(f"`{text}`: LIKE applies to a text or binary column here, not {value.text} ({value.kind})"
                      + (f"; {value.why}" if value.why else ""))
        if not (pattern.const and pattern.kind in (STR, BYTES, NULL)):
            self.fail(f"`{text}`: the LIKE pattern must be a quoted literal")
        if pattern.kind == NULL:
            return _const(None, INT, text, boolean=True)
        if value.kind == BYTES:
            if not escape.isascii():
                self.fail(f"`{text}`: the ESCAPE character of a binary LIKE must be ASCII")
            pat = pattern.value if pattern.kind == BYTES else pattern.value.encode()
            test = sem.like_matcher(None, pat, escape, self.ask)
        else:
            coll = value.coll
            assert coll is not None
            if pattern.kind == BYTES:
                self.fail(f"`{text}`: a binary pattern for text column {value.text}")
            if not (coll.holds(pattern.value) and coll.holds(escape)):
                self.fail(f"`{text}`: the pattern has characters that {coll.charset} cannot hold")
            test = sem.like_matcher(coll, pattern.value, escape, self.ask)
        f = value.fn
        if node.args.get("negate"):
            return _bool(lambda row: None if (v := f(row)) is None or (r := test(v)) is None else not r, text)
        return _bool(lambda row: None if (v := f(row)) is None else test(v), text)

    # -- arithmetic --

    def number(self, node: exp.Expression, op: str) -> _T:
        t = self.expr(node)
        if t.kind not in NUMBERS + (NULL,):
            self.fail(f"`{op}` needs numbers; {t.text} is a {t.kind}" + (f" ({t.why})" if t.why else ""))
        return t

    def arithmetic(self, node: exp.Expression, sym: str) -> _T:
        a, b = self.number(node.this, sym), self.number(node.expression, sym)
        text = _sql(node)
        kinds, overflow = (a.kind, b.kind), self.overflow(text)
        if NULL in kinds:
            return _const(None, NULL, text)
        if FLOAT in kinds:
            if sym == "DIV":
                self.fail(f"`{text}`: DIV on DOUBLE values is not supported (MySQL converts them to DECIMAL first)")
            kind, unsigned, scale, digits, op = FLOAT, False, 0, 0, sem.float_op(sym, overflow)
        elif sym == "/":
            self.fail(f"`{text}`: exact division `/` of integers or decimals is not supported: MySQL and MariaDB "
                      "round its result differently depending on where it is used. Multiply instead "
                      "(`a > 2 * b` rather than `a / b > 2`), or use DIV for integer division")
            raise AssertionError
        elif DEC in kinds and sym != "DIV":
            # Exact while the result fits 65 digits, 30 after the point; beyond that MySQL drops decimals.
            scale = a.scale + b.scale if sym == "*" else max(a.scale, b.scale)
            digits = {"+": max(a.digits, b.digits) + 1, "-": max(a.digits, b.digits) + 1,
                      "*": a.digits + b.digits, "%": min(a.digits, b.digits)}[sym]
            if scale > 30 or digits + scale > 65:
                self.fail(f"`{text}`: the result may need {digits + scale} digits, {scale} after the point; "
                          "MySQL keeps decimals exact up to 65 digits, 30 after the point")
            kind, unsigned, op = DEC, a.unsigned or b.unsigned, sem.decimal_op(sym)
        else:  # integers, and DIV of decimals (an integer)
            unsigned = a.unsigned if sym == "%" else a.unsigned or b.unsigned
            kind, scale, digits, op = INT, 0, 20, sem.int_op(sym, unsigned, DEC in kinds, overflow)
        if a.const and b.const:
            v = op(a.value, b.value)
            return _const(v, kind if v is not None else NULL, text, unsigned=unsigned, scale=scale, digits=digits)
        return _T(_binary(a.fn, b.fn, op), kind, text, unsigned=unsigned, scale=scale, digits=digits)

    def negate(self, node: exp.Neg) -> _T:
        a, text = self.number(node.this, "-"), _sql(node)
        if a.kind == NULL:
            return a
        if a.const:  # MySQL folds a negated literal: -9223372036854775808 is a BIGINT, beyond it a DECIMAL
            v = a.value
            if a.kind == INT and -v < -(2**63):
                return _const(Decimal(-v), DEC, text, digits=a.digits)
            return _const(v.copy_negate() if a.kind == DEC else -v, a.kind, text, scale=a.scale, digits=a.digits)
        f = a.fn
        if a.kind == DEC:
            return _T(lambda row: None if (v := f(row)) is None else v.copy_negate(), DEC, text, scale=a.scale,
                      digits=a.digits)
        if a.kind == FLOAT:
            return _T(lambda row: None if (v := f(row)) is None else -v, FLOAT, text)
        neg = sem.int_op("-", False, False, self.overflow(text))
        return _T(lambda row: None if (v := f(row)) is None else neg(0, v), INT, text)

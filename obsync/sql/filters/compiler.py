"""Compiling a parsed row filter to nested closures over a row, with MySQL's types and NULL logic.

`Compiler(schema, origin, sql_eval).condition(tree)` checks every node on the way (columns against the table's
schema, the kinds each operator accepts, what the database would do with the values) and refuses with a
`ConfigError` what obsync cannot evaluate exactly; `truth(...).fn(row)` then gives True, False or None (NULL).
How values compare and compute is in `semantics`; comparisons only the collation can answer are asked from the
source through `sql_eval` (answers cached, `CACHE_SIZE` per filter).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any, NoReturn

from sqlglot import exp

from obsync.core.errors import ConfigError, SourceError
from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, TableSchema
from obsync.sql.filters import semantics as sem
from obsync.sql.filters.syntax import refused, to_sql, unparen
from obsync.sql.filters.terms import (
    BYTES,
    DEC,
    FLOAT,
    INT,
    NULL,
    NUMBERS,
    OPAQUE,
    STR,
    TEMPORAL,
    Op,
    Row,
    SqlEval,
    Term,
    binary,
    boolean,
    constant,
    converted,
    truth,
)

__all__ = ["CACHE_SIZE", "Compiler"]

CACHE_SIZE = 4096  # answers kept per filter from the database

_COMPARISONS: dict[type, tuple[str, Op]] = {
    exp.EQ: ("=", operator.eq), exp.NEQ: ("<>", operator.ne), exp.LT: ("<", operator.lt),
    exp.LTE: ("<=", operator.le), exp.GT: (">", operator.gt), exp.GTE: (">=", operator.ge),
    exp.NullSafeEQ: ("<=>", operator.eq),
}
_ARITHMETIC: dict[type, str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.IntDiv: "DIV", exp.Mod: "%"}
_INT_DIGITS = {"tinyint": 3, "smallint": 5, "mediumint": 8, "int": 10, "integer": 10, "bigint": 20, "year": 4}
_INT_LIT = re.compile(r"\d+")
_DEC_LIT = re.compile(r"\d*\.(\d*)")
_FLOAT_LIT = re.compile(r"(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class Compiler:
    """Turns a parsed clause into nested closures over a row, checking every node on the way."""

    def __init__(self, schema: TableSchema, origin: str, sql_eval: SqlEval | None) -> None:
        self.schema = schema
        self.origin = origin
        self.columns: list[str] = []
        self._sql_eval = sql_eval
        self.ask = lru_cache(maxsize=CACHE_SIZE)(self._ask)

    def fail(self, msg: str) -> NoReturn:
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

    def expr(self, node: exp.Expression) -> Term:
        node = unparen(node)
        kind = type(node)
        if type(node) is exp.Column:
            return self.column(node)
        if type(node) is exp.Literal:
            return self.literal(node)
        if kind is exp.Null:
            return constant(None, NULL, "NULL")
        if kind is exp.Boolean:
            return constant(int(bool(node.this)), INT, "TRUE" if node.this else "FALSE", digits=1)
        if kind is exp.HexString:
            hexa = str(node.this)
            if len(hexa) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", hexa):
                self.fail(f"hexadecimal literal x'{hexa}' must have an even number of digits")
            return constant(bytes.fromhex(hexa), BYTES, f"x'{hexa}'")
        if kind in _COMPARISONS:
            op_sql, op = _COMPARISONS[kind]
            return self.comparison(self.expr(node.this), self.expr(node.expression), op_sql, op, to_sql(node))
        if kind in (exp.And, exp.Or, exp.Xor):
            return self.logic(node)
        if kind is exp.Not:
            f = truth(self.condition(node.this)).fn
            return boolean(lambda row: None if (v := f(row)) is None else not v, to_sql(node))
        if type(node) is exp.Is:
            return self.is_(node)
        if type(node) is exp.In:
            return self.in_(node)
        if type(node) is exp.Between:
            return self.between(node)
        if kind in (exp.Like, exp.Escape):
            return self.like(node)
        if kind in _ARITHMETIC:
            return self.arithmetic(node, _ARITHMETIC[kind])
        if type(node) is exp.Neg:
            return self.negate(node)
        self.fail(f"{refused(node)} is not supported in a row filter")

    def only(self, node: exp.Expression, *allowed: str) -> None:
        """Refuse the variants of a supported node (`IN (SELECT ...)`, `BETWEEN SYMMETRIC`, ...)."""
        for key, value in node.args.items():
            if value not in (None, False, []) and key not in allowed:
                what = refused(value) if isinstance(value, exp.Expression) else key.upper()
                self.fail(f"`{to_sql(node)}`: {what} is not supported in a row filter")

    def column(self, node: exp.Column) -> Term:
        if not isinstance(node.this, exp.Identifier) or any(node.args.get(k) for k in ("table", "db", "catalog")):
            self.fail(f"`{node.sql(dialect='mysql')}`: name columns without a table or database prefix")
        name, names = str(node.this.this), self.schema.column_names
        found = name if name in names else next((n for n in names if n.lower() == name.lower()), None)
        if found is None:
            self.fail(f"table {self.schema.full_name} has no column {name!r}; its columns: {', '.join(names)}")
        node.this.set("this", found)  # the generated SQL names the column as the catalog does
        if found not in self.columns:
            self.columns.append(found)
        col = self.schema.column(found)
        fn = operator.itemgetter(found)
        t = col.data_type
        if t in INTEGER_TYPES or t == "year":
            unsigned = col.unsigned or t == "year"
            return Term(fn, INT, found, unsigned=unsigned, digits=_INT_DIGITS.get(t, 20), column=col)
        if t in ("decimal", "numeric"):
            m = re.match(r"\w+\((\d+)", col.column_type)
            precision, scale = col.precision or (int(m.group(1)) if m else 10), col.scale or 0
            return Term(fn, DEC, found, scale=scale, digits=precision - scale, unsigned=col.unsigned, column=col)
        if t in ("float", "double", "real") and "," not in col.column_type:
            return Term(fn, FLOAT, found, column=col)
        if t in BINARY_TYPES or (t in TEXT_TYPES and col.is_binary):
            return Term(fn, BYTES, found, column=col)
        if t in TEXT_TYPES or t == "enum":
            coll = sem.Collation.of(col)
            why = "" if coll else f"the collation of column {found} is not known"
            return Term(fn, STR if coll else OPAQUE, found, coll=coll, column=col, why=why)
        if t in TEMPORAL:
            return Term(fn, t, found, column=col)
        return Term(fn, OPAQUE, found, column=col, why=f"column {found} is {col.column_type}: only IS [NOT] NULL is "
                    "supported on JSON, SET, BIT, spatial and FLOAT(M,D)/DOUBLE(M,D) columns")

    def literal(self, node: exp.Literal) -> Term:
        text = str(node.this)
        if node.is_string:
            return constant(text, STR, exp.Literal.string(text).sql(dialect="mysql"))
        if _INT_LIT.fullmatch(text) and int(text) <= 2**64 - 1:
            return constant(int(text), INT, text, unsigned=int(text) > 2**63 - 1, digits=len(str(int(text))))
        m = _DEC_LIT.fullmatch(text)  # None for an integer
        if _INT_LIT.fullmatch(text) or (m and text != "."):
            v, scale = Decimal(text), len(m.group(1)) if m else 0
            digits = max(v.adjusted() + 1, 1)
            if digits + scale > 65 or scale > 30:
                self.fail(f"number {text} has more digits than a DECIMAL holds (65, 30 after the point)")
            return constant(v, DEC, text, scale=scale, digits=digits)
        if _FLOAT_LIT.fullmatch(text) and not math.isinf(float(text)):
            return constant(float(text), FLOAT, text)
        self.fail(f"number {text} is not supported")

    def condition(self, node: exp.Expression) -> Term:
        t = self.expr(node)
        if t.kind not in NUMBERS + (NULL,):
            self.fail(f"`{to_sql(node)}` is a {t.kind} used as a condition: compare it with something "
                      "(MySQL would convert it to a number)" + (f"; {t.why}" if t.why else ""))
        return t

    def logic(self, node: exp.Expression) -> Term:
        f = truth(self.condition(node.this)).fn
        g = truth(self.condition(node.expression)).fn
        if isinstance(node, exp.Xor):
            return boolean(binary(f, g, operator.ne), to_sql(node))
        stop = isinstance(node, exp.Or)  # the value that decides: TRUE for OR, FALSE for AND

        def fn(row: Row) -> bool | None:
            a = f(row)
            if a is stop:
                return stop
            b = g(row)
            if b is stop:
                return stop
            return None if a is None or b is None else not stop
        return boolean(fn, to_sql(node))

    def is_(self, node: exp.Is) -> Term:
        target, negate = node.expression, bool(node.args.get("negate"))
        if isinstance(target, exp.Null):
            f = self.expr(node.this).fn
            return boolean(lambda row: (f(row) is None) is not negate, to_sql(node))
        if isinstance(target, exp.Boolean):
            f, want = truth(self.condition(node.this)).fn, bool(target.this)
            return boolean(lambda row: (f(row) is want) is not negate, to_sql(node))
        self.fail(f"`{to_sql(node)}`: only IS [NOT] NULL / TRUE / FALSE are supported")

    # -- comparisons --

    def comparison(self, left: Term, right: Term, op_sql: str, op: Op, text: str) -> Term:
        """`left op right` (op_sql "<=>": NULL-safe equality) as a compiled condition."""
        if NULL in (left.kind, right.kind):
            other = right if left.kind == NULL else left
            self.comparable(other, text)
            if op_sql != "<=>":
                return constant(None, INT, text, boolean=True)
            g = other.fn
            return boolean(lambda row: g(row) is None, text)
        lconv, rconv, cmp = self.comparator(left, right, op_sql, op, text)
        left, right = converted(left, lconv), converted(right, rconv)
        f, g = left.fn, right.fn
        if op_sql == "<=>":
            def fn(row: Row) -> bool | None:
                a, b = f(row), g(row)
                return a is None and b is None if a is None or b is None else cmp(a, b)
            return boolean(fn, text)
        if right.const:
            c = right.value
            return boolean(lambda row: None if (a := f(row)) is None else cmp(a, c), text)
        return boolean(binary(f, g, cmp), text)

    def comparable(self, t: Term, text: str) -> None:
        if t.kind == OPAQUE:
            self.fail(f"`{text}`: {t.why}")

    def comparator(self, left: Term, right: Term, op_sql: str, op: Op, text: str) -> tuple[Any, Any, Op]:
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

    def string_comparator(self, left: Term, right: Term, op_sql: str, op: Op, text: str) -> tuple[Any, Any, Op]:
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

    def temporal_comparator(self, left: Term, right: Term, op: Op, text: str) -> tuple[Any, Any, Op]:
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

        def as_literal(_: Any) -> Any:
            return value

        return (promote, as_literal, cmp) if col is left else (as_literal, promote, cmp)

    def in_(self, node: exp.In) -> Term:
        self.only(node, "this", "expressions")
        text = to_sql(node)
        if not node.expressions:
            self.fail(f"`{text}`: an empty IN list")
        left, items = self.expr(node.this), [self.expr(e) for e in node.expressions]
        self.same_exactness(left, items, text)
        tests = [self.comparison(left, i, "=", operator.eq, text) for i in items]
        if left.kind in NUMBERS and all(i.const and i.kind in NUMBERS + (NULL,) for i in items):
            to = float if left.kind == FLOAT else None  # (exact numbers against DOUBLE items are refused)
            values = frozenset(i.value if to is None else to(i.value) for i in items if i.kind != NULL)
            miss = None if any(i.kind == NULL for i in items) else False
            f = converted(left, to).fn
            return boolean(lambda row: None if (v := f(row)) is None else (True if v in values else miss), text)
        fns = [t.fn for t in tests]

        def fn(row: Row) -> bool | None:
            unknown = False
            for t in fns:
                r = t(row)
                if r is True:
                    return True
                unknown = unknown or r is None
            return None if unknown else False
        return boolean(fn, text)

    def same_exactness(self, left: Term, items: list[Term], text: str) -> None:
        if left.kind in (INT, DEC) and any(i.kind == FLOAT for i in items):
            self.fail(f"`{text}` mixes exact numbers with DOUBLE values, which MySQL then compares all as DOUBLE; "
                      "write the literals without exponent")

    def between(self, node: exp.Between) -> Term:
        self.only(node, "this", "low", "high")
        text = to_sql(node)
        left, low, high = self.expr(node.this), self.expr(node.args["low"]), self.expr(node.args["high"])
        self.same_exactness(left, [low, high], text)
        ge = self.comparison(left, low, ">=", operator.ge, text)
        le = self.comparison(left, high, "<=", operator.le, text)
        return self.logic_of(ge, le, text)

    def logic_of(self, a: Term, b: Term, text: str) -> Term:
        f, g = a.fn, b.fn

        def fn(row: Row) -> bool | None:
            x = f(row)
            if x is False:
                return False
            y = g(row)
            if y is False:
                return False
            return None if x is None or y is None else True
        return boolean(fn, text)

    # -- LIKE --

    def like(self, node: exp.Expression) -> Term:
        text, escape = to_sql(node), "\\"
        if isinstance(node, exp.Escape):
            esc = unparen(node.expression)
            if not (isinstance(esc, exp.Literal) and esc.is_string and len(str(esc.this)) == 1):
                self.fail(f"`{text}`: ESCAPE takes one character in quotes (ESCAPE '' means `\\` or none, "
                          "depending on the server's sql_mode)")
            escape, node = str(esc.this), unparen(node.this)
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
            return constant(None, INT, text, boolean=True)
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
            return boolean(lambda row: None if (v := f(row)) is None or (r := test(v)) is None else not r, text)
        return boolean(lambda row: None if (v := f(row)) is None else test(v), text)

    # -- arithmetic --

    def number(self, node: exp.Expression, op: str) -> Term:
        t = self.expr(node)
        if t.kind not in NUMBERS + (NULL,):
            self.fail(f"`{op}` needs numbers; {t.text} is a {t.kind}" + (f" ({t.why})" if t.why else ""))
        return t

    def arithmetic(self, node: exp.Expression, sym: str) -> Term:
        a, b = self.number(node.this, sym), self.number(node.expression, sym)
        text = to_sql(node)
        kinds, overflow = (a.kind, b.kind), self.overflow(text)
        if NULL in kinds:
            return constant(None, NULL, text)
        if FLOAT in kinds:
            if sym == "DIV":
                self.fail(f"`{text}`: DIV on DOUBLE values is not supported (MySQL converts them to DECIMAL first)")
            kind, unsigned, scale, digits, op = FLOAT, False, 0, 0, sem.float_op(sym, overflow)
        elif sym == "/":
            self.fail(f"`{text}`: exact division `/` of integers or decimals is not supported: MySQL and MariaDB "
                      "round its result differently depending on where it is used. Multiply instead "
                      "(`a > 2 * b` rather than `a / b > 2`), or use DIV for integer division")
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
            return constant(v, kind if v is not None else NULL, text, unsigned=unsigned, scale=scale, digits=digits)
        return Term(binary(a.fn, b.fn, op), kind, text, unsigned=unsigned, scale=scale, digits=digits)

    def negate(self, node: exp.Neg) -> Term:
        a, text = self.number(node.this, "-"), to_sql(node)
        if a.kind == NULL:
            return a
        if a.const:  # MySQL folds a negated literal: -9223372036854775808 is a BIGINT, beyond it a DECIMAL
            v = a.value
            if a.kind == INT and -v < -(2**63):
                return constant(Decimal(-v), DEC, text, digits=a.digits)
            return constant(v.copy_negate() if a.kind == DEC else -v, a.kind, text, scale=a.scale, digits=a.digits)
        f = a.fn
        if a.kind == DEC:
            return Term(lambda row: None if (v := f(row)) is None else v.copy_negate(), DEC, text, scale=a.scale,
                        digits=a.digits)
        if a.kind == FLOAT:
            return Term(lambda row: None if (v := f(row)) is None else -v, FLOAT, text)
        neg = sem.int_op("-", False, False, self.overflow(text))
        return Term(lambda row: None if (v := f(row)) is None else neg(0, v), INT, text)

"""A row filter's syntax: the `where:` clause read as one MySQL condition, and its SQL written again.

`parse_clause` refuses what is not one condition (`;` and further statements, executable comments and hints,
text sqlglot does not read as a condition), and a clause beyond the limits that keep reading, checking and
evaluating it bounded: `MAX_LENGTH` characters, parentheses nested `MAX_NESTING` deep (checked before parsing, and
again on the SQL as written back), operators nested or chained `MAX_DEPTH` deep. `render` writes the tree back
as fully parenthesized SQL with backquoted names (a chain of ANDs or of ORs as one chain), and refuses it unless
that SQL parses back to the same tree: the user's text never reaches the database as written. `refused` names
a construct for the message that refuses it.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from obsync.core.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "MAX_NESTING", "parse_clause", "refused", "render", "to_sql", "unparen"]

MAX_LENGTH = 10_000  # characters of a clause
MAX_NESTING = 20  # levels of parentheses (the parser recurses about 25 frames per level)
MAX_DEPTH = 64  # operators within operators, each AND/OR of a chain counted (checking and evaluating recurse)
LIMITS = (f"a row filter has at most {MAX_LENGTH} characters, {MAX_NESTING} levels of parentheses and "
          f"{MAX_DEPTH} operators nested or chained")
_COMPOUND = (exp.Binary, exp.Unary, exp.In, exp.Between)


def parse_clause(where: str, origin: str) -> exp.Expression:
    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{origin}: {msg}")

    if not isinstance(where, str) or not where.strip():
        raise fail("an empty row filter")
    if len(where) > MAX_LENGTH:
        raise fail(f"{len(where)} characters, more than the {MAX_LENGTH} a row filter may have")
    try:
        tokens = sqlglot.tokenize(where, read="mysql")
    except TokenError as e:
        raise fail(f"cannot read the clause: {e}") from None
    depth = deepest = 0
    for tok in tokens:
        depth += (tok.token_type == TokenType.L_PAREN) - (tok.token_type == TokenType.R_PAREN)
        deepest = max(deepest, depth)
        if tok.token_type == TokenType.SEMICOLON:
            raise fail("`;` is not allowed: a row filter is one WHERE condition, not statements")
        for comment in tok.comments:
            if comment.lstrip().startswith(("!", "M!", "+")):
                raise fail(f"executable comment or hint `/*{comment}*/` is not supported")
    if deepest > MAX_NESTING:
        raise fail(f"parentheses nested {deepest} deep, more than the {MAX_NESTING} levels a row filter may have")
    try:
        tree = sqlglot.parse_one(where, read="mysql", into=exp.Condition)
    except (ParseError, TokenError) as e:
        raise fail(f"not a single WHERE condition ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise fail(f"the clause nests too deeply to read; {LIMITS}") from None
    if not isinstance(tree, exp.Expression):  # None; every sqlglot node is an Expression
        raise fail("not a WHERE condition")
    depth, nesting = _depths(tree)
    if depth > MAX_DEPTH:
        raise fail(f"operators nested or chained {depth} deep (each AND/OR of a chain counts), more than the "
                   f"{MAX_DEPTH} a row filter may have; a long OR of one column's values is `col IN (...)`")
    if nesting > MAX_NESTING:
        raise fail(f"written back as SQL the clause needs {nesting} levels of parentheses, more than the "
                   f"{MAX_NESTING} a row filter may have")
    return tree


def _depths(tree: exp.Expression) -> tuple[int, int]:
    """(operators within operators, parentheses `render` writes), counted without recursion."""
    depth = nesting = 0
    todo: list[tuple[exp.Expression, int, int]] = [(tree, 0, 0)]
    while todo:
        node, d, n = todo.pop()
        node = unparen(node)
        compound = isinstance(node, _COMPOUND)
        d += compound
        depth, nesting = max(depth, d), max(nesting, n)
        for key, value in node.args.items():
            for child in value if isinstance(value, list) else [value]:
                if not isinstance(child, exp.Expression):
                    continue
                inner = unparen(child)
                flat = (isinstance(node, exp.Escape) and key == "this") or (
                    isinstance(node, (exp.And, exp.Or)) and key == "this" and type(inner) is type(node))
                todo.append((child, d, n + (isinstance(inner, _COMPOUND) and not flat)))
    return depth, nesting


def unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _parenthesize(node: exp.Expression) -> exp.Expression:
    """Every operand that is itself an operation in parentheses, so MySQL reads the SQL as it was parsed."""
    for key, value in list(node.args.items()):
        if isinstance(node, exp.Escape) and key == "this":  # `a LIKE b ESCAPE c` is one operator
            node.set(key, _parenthesize(unparen(value)))
        elif isinstance(node, (exp.And, exp.Or)) and key == "this" and type(unparen(value)) is type(node):
            # `(a AND b) AND c` is written `a AND b AND c` (the same left-to-right reading), so a long chain
            # is not read back as deeply nested parentheses
            node.set(key, _parenthesize(unparen(value)))
        elif isinstance(value, exp.Expression):
            node.set(key, _wrapped(value))
        elif isinstance(value, list):
            node.set(key, [_wrapped(v) if isinstance(v, exp.Expression) else v for v in value])
    return node


def _wrapped(child: exp.Expression) -> exp.Expression:
    child = _parenthesize(unparen(child))
    compound = isinstance(child, (exp.Binary, exp.Unary, exp.In, exp.Between))
    return exp.Paren(this=child) if compound else child


def _normal(node: exp.Expression) -> exp.Expression:
    """`node` (modified) without parentheses and with quoted identifiers, for comparing trees."""
    node = unparen(node)
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _normal(value))
        elif isinstance(value, list):
            node.set(key, [_normal(v) if isinstance(v, exp.Expression) else v for v in value])
    if isinstance(node, exp.Identifier):
        node.set("quoted", True)
    return node


def to_sql(node: exp.Expression, identify: bool = False) -> str:
    """`node` as MySQL SQL, fully parenthesized, without comments (backquoted names with `identify`)."""
    return _parenthesize(unparen(node.copy())).sql(dialect="mysql", identify=identify, comments=False)


def render(tree: exp.Expression, where: str, origin: str) -> str:
    """The SQL of `tree`, checked to parse back to the same tree."""
    sql = to_sql(tree, identify=True)
    try:
        back = sqlglot.parse_one(sql, read="mysql", into=exp.Condition)
        same = isinstance(back, exp.Expression) and _normal(back) == _normal(tree.copy()) and not any(
            t.token_type == TokenType.SEMICOLON for t in sqlglot.tokenize(sql, read="mysql"))
    except (ParseError, TokenError):
        same = False
    if not same:
        raise ConfigError(f"{origin}: the clause cannot be written back as SQL safely: {where!r}")
    return sql


def refused(node: exp.Expression) -> str:
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

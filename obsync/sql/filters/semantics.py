"""How MySQL and MariaDB compare and compute values, for row filters (`obsync.sql.filters`).

Every function here works on canonical values (see `obsync.core.schema`) that are not NULL; NULL handling is the
compiler's. Where the result depends on a collation obsync does not emulate, the functions call
`ask(sql, params)`, which runs `SELECT <sql>` on the source (`%s` placeholders; charset and collation names
come from the catalog and are checked to be plain names).

Facts these rest on (checked against MariaDB 10.11 by tests/integration/test_filters_mariadb.py):

- Printable ASCII (0x20-0x7E) under `*_general_ci`, `*_unicode[_520]_ci`, `latin1_swedish_ci`, ... (the
  `_CI_*` sets) has exactly the classes of ASCII case folding; control characters are ignorable in the UCA
  collations, so they are not "printable ASCII" here. PAD SPACE collations compare as if the shorter string
  were padded with spaces (`'a' = 'a  '`, and `'a' > 'a\\t'`); NO PAD ones (`_nopad_`, MySQL's `_0900_`) do not.
  LIKE never pads.
- `_bin` collations of utf8mb4/utf8mb3 order by code point; latin1's is cp1252 bytes, not code points.
- A temporal column compared with a string literal converts the literal to the column's type, except a DATE
  against a literal with a time part, compared as DATETIME. Stored zero dates (`0000-00-00`, `2024-00-10`)
  order by their parts.
- Integer `+ - * DIV` fail when the result leaves BIGINT (UNSIGNED if an operand is unsigned; `%` takes the
  dividend's); DIV truncates toward zero, `%` has the dividend's sign; a zero divisor gives NULL.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from obsync.core.schema import Column

Ask = Callable[[str, tuple], Any]
Op = Callable[[Any, Any], Any]

UTC = dt.UTC
INT_RANGE = {False: (-(2**63), 2**63 - 1), True: (0, 2**64 - 1)}
_DEC = Context(prec=400, Emax=999999, Emin=-999999, traps=[InvalidOperation])
_UNICODE = ("utf8mb4", "utf8mb3", "utf8")
_CI_FAMILIES = frozenset({
    "general_ci", "general_nopad_ci", "unicode_ci", "unicode_nopad_ci", "unicode_520_ci", "unicode_520_nopad_ci",
    "0900_ai_ci", "0900_as_ci", "uca1400_ai_ci", "uca1400_nopad_ai_ci", "uca1400_as_ci", "uca1400_nopad_as_ci"})
_CI_OTHER = frozenset({"latin1_swedish_ci", "latin1_general_ci", "latin1_swedish_nopad_ci", "ascii_general_ci",
                       "ascii_general_nopad_ci"})
_NAME = re.compile(r"[a-z0-9_]+")
_DATE_LIT = re.compile(r"(\d{4})-(\d\d)-(\d\d)")
_DATETIME_LIT = re.compile(r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?")
_TIME_LIT = re.compile(r"(-)?(\d{1,3}):(\d\d):(\d\d)(?:\.(\d{1,6}))?")
_STORED_TEMPORAL = re.compile(r"(\d+)-(\d+)-(\d+)(?:[ T](\d+):(\d+):(\d+)(?:\.(\d+))?)?")
_TIME_MAX = dt.timedelta(hours=838, minutes=59, seconds=59)


def printable_ascii(s: str) -> bool:
    return s.isascii() and s.isprintable()


# -- text ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Collation:
    """How obsync evaluates text under one collation."""

    name: str
    charset: str
    mode: str  # "bin": exact by code point; "ci": exact on printable ASCII; "other": the database decides
    pad: bool  # PAD SPACE (trailing spaces ignored by comparisons) or NO PAD
    ordered: bool  # code-point order is the collation's order (else non-ASCII ordering is delegated)

    @staticmethod
    def of(column: Column) -> Collation | None:
        """The column's collation, None when the schema does not know it."""
        name = (column.collation or "").lower()
        charset = (column.charset or name.split("_", 1)[0]).lower()
        if not _NAME.fullmatch(name) or not _NAME.fullmatch(charset):
            return None
        pad = "_nopad_" not in name and "_0900_" not in name
        family = name[len(charset) + 1:] if name.startswith(charset + "_") else ""
        if family in ("bin", "nopad_bin", "0900_bin") and charset in _UNICODE + ("latin1", "ascii"):
            return Collation(name, charset, "bin", pad, charset != "latin1")
        if (charset in _UNICODE and family in _CI_FAMILIES) or name in _CI_OTHER:
            return Collation(name, charset, "ci", pad, False)
        return Collation(name, charset, "other", pad, False)

    def holds(self, text: str) -> bool:
        """Whether a literal converts to this character set without loss."""
        if self.charset == "utf8mb4":
            return True
        if self.charset in _UNICODE:
            return all(ord(c) <= 0xFFFF for c in text)
        if self.charset == "latin1":
            try:
                text.encode("cp1252")
                return True
            except UnicodeEncodeError:
                return False
        return text.isascii()

    def operand(self) -> str:
        """SQL for one parameter as text of this collation."""
        return f"CONVERT(%s USING {self.charset}) COLLATE {self.name}"


def text_comparison(coll: Collation, op_sql: str, op: Op, ask: Ask) -> tuple[Callable[[str], Any] | None, Op]:
    """How to compare two strings of `coll` with `op_sql` ("=", "<>", "<", ...): a conversion applied to both
    sides first (None: none) and the test on the converted values.

    For equality the conversion is a key that is equal under the collation to the string it comes from
    (trailing spaces dropped under PAD SPACE, lower case under "ci"); a string obsync cannot decide on
    becomes a 1-tuple holding it, and a test involving one asks the database."""
    sql = f"{coll.operand()} {op_sql} {coll.operand()}"

    def delegated(a: Any, b: Any) -> Any:
        return ask(sql, (a[0] if a.__class__ is tuple else a, b[0] if b.__class__ is tuple else b))

    if op_sql in ("=", "<>") and coll.mode in ("bin", "ci"):
        if coll.mode == "bin":
            return (lambda s: s.rstrip(" ")) if coll.pad else None, op
        key = _ci_pad_key if coll.pad else _ci_key
        return key, lambda a, b: op(a, b) if a.__class__ is str and b.__class__ is str else delegated(a, b)
    if coll.mode == "bin":
        local: Op = (lambda a, b: op(a.ljust(len(b)), b.ljust(len(a)))) if coll.pad else op
        if coll.ordered:
            return None, local
        return None, lambda a, b: local(a, b) if a.isascii() and b.isascii() else delegated(a, b)
    return None, delegated


def _ci_pad_key(s: str) -> Any:
    """Equality key under a PAD SPACE "ci" collation (a 1-tuple: only the database can tell)."""
    return s.rstrip(" ").lower() if printable_ascii(s) else (s,)


def _ci_key(s: str) -> Any:
    """Equality key under a NO PAD "ci" collation (a 1-tuple: only the database can tell)."""
    return s.lower() if printable_ascii(s) else (s,)


def like_matcher(coll: Collation | None, pattern: str | bytes, escape: str, ask: Ask) -> Callable[[Any], Any]:
    """`value LIKE pattern ESCAPE escape` for values of `coll` (None: binary strings, `pattern` bytes)."""
    if coll is None:
        assert isinstance(pattern, bytes)
        rxb = re.compile(like_regex(pattern, escape.encode()), re.DOTALL)
        return lambda v: rxb.fullmatch(v) is not None
    assert isinstance(pattern, str)
    source = like_regex(pattern, escape)
    if coll.mode == "bin":
        rx = re.compile(source, re.DOTALL)
        return lambda v: rx.fullmatch(v) is not None
    sql = f"{coll.operand()} LIKE {coll.operand()} ESCAPE %s"
    if coll.mode == "ci" and printable_ascii(pattern) and printable_ascii(escape):
        rx = re.compile(source, re.DOTALL | re.IGNORECASE | re.ASCII)
        return lambda v: rx.fullmatch(v) is not None if printable_ascii(v) else ask(sql, (v, pattern, escape))
    return lambda v: ask(sql, (v, pattern, escape))


def like_regex(pattern: Any, escape: Any) -> Any:
    """A regular expression (str or bytes, like `pattern`) for a LIKE pattern: `%` any run, `_` one character,
    the escape character makes the next one literal (and is itself literal at the end)."""
    is_bytes = isinstance(pattern, bytes)
    chars = [pattern[i:i + 1] for i in range(len(pattern))]
    pct, one = (b"%", b"_") if is_bytes else ("%", "_")
    anything, single = (b".*", b".") if is_bytes else (".*", ".")
    out: list[Any] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c == escape and i + 1 < len(chars):
            out.append(re.escape(chars[i + 1]))
            i += 2
            continue
        if c == pct:
            if not out or out[-1] != anything:
                out.append(anything)
        else:
            out.append(single if c == one else re.escape(c))
        i += 1
    return (b"" if is_bytes else "").join(out)


# -- dates and times ------------------------------------------------------------------------------------------------

def temporal_literal(kind: str, s: str) -> tuple[Any, Callable[[Any], Any] | None]:
    """The value of literal `s` compared with a column of `kind` ("date", "datetime", "timestamp", "time"),
    and how to convert the column's values for the comparison (None: as they are); ValueError if `s` is
    not a valid value written in the standard form."""
    if kind == "time":
        m = _TIME_LIT.fullmatch(s)
        if m:
            sign, h, mi, sec, frac = m.groups()
            v = dt.timedelta(hours=int(h), minutes=int(mi), seconds=int(sec),
                             microseconds=int((frac or "0").ljust(6, "0")))
            if int(mi) < 60 and int(sec) < 60 and v <= _TIME_MAX:
                return (-v if sign else v), None
    elif m := _DATE_LIT.fullmatch(s):
        d = dt.date(*map(int, m.groups()))
        if kind == "date":
            return d, None
        return dt.datetime(d.year, d.month, d.day, tzinfo=UTC if kind == "timestamp" else None), None
    elif m := _DATETIME_LIT.fullmatch(s):
        y, mo, day, h, mi, sec, frac = m.groups()
        stamp = dt.datetime(int(y), int(mo), int(day), int(h), int(mi), int(sec), int((frac or "0").ljust(6, "0")),
                            tzinfo=UTC if kind == "timestamp" else None)
        return stamp, (_to_datetime if kind == "date" else None)
    raise ValueError(s)


def _to_datetime(v: Any) -> Any:
    return dt.datetime(v.year, v.month, v.day) if v.__class__ is dt.date else v


def _stored_key(v: Any) -> tuple[int, ...]:
    """A temporal value (date, datetime, or the text of a zero or invalid date) as comparable parts."""
    if v.__class__ is str:
        m = _STORED_TEMPORAL.match(v)
        if m is None:
            raise ValueError(f"not a temporal value: {v!r}")
        y, mo, d, h, mi, s, f = m.groups()
        return (int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), int((f or "0").ljust(6, "0")[:6]))
    if isinstance(v, dt.datetime):
        return (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
    return (v.year, v.month, v.day, 0, 0, 0, 0)


def temporal_comparison(op: Op) -> Op:
    """`op` on temporal values, where stored zero dates (text) compare by their parts."""
    def cmp(a: Any, b: Any) -> Any:
        if a.__class__ is str or b.__class__ is str:
            return op(_stored_key(a), _stored_key(b))
        return op(a, b)
    return cmp


# -- arithmetic -------------------------------------------------------------------------------------------------

def int_op(sym: str, unsigned: bool, exact: bool, overflow: Callable[[str], None]) -> Op:
    """Integer `+ - * DIV %` (`exact`: DIV of decimals, exact then truncated); `overflow(message)` is called
    where MySQL fails with "BIGINT value is out of range"."""
    lo, hi = INT_RANGE[unsigned]
    name = "BIGINT UNSIGNED" if unsigned else "BIGINT"

    def checked(v: int, x: Any, y: Any) -> int:
        if not lo <= v <= hi:
            overflow(f"{name} value is out of range (operands {x}, {y})")
        return v
    if sym == "+":
        return lambda x, y: checked(x + y, x, y)
    if sym == "-":
        return lambda x, y: checked(x - y, x, y)
    if sym == "*":
        return lambda x, y: checked(x * y, x, y)
    if sym == "DIV" and exact:
        return lambda x, y: None if y == 0 else checked(int(_DEC.divide_int(x, y)), x, y)
    if sym == "DIV":
        return lambda x, y: None if y == 0 else checked(abs(x) // abs(y) * (-1 if (x < 0) != (y < 0) else 1), x, y)
    return lambda x, y: None if y == 0 else abs(x) % abs(y) * (-1 if x < 0 else 1)


def decimal_op(sym: str) -> Op:
    """Exact DECIMAL `+ - * %` (the caller makes sure results fit 65 digits, 30 after the point: MySQL computes
    those exactly)."""
    if sym == "+":
        return _DEC.add
    if sym == "-":
        return _DEC.subtract
    if sym == "*":
        return _DEC.multiply
    return lambda x, y: None if y == 0 else _DEC.remainder(Decimal(x), Decimal(y))


def float_op(sym: str, overflow: Callable[[str], None]) -> Op:
    """DOUBLE `+ - * / %`."""
    def checked(v: float) -> float:
        if math.isinf(v) or math.isnan(v):
            overflow("DOUBLE value is out of range")
        return v
    if sym == "+":
        return lambda x, y: checked(float(x) + float(y))
    if sym == "-":
        return lambda x, y: checked(float(x) - float(y))
    if sym == "*":
        return lambda x, y: checked(float(x) * float(y))
    if sym == "/":
        return lambda x, y: None if y == 0 else checked(float(x) / float(y))
    return lambda x, y: None if y == 0 else math.fmod(float(x), float(y))

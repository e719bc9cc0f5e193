"""One schema's Avro binary writer compiled to Python: the bytes fastavro's `schemaless_writer` writes, in one
pass, for the data obsync writes.

`compile_writer(parsed)` gives `write(datum) -> bytes` for a parsed schema made of what obsync's schemas use:
records (and references to them), null, boolean, int, long, float, double, bytes, string, the logical types
fastavro passes through unchanged for int / bytes values, and unions of null with one other type (tuple notation
`(name, value)` accepted for a record branch) — or None when the schema has anything else (enums, arrays, maps,
fixed, unions of several types), for which fastavro stays the writer.

The generated code tests each value's type once, writes a union's branch index together with the value's first
bytes (tables of prefixed small longs and string lengths), and writes large longs 14 bits a step. When
`obsync/core/_render.c` was built, the same writer runs there instead, from a program of the schema
(`avro_program`): same bytes, same refusals (tests compare the three).

The compiled writer is strict where fastavro converts or chooses (a value of another Python type, a missing
field, a number out of range, an unknown union name): it raises `Unwritable`, and the caller hands the datum to
fastavro, whose bytes (or error) are then the answer. So whatever it writes is byte for byte what fastavro
writes (tested against fastavro on every schema the tests build).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

_INT_LOGICAL = {"int-date", "int-time-millis", "long-timestamp-millis", "long-timestamp-micros", "long-time-micros",
                "long-local-timestamp-millis", "long-local-timestamp-micros"}
_ONE = [bytes((z,)) for z in range(128)]
# every 14-bit group as its two varint bytes (continuation bits set): a long takes 1-5 steps, not 1-10 (~0.7 MB)
_PAIR = [bytes(((p & 0x7F) | 0x80, (p >> 7) | 0x80)) for p in range(16384)]
_F = struct.Struct("<f").pack
_D = struct.Struct("<d").pack


class Unwritable(Exception):
    """The compiled writer does not write this datum: fastavro must."""


# every value below 2**14 as its varint (1 or 2 bytes): the last group of any long (~0.6 MB)
_LAST = [_ONE[z] if z < 128 else bytes(((z & 0x7F) | 0x80, z >> 7)) for z in range(16384)]


def _varint(z: int, pair: list[bytes] = _PAIR, last: list[bytes] = _LAST) -> bytes:
    """The varint of `z` (0 <= z < 2**64)."""
    if z < 16384:
        return last[z]
    if z < 268435456:  # 2**28
        return pair[z & 0x3FFF] + last[z >> 14]
    if z < 4398046511104:  # 2**42
        return b"".join((pair[z & 0x3FFF], pair[(z >> 14) & 0x3FFF], last[z >> 28]))
    if z < 72057594037927936:  # 2**56
        return b"".join((pair[z & 0x3FFF], pair[(z >> 14) & 0x3FFF], pair[(z >> 28) & 0x3FFF], last[z >> 42]))
    return b"".join((pair[z & 0x3FFF], pair[(z >> 14) & 0x3FFF], pair[(z >> 28) & 0x3FFF],
                     pair[(z >> 42) & 0x3FFF], last[z >> 56]))


def zigzag(n: int, one: list[bytes] = _ONE) -> bytes:
    """Avro's long encoding of `n` (-2**63 <= n < 2**63)."""
    z = (n << 1) ^ (n >> 63)
    return one[z] if z < 128 else _varint(z)


class _Compiler:
    def __init__(self, decimal: Callable[[Any, int], bytes] | None = None,
                 repeats: Callable[[str, str], bool] | None = None) -> None:
        self.decimal = decimal
        self.repeats = repeats
        self.memo = False  # whether the field being compiled keeps its recent strings' bytes
        self.named: dict[str, Any] = {}
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.lines: list[str] = []
        self.temp = 0
        self.tables: dict[str, Any] = {}  # name -> prefixed table of constants, in the generated code's namespace

    def var(self) -> str:
        self.temp += 1
        return f"x{self.temp}"

    def table(self, kind: str, prefix: bytes) -> str:
        """The name of a table of `prefix` + each small long (`L`) or string length (`S`): a union's branch
        index and the value's first byte(s) in one piece."""
        name = f"_{kind}{prefix.hex()}"
        if name not in self.tables:
            self.tables[name] = [prefix + (_ONE[z] if kind == "L" else _ONE[z << 1])
                                 for z in range(128 if kind == "L" else 64)]
        return name

    def record(self, schema: dict[str, Any]) -> str:
        """The name of the function writing `schema` (a record), generating it on first use."""
        name = schema["name"]
        fn = self.functions.get(name)
        if fn is not None:
            return fn
        fn = self.functions[name] = f"w{len(self.functions)}"
        body = [f"def {fn}(v):", "    if type(v) is not dict:", "        raise Unwritable"]
        pieces = []
        for field in schema["fields"]:
            x = self.var()
            pieces.append(x)
            body.append(f"    {x} = v[{field['name']!r}]")
            outer, self.memo = self.memo, self.repeats is not None and self.repeats(name, field["name"])
            body += self.value(field["type"], x, "    ")
            self.memo = outer
        body.append(f"    return b''.join(({', '.join(pieces)},))")
        self.lines += body
        return fn

    def value(self, schema: Any, x: str, ind: str, p: bytes = b"") -> list[str]:
        """Lines replacing the value in variable `x` of type `schema` by its bytes, after `p` (a union's branch
        index, or nothing). A value of another type raises `Unwritable` (a tuple too, unless the type is a
        record)."""
        if isinstance(schema, str):
            if schema in self.named:
                return self.value(self.named[schema], x, ind, p)
            kind, logical = schema, None
        elif isinstance(schema, list):
            if p:
                raise Unwritable("union in union")
            return self.union(schema, x, ind)
        else:
            kind = schema["type"]
            logical = schema.get("logicalType")
            if kind == "record":
                self.named[schema["name"]] = schema
                fn = self.record(schema)
                return [f"{ind}{x} = {p!r} + {fn}({x})" if p else f"{ind}{x} = {fn}({x})"]
            _check_type(kind, logical)
        if kind == "null":
            return [f"{ind}if {x} is not None:", f"{ind}    raise Unwritable", f"{ind}{x} = {p!r}"]
        if kind == "boolean":
            true, false = p + b"\x01", p + b"\x00"
            return [f"{ind}if type({x}) is not bool:", f"{ind}    raise Unwritable",
                    f"{ind}{x} = {true!r} if {x} else {false!r}"]
        if kind in ("int", "long"):
            lo, hi = (-(2**31), 2**31 - 1) if kind == "int" else (-(2**63), 2**63 - 1)
            return [f"{ind}if type({x}) is not int or not {lo} <= {x} <= {hi}:", f"{ind}    raise Unwritable",
                    f"{ind}{x} = ({x} << 1) ^ ({x} >> 63)",  # zigzag, inline
                    *self.varint(x, ind, p, kind == "int")]
        if kind in ("float", "double"):
            pack = f"{'_F' if kind == 'float' else '_D'}({x})"
            return [f"{ind}if type({x}) is not float:", f"{ind}    raise Unwritable",
                    f"{ind}{x} = {f'{p!r} + {pack}' if p else pack}"]
        if kind == "string":
            check = [f"{ind}if type({x}) is not str:", f"{ind}    raise Unwritable"]
            if not self.memo:
                return [*check, f"{ind}{x} = {x}.encode()", *self.length(x, ind, p)]
            memo = f"_M{len(self.tables)}"
            self.tables[memo] = {}  # str -> its bytes after `p`, for at most 16 short strings
            big = f"{p!r} + zigzag(n)" if p else "zigzag(n)"
            return [*check,
                    f"{ind}c = {memo}.get({x})",
                    f"{ind}if c is None:",
                    f"{ind}    c = {x}.encode()",
                    f"{ind}    n = len(c)",
                    f"{ind}    if n < 64:",
                    f"{ind}        c = {self.table('S', p)}[n] + c",
                    f"{ind}        if len({memo}) >= 16:",
                    f"{ind}            {memo}.clear()",
                    f"{ind}        {memo}[{x}] = c",
                    f"{ind}    else:",
                    f"{ind}        c = {big} + c",
                    f"{ind}{x} = c"]
        if kind == "bytes":
            convert = []
            if logical == "decimal" and self.decimal is not None:
                scale = schema["scale"] if isinstance(schema, dict) else 0
                if type(scale) is not int:
                    raise Unwritable("scale")
                convert = [f"{ind}if type({x}) is _Decimal:", f"{ind}    {x} = _decimal({x}, {scale})"]
            return [*convert, f"{ind}if type({x}) is not bytes:", f"{ind}    raise Unwritable",
                    *self.length(x, ind, p)]
        raise Unwritable(kind)

    def varint(self, x: str, ind: str, p: bytes, int32: bool) -> list[str]:
        """Lines replacing `x` (0 <= x < 2**64) by `p` and its varint: `_varint` inline, 14 bits a step."""
        pre = f"{p!r}, " if p else ""
        lines = [f"{ind}if {x} < 128:", f"{ind}    {x} = {self.table('L', p)}[{x}]",
                 f"{ind}elif {x} < 16384:", f"{ind}    {x} = {f'{p!r} + ' if p else ''}_LAST[{x}]"]
        groups = ["_PAIR[{x} & 0x3FFF]"]
        for bits in (28, 42, 56, 70):
            if int32 and bits > 42:  # an int's zigzag is below 2**32
                break
            last = f"_LAST[{x} >> {bits - 14}]"
            test = f"{ind}elif {x} < {1 << bits}:" if bits < 70 else f"{ind}else:"
            lines += [test, f"{ind}    {x} = b''.join(({pre}{', '.join(g.format(x=x) for g in groups)}, {last}))"]
            groups.append(f"_PAIR[({{x}} >> {bits - 14}) & 0x3FFF]")
        if int32:
            lines += [f"{ind}else:", f"{ind}    {x} = {f'{p!r} + ' if p else ''}_varint({x})"]
        return lines

    def length(self, x: str, ind: str, p: bytes) -> list[str]:
        """Lines replacing `x` (bytes) by `p`, its length (a long) and itself."""
        big = f"{p!r} + zigzag(n)" if p else "zigzag(n)"
        return [f"{ind}n = len({x})", f"{ind}{x} = ({self.table('S', p)}[n] if n < 64 else {big}) + {x}"]

    def union(self, branches: list[Any], x: str, ind: str) -> list[str]:
        i, is_record = _union_branch(branches, self.named)
        lines = [f"{ind}if {x} is None:"]
        if len(branches) == 1:
            lines.append(f"{ind}    raise Unwritable")
        else:
            lines.append(f"{ind}    {x} = {zigzag(1 - i)!r}")
        lines.append(f"{ind}else:")
        if is_record:  # tuple notation names the branch: only records' is accepted
            name = _branch_name(branches[i], self.named)
            lines += [f"{ind}    if type({x}) is tuple:",
                      f"{ind}        if len({x}) != 2 or {x}[0] != {name!r}:",
                      f"{ind}            raise Unwritable",
                      f"{ind}        {x} = {x}[1]"]
        return lines + self.value(branches[i], x, ind + "    ", zigzag(i))


def _check_type(kind: Any, logical: Any) -> None:
    """Raises `Unwritable` for a type (and logical type) the compiled writers leave to fastavro."""
    if not isinstance(kind, str) or kind in ("enum", "array", "map", "fixed", "error"):
        raise Unwritable(kind)
    if logical is not None:
        key = f"{kind}-{logical}"
        if key not in _INT_LOGICAL and key != "bytes-decimal":
            raise Unwritable(key)


def _union_branch(branches: list[Any], named: dict[str, Any]) -> tuple[int, bool]:
    """(index of the union's one branch that is not null, whether it is a record); `Unwritable` for any other
    union."""
    kinds = [_kind(b, named) for b in branches]
    others = [i for i, k in enumerate(kinds) if k != "null"]
    if len(others) != 1 or len(branches) - len(others) > 1:
        raise Unwritable("union")
    return others[0], kinds[others[0]] == "record"


def _kind(schema: Any, named: dict[str, Any]) -> str:
    if isinstance(schema, str):
        return named[schema]["type"] if schema in named else schema
    if isinstance(schema, list):
        return "union"
    return schema["type"]


def _branch_name(schema: Any, named: dict[str, Any]) -> str:
    """The name tuple notation uses for a union branch: a named type's full name, else the type's name."""
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    return schema["name"] if kind in ("record", "enum", "fixed", "error") else kind


try:  # built by `pip install` when a C compiler is there (setup.py)
    from obsync.core._render import AvroWriter as _AvroWriter
except ImportError:  # pragma: no cover - installed without a C compiler
    _AvroWriter = None

_A_NULL, _A_BOOLEAN, _A_INT, _A_FLOAT, _A_DOUBLE, _A_STRING, _A_BYTES, _A_RECORD, _A_UNION = range(9)
_SIMPLE = {"null": (_A_NULL,), "boolean": (_A_BOOLEAN,), "int": (_A_INT, True), "long": (_A_INT, False),
           "float": (_A_FLOAT,), "double": (_A_DOUBLE,), "string": (_A_STRING,)}


def avro_program(parsed: Any, decimal: bool) -> tuple[Any, ...]:
    """The compiled Avro writer's program of a parsed record schema (`AvroWriter` in `obsync/core/_render.c`
    says what each node is): what `_Compiler` generates Python for, with the same refusals (raises `Unwritable`
    for a schema it leaves to fastavro). `decimal`: a Decimal in a decimal field is converted by the caller's
    function."""
    named: dict[str, Any] = {}
    records: dict[str, tuple[Any, ...]] = {}

    def node(schema: Any, in_union: bool = False) -> tuple[Any, ...]:
        if isinstance(schema, str):
            if schema in named:
                return node(named[schema], in_union)
            kind, logical = schema, None
        elif isinstance(schema, list):
            if in_union:
                raise Unwritable("union in union")
            i, is_record = _union_branch(schema, named)
            name = _branch_name(schema[i], named) if is_record else None
            return (_A_UNION, i if len(schema) > 1 else -1, node(schema[i], True), name)
        else:
            kind = schema["type"]
            logical = schema.get("logicalType")
            if kind == "record":
                full = schema["name"]
                named[full] = schema
                if full not in records:
                    records[full] = (_A_RECORD, tuple((f["name"], node(f["type"])) for f in schema["fields"]))
                return records[full]
            _check_type(kind, logical)
        if kind in _SIMPLE:
            return _SIMPLE[kind]
        if kind == "bytes":
            scale = -1
            if logical == "decimal" and decimal:
                scale = schema["scale"] if isinstance(schema, dict) else 0
                if type(scale) is not int or scale < 0:
                    raise Unwritable("scale")
            return (_A_BYTES, scale)
        raise Unwritable(kind)

    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise Unwritable("not a record")
    return node(parsed)


def is_compiled(write: Any) -> bool:
    """Whether `write` (from `compile_writer`) is the compiled writer, which also takes a record as the tuple of
    its fields' values in order."""
    return _AvroWriter is not None and isinstance(write, _AvroWriter)


def compile_writer(parsed: Any, decimal: Callable[[Any, int], bytes] | None = None,
                   repeats: Callable[[str, str], bool] | None = None,
                   compiled: bool = True) -> Callable[[Any], bytes] | None:
    """`write(datum)` for the parsed record schema `parsed` (raising `Unwritable` for data it leaves to fastavro),
    or None when the schema has a type it does not write. With `decimal`, a `decimal.Decimal` in a decimal field
    is written as the bytes `decimal(value, scale)` gives (the field's scale), as the converter of Connect values
    would have made them (fastavro would encode the Decimal itself). `repeats(record full name, field name)`
    names string fields whose values recur from datum to datum (constants, a few names): their recent values'
    bytes are kept (16 at most per field) instead of encoded each time."""
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return None
    if compiled and _AvroWriter is not None:  # the same program in C (`obsync/core/_render.c`)
        try:
            return _AvroWriter(avro_program(parsed, decimal is not None), Unwritable, decimal)  # type: ignore[no-any-return]
        except (Unwritable, KeyError):
            return None
    c = _Compiler(decimal, repeats)
    try:
        c.named[parsed["name"]] = parsed
        top = c.record(parsed)
    except (Unwritable, KeyError):
        return None
    namespace: dict[str, Any] = {"Unwritable": Unwritable, "zigzag": zigzag, "_F": _F, "_D": _D, "_varint": _varint,
                                "_PAIR": _PAIR, "_LAST": _LAST, "_Decimal": Decimal, "_decimal": decimal, **c.tables}
    source = "\n".join(c.lines)
    exec(compile(source, f"<avro writer {parsed['name']}>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace[top]  # type: ignore[no-any-return]


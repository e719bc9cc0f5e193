"""Rows of plain values packed into bytes for crossing processes, faster than pickle writes them.

`pack(rows, constants)` is the C module `obsync/core/_pack.c` (built by `pip install`; without it, and for any
rows holding a value it does not pack, it returns None and the caller pickles the rows). `unpack(blob, constants)`
is the C module's too, or `unpack_in_python` (the same format read in Python) where a process has no C module
but receives from one that has. The format: the row count, then each row as a value; counts, lengths and
indices (n) are LEB128 varints, integers (z) zigzagged varints, the other fields little-endian bytes:

    N None   T True   F False   i int (z)   f float64   s str (n length, UTF-8)   b bytes (n length)
    D Decimal (its text as s)   d datetime (u16 year, month, day, hour, minute, second, u24 microsecond, fold,
    1 if UTC)   a date (u16 year, month, day)   e timedelta (days, seconds, microseconds: z each)
    M dict (n, then n key/value pairs)   t tuple (n, n values)   c constants[n]
    K a shared str (as s; the next index of this blob's shared strs)   k shared str[n]

Dict keys and a tuple's str items are shared strs: written once per blob and unpacked as one object.
"""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from typing import Any

_pack: Any
_unpack: Any
try:  # built by `pip install` when a C compiler is there (setup.py)
    from obsync.core._pack import pack as _pack
    from obsync.core._pack import unpack as _unpack
except ImportError:  # pragma: no cover - installed without a C compiler
    _pack = _unpack = None


def pack(rows: list[tuple[Any, ...]], constants: tuple[Any, ...]) -> bytes | None:
    """`rows` packed, or None: no C module, or a value it does not pack (the caller pickles them)."""
    return _pack(rows, constants) if _pack is not None else None


def unpack(blob: bytes, constants: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The rows `pack` packed into `blob`."""
    return _unpack(blob, constants) if _unpack is not None else unpack_in_python(blob, constants)


_F64 = struct.Struct("<d")


def unpack_in_python(blob: bytes, constants: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """`unpack` without the C module (the format in the module docstring)."""
    names: list[str] = []
    at = 0

    def u32() -> int:  # a LEB128 varint
        nonlocal at
        v = shift = 0
        while True:
            c = blob[at]
            at += 1
            v |= (c & 127) << shift
            if not c & 128:
                return v
            shift += 7

    def zigzag() -> int:
        u = u32()
        return (u >> 1) ^ -(u & 1)

    def text() -> str:
        nonlocal at
        n = u32()
        s = blob[at:at + n].decode("utf-8")
        at += n
        return s

    def value() -> Any:
        nonlocal at
        tag = chr(blob[at])
        at += 1
        if tag == "N":
            return None
        if tag in "TF":
            return tag == "T"
        if tag == "i":
            return zigzag()
        if tag == "f":
            at += 8
            return _F64.unpack_from(blob, at - 8)[0]
        if tag == "s":
            return text()
        if tag == "K":
            names.append(text())
            return names[-1]
        if tag == "k":
            return names[u32()]
        if tag == "b":
            n = u32()
            at += n
            return blob[at - n:at]
        if tag == "D":
            return Decimal(text())
        if tag == "d":
            b = blob[at:at + 12]
            at += 12
            return dt.datetime(b[0] | b[1] << 8, b[2], b[3], b[4], b[5], b[6], b[7] | b[8] << 8 | b[9] << 16,
                               dt.UTC if b[11] else None, fold=b[10])
        if tag == "a":
            b = blob[at:at + 4]
            at += 4
            return dt.date(b[0] | b[1] << 8, b[2], b[3])
        if tag == "e":
            d, s, us = zigzag(), zigzag(), zigzag()
            return dt.timedelta(days=d, seconds=s, microseconds=us)
        if tag == "M":
            out = {}
            for _ in range(u32()):
                k = value()
                out[k] = value()
            return out
        if tag == "t":
            return tuple(value() for _ in range(u32()))
        if tag == "c":
            return constants[u32()]
        raise ValueError(f"packed rows: unknown tag {tag!r} at byte {at - 1}")

    rows = [value() for _ in range(u32())]
    if at != len(blob):
        raise ValueError(f"packed rows: {len(blob) - at} bytes left after the rows")
    return rows

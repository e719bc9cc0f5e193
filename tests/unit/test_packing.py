"""Rows packed for crossing processes (`obsync.core.packing`, `obsync/core/_pack.c`): they come back equal, value
for value and type for type, through the C module and through the Python reader of the same format; a value it
does not pack makes `pack` return None (the caller pickles), never a different value."""

from __future__ import annotations

import datetime as dt
import enum
import math
import pickle
import random
from decimal import Decimal
from typing import Any

import pytest

from obsync.core import packing
from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.steps.lane_work import LaneWork, pack_items
from obsync.steps.routing import Encode

pytestmark = pytest.mark.skipif(packing._pack is None, reason="the C packing module was not built")

CONSTANTS = tuple(Op)
UTC = dt.UTC


def typed(v: Any) -> Any:
    """`v` with every value's type, its repr (NaN equal to NaN, Decimal('1.0') unequal to Decimal('1.00')) and, for
    datetimes, its fold."""
    if isinstance(v, dict):
        return ("dict", [(typed(k), typed(x)) for k, x in v.items()])
    if isinstance(v, tuple):
        return ("tuple", [typed(x) for x in v])
    if isinstance(v, dt.datetime):
        return ("datetime", repr(v), v.fold)
    return (type(v).__name__, repr(v))


def random_value(r: random.Random, depth: int = 0) -> Any:
    kinds = [
        lambda: None, lambda: True, lambda: False,
        lambda: r.choice((0, 1, -1, 127, 128, -129, 2**63 - 1, -2**63, r.randint(-2**63, 2**63 - 1))),
        lambda: r.choice((0.0, -0.0, math.inf, -math.inf, math.nan, 1e-310, r.uniform(-1e300, 1e300))),
        lambda: "".join(r.choice("aé€😀\x00\n\"\\ ") for _ in range(r.randint(0, 9))),
        lambda: bytes(r.randrange(256) for _ in range(r.randint(0, 9))),
        lambda: r.choice((Decimal("-0.00"), Decimal("1E+2"), Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"),
                          Decimal(f"{r.randint(-10**40, 10**40)}E-{r.randint(0, 30)}"))),
        lambda: dt.datetime(r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28), r.randint(0, 23),
                            r.randint(0, 59), r.randint(0, 59), r.randint(0, 999999), r.choice((None, UTC)),
                            fold=r.randint(0, 1)),
        lambda: dt.date(r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28)),
        lambda: dt.timedelta(days=r.randint(-999999999, 999999999), seconds=r.randint(0, 86399),
                             microseconds=r.randint(0, 999999)),
        lambda: r.choice(CONSTANTS),
    ]
    if depth < 3:
        kinds += [lambda: {f"c{r.randint(0, 12)}": random_value(r, depth + 1) for _ in range(r.randint(0, 6))},
                  lambda: tuple(random_value(r, depth + 1) for _ in range(r.randint(0, 5)))]
    return r.choice(kinds)()


def test_random_rows_come_back_equal_with_their_types_in_c_and_in_python() -> None:
    r = random.Random(5)
    for _ in range(200):
        rows = [tuple(random_value(r) for _ in range(r.randint(0, 12))) for _ in range(r.randint(0, 20))]
        blob = packing.pack(rows, CONSTANTS)
        assert blob is not None
        assert typed(tuple(packing.unpack(blob, CONSTANTS))) == typed(tuple(rows))
        assert typed(tuple(packing.unpack_in_python(blob, CONSTANTS))) == typed(tuple(rows))


def test_names_are_written_once_and_shared_by_the_rows_unpacked() -> None:
    rows = [(1, "binlog.000001", {"id": i, "name": f"n{i}"}) for i in range(100)]
    blob = packing.pack(rows, CONSTANTS)
    assert blob is not None and blob.count(b"binlog.000001") == 1 and blob.count(b"name") == 1
    for back in (packing.unpack(blob, CONSTANTS), packing.unpack_in_python(blob, CONSTANTS)):
        assert back == rows
        assert all(list(r[2])[1] is list(back[0][2])[1] and r[1] is back[0][1] for r in back)


class Shade(enum.Enum):
    DARK = 1


class MyDecimal(Decimal):
    pass


@pytest.mark.parametrize("value", [
    2**63, -2**63 - 1,  # beyond 64 bits
    "lone \ud800 surrogate",
    dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # a zone other than UTC
    MyDecimal("1.5"), Shade.DARK,  # a subclass, a constant not given
    [1, 2], {1, 2}, {1: "int key"}, bytearray(b"x"), object(),
    ((((((((((1,),),),),),),),),),),  # nested deeper than it packs
])
def test_a_value_it_does_not_pack_leaves_the_rows_to_pickle(value: Any) -> None:
    assert packing.pack([(1, "a"), (2, {"v": value})], CONSTANTS) is None
    assert packing.pack([[1, 2]], CONSTANTS) is None  # a row that is not a tuple


def test_bad_bytes_are_refused_naming_the_fault() -> None:
    blob = packing.pack([(1, "abc", Decimal("2.5"))], CONSTANTS)
    assert blob is not None
    for broken in (blob[:-1], blob + b"N", blob[:1] + b"?" + blob[2:]):
        with pytest.raises(ValueError, match="packed rows"):
            packing.unpack(broken, CONSTANTS)
        with pytest.raises((ValueError, IndexError)):
            packing.unpack_in_python(broken, CONSTANTS)


SCHEMA = TableSchema("d", "t", (Column("id", "bigint", "bigint"), Column("v", "varchar", "varchar(9)")), ("id",))


def test_a_lanes_batch_crosses_packed_and_arrives_as_the_same_changes() -> None:
    changes = [Change(Op.UPDATE if i % 2 else Op.INSERT, SCHEMA, LogPosition("b.000001", 100 + i, i % 3),
                      before={"id": i, "v": Decimal("1.50")} if i % 2 else None,
                      after={"id": i, "v": dt.datetime(2024, 1, 1, 0, 0, i, tzinfo=UTC)},
                      commit_time=1.5, txn="0-1-9", server_id=3) for i in range(40)]
    work = LaneWork("lane001", [Encode(c, "topic", 1) for c in changes])
    blob = pickle.dumps(work)
    assert b"Decimal" not in blob and b"datetime" not in blob  # the rows crossed packed, not pickled
    back = pickle.loads(blob)
    assert [e.change for e in back.items] == changes and back == work
    # a value it does not pack: the batch is pickled as before, and arrives the same
    odd = [Change(Op.INSERT, SCHEMA, LogPosition("b.000001", 7, 0), after={"id": 1, "v": [1, 2]})]
    assert packing.pack(pack_items([Encode(odd[0], "topic", 1)])[2], CONSTANTS) is None
    back = pickle.loads(pickle.dumps(LaneWork("lane001", [Encode(odd[0], "topic", 1)])))
    assert [e.change for e in back.items] == odd

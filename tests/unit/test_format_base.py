"""What every encoder shares (`obsync.formats.base`): the opening of `encode` and the per-table cache."""

from __future__ import annotations

import pytest

from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext, TableCache
from obsync.formats.registry import encoder_for, registered_formats

T = TableSchema("db", "t", (Column("id", "int", "int(11)"),), ("id",))
POS = LogPosition("b.000001", 4, 0)


def test_table_cache_builds_once_per_table_and_shares_equal_copies() -> None:
    built: list[TableSchema] = []
    cache: TableCache[str] = TableCache(lambda s: built.append(s) or s.full_name, limit=2)
    copy = TableSchema("db", "t", T.columns, ("id",))
    assert [cache.get(T), cache.get(T), cache.get(copy)] == ["db.t"] * 3 and built == [T]
    for i in range(3):  # past the limit the cache starts afresh
        cache.get(TableSchema("db", f"x{i}", T.columns))
    assert cache.get(T) == "db.t" and built[-1] is T and len(built) == 5


@pytest.mark.parametrize("fmt", registered_formats())
def test_every_format_refuses_a_row_change_without_its_table(fmt: str) -> None:
    enc = encoder_for(fmt, EncoderContext("t", "MYSQL"), {"schema_registry": {}} if fmt == "avro" else {})
    with pytest.raises(ValueError, match=r"insert change at .* has no table"):
        enc.encode(Change(Op.INSERT, None, POS, after={"id": 1}), "topic")
    assert isinstance(enc.encode(Change(Op.HEARTBEAT, None, POS, commit_time=1.0), "topic"), list)

"""The binlog reader's fast builders of `Change` and `LogPosition` make objects indistinguishable from the
dataclasses' own constructors: type, every field, equality, hash, repr, pickling, `replace`, frozenness."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from obsync.core.changes import Change, Op, new_row_change
from obsync.core.positions import LogPosition, new_log_position, position_to_header
from obsync.core.schema import Column, TableSchema


def test_a_built_log_position_is_a_log_position() -> None:
    built, made = new_log_position("mysql-bin.000042", 1234, 5), LogPosition("mysql-bin.000042", 1234, 5)
    assert type(built) is LogPosition and built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert (built.file, built.pos, built.row, built.stream, built.sort_key) == \
        ("mysql-bin.000042", 1234, 5, "log", (1, 42, 1234, 5))
    assert position_to_header(built) == position_to_header(made) and str(built) == str(made)
    assert pickle.loads(pickle.dumps(built)) == made and dataclasses.replace(built, row=6) == LogPosition(
        "mysql-bin.000042", 1234, 6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.pos = 1  # type: ignore[misc]  # frozen: the assignment is what the test checks


@pytest.mark.parametrize("op,before,after", [
    (Op.INSERT, None, {"id": 1, "v": "a"}), (Op.UPDATE, {"id": 1, "v": "a"}, {"id": 1, "v": "b"}),
    (Op.DELETE, {"id": 1, "v": "b"}, None),
])
def test_a_built_row_change_is_a_change(op: Op, before: dict | None, after: dict | None) -> None:
    schema = TableSchema("d", "t", (Column("id", "int", "int"), Column("v", "varchar", "varchar(3)")),
                         primary_key=("id",))
    pos = LogPosition("mysql-bin.000001", 99, 2)
    built = new_row_change(op, schema, new_log_position("mysql-bin.000001", 99, 2), before, after, 1.5, "g-1", 7)
    made = Change(op, schema, pos, before, after, 1.5, "g-1", 7)
    assert type(built) is Change and built == made and repr(built) == repr(made)
    assert [getattr(built, f.name) for f in dataclasses.fields(Change)] == \
        [op, schema, pos, before, after, 1.5, "g-1", 7, None, None, ()]
    assert built.key() == (1,)
    assert pickle.loads(pickle.dumps(built)) == made
    assert dataclasses.replace(built, op=Op.DELETE, after=None) == dataclasses.replace(made, op=Op.DELETE, after=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.op = Op.DELETE  # type: ignore[misc]  # frozen: the assignment is what the test checks

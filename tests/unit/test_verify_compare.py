"""The comparison of `obsync verify` (`obsync.app.verify.compare`): per-key replay and multisets, on SQLite."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from obsync.app.verify.compare import TopicState, Where, canonical
from obsync.formats.decoding import Decoded

T = ("shop", "orders")


def at(offset: int, part: int = 0, order: str = "") -> Where:
    return Where(part, offset, None, order)


def test_the_last_message_per_key_wins_deletes_remove_and_key_changes_move(tmp_path: Path) -> None:
    s = TopicState(tmp_path / "s.db", ["id"])
    s.apply(Decoded("insert", T, None, {"id": 1, "v": "a"}), at(0))
    s.apply(Decoded("insert", T, None, {"id": 2, "v": "b"}), at(1))
    s.apply(Decoded("update", T, {"id": 1, "v": "a"}, {"id": 1, "v": "a2"}), at(2))
    s.apply(Decoded("update", T, {"id": 2, "v": "b"}, {"id": 20, "v": "b"}), at(3))  # key change
    s.apply(Decoded("insert", T, None, {"id": 3, "v": "c"}), at(4))
    s.apply(Decoded("delete", T, {"id": 3, "v": "c"}, None), at(5))
    s.apply(Decoded("skip"), at(6))
    assert s.compare_keyed([{"id": 1, "v": "a2"}, {"id": 20, "v": "b"}, {"id": 4, "v": "d"}]) == 3
    s.finish_keyed()
    assert s.counts() == {"missing": 1, "extra": 0, "different": 0}
    (d,) = s.differences(10)
    assert (d.kind, d.key, d.source) == ("missing", {"id": 4}, {"id": 4, "v": "d"})
    s.close()
    assert not (tmp_path / "s.db").exists()


def test_differences_name_columns_both_values_and_the_last_message(tmp_path: Path) -> None:
    s = TopicState(tmp_path / "s.db", ["id"])
    s.apply(Decoded("insert", T, None, {"id": 1, "v": "a", "n": 1}), Where(2, 7, '["log","b.000001",4,0]', "1"))
    s.apply(Decoded("insert", T, None, {"id": 9, "v": "z", "n": 1}), at(8))
    s.compare_keyed([{"id": 1, "v": "b", "n": 1}])
    s.finish_keyed()
    diff, extra = s.differences(10)
    assert diff.kind == "different" and diff.columns == {"v": {"source": "b", "kafka": "a"}}
    assert (diff.partition, diff.offset, diff.position) == (2, 7, ["log", "b.000001", 4, 0])
    assert (extra.kind, extra.key, extra.kafka) == ("extra", {"id": 9}, {"id": 9, "v": "z", "n": 1})
    assert s.differences(1) == [diff]  # listed up to `keep`; counted in full
    assert s.counts() == {"missing": 0, "extra": 1, "different": 1}


def test_differences_show_images_and_columns_in_the_tables_column_order(tmp_path: Path) -> None:
    s = TopicState(tmp_path / "s.db", ["id"])
    s.apply(Decoded("insert", T, None, {"id": 1, "zeta": "a", "alpha": 1, "extra": 0}), at(0))
    s.compare_keyed([{"id": 1, "zeta": "b", "alpha": 2}])
    s.finish_keyed()
    (d,) = s.differences(10, ["id", "zeta", "alpha"])
    assert list(d.columns) == ["zeta", "alpha", "extra"]  # the table's order, then what only one side has
    (d,) = s.differences(10)
    assert list(d.columns) == ["alpha", "zeta", "extra"]  # no order given: by name, then what Kafka alone has


def test_across_partitions_the_later_position_wins_and_truncate_empties(tmp_path: Path) -> None:
    s = TopicState(tmp_path / "s.db", ["id"])
    s.apply(Decoded("insert", T, None, {"id": 1, "v": "new"}), at(0, part=1, order="1|2"))
    s.apply(Decoded("insert", T, None, {"id": 1, "v": "old"}), at(0, part=0, order="1|1"))
    s.compare_keyed([{"id": 1, "v": "new"}])
    s.finish_keyed()
    assert s.difference_count() == 0
    s.apply(Decoded("truncate", T), at(1, part=1, order="1|3"))
    s.compare_keyed([{"id": 1, "v": "new"}])
    assert s.counts()["missing"] == 1


def test_a_table_without_a_key_is_a_multiset(tmp_path: Path) -> None:
    s = TopicState(tmp_path / "s.db", [])
    for i, row in enumerate([{"a": 1}, {"a": 1}, {"a": 2}]):
        s.apply(Decoded("insert", T, None, row), at(i))
    s.apply(Decoded("update", T, {"a": 2}, {"a": 3}), at(3))
    s.count_source([{"a": 1}, {"a": 3}, {"a": 3}])
    s.finish_keyless()
    assert s.counts() == {"missing": 1, "extra": 1, "different": 0}
    got = sorted((d.kind, d.key["a"], d.count) for d in s.differences(10))
    assert got == [("extra", 1, 1), ("missing", 3, 1)]
    s.apply(Decoded("insert", T, None, {"a": 3}), at(4))  # the change in flight arrives: re-check
    s.apply(Decoded("delete", T, {"a": 1}, None), at(5))
    s.finish_keyless()
    assert s.difference_count() == 0


def test_recheck_drops_differences_the_new_messages_resolve(tmp_path: Path) -> None:
    s = TopicState(tmp_path / "s.db", ["id"])
    s.apply(Decoded("insert", T, None, {"id": 1, "v": "a"}), at(0))
    s.apply(Decoded("insert", T, None, {"id": 2, "v": "x"}), at(1))
    s.compare_keyed([{"id": 1, "v": "b"}])
    s.finish_keyed()
    assert s.difference_count() == 2
    s.apply(Decoded("update", T, {"id": 1, "v": "a"}, {"id": 1, "v": "b"}), at(2))
    s.apply(Decoded("delete", T, {"id": 2, "v": "x"}, None), at(3))
    assert s.recheck_keyed() == 0


def test_canonical_values_tell_types_apart() -> None:
    assert canonical(Decimal("1.50")) != canonical("1.50") and canonical(b"\x00") == {"$b": "AA=="}
    assert canonical(1.0) != canonical(1)

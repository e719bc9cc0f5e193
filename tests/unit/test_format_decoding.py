"""Every format reads back what it writes (`obsync.formats.decoding`): inserts, updates, deletes, key changes,
snapshot rows, DDL and heartbeats, with the table each message names."""

from __future__ import annotations

from typing import Any

import pytest

from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.formats.base import EncoderContext
from obsync.formats.decoding import Decoded, Decoder
from obsync.formats.registry import decoder_for, registered_formats
from tests.helpers.format_rows import GTID, ORDERS, POS, ROW1, ROW2

FORMATS = registered_formats()


def _decoder(fmt: str) -> Decoder:
    return decoder_for(fmt, EncoderContext("shop-to-kafka", "MYSQL"), {})


def _round_trip(d: Decoder, change: Change) -> list[Decoded]:
    out: list[Decoded] = []
    for r in d.encoder.encode(change, "orders_topic"):
        if d.learn(r.topic, r.key, r.value):
            continue
        out += [x for x in d.decode(r.topic, r.key, r.value) if x.op != "skip"]
    return out


def _change(op: Op, before: dict[str, Any] | None, after: dict[str, Any] | None) -> Change:
    return Change(op, ORDERS, POS, before=before, after=after, commit_time=1700000000.0, txn=GTID)


@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_row_decodes_to_its_source_image(fmt: str) -> None:
    d = _decoder(fmt)
    change = Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1)
    got = _round_trip(d, change)
    assert [(x.op, x.table, x.before) for x in got] == [("insert", ("shop", "orders"), None)]
    assert got[0].after == d.source_image(change, "orders_topic")
    assert set(got[0].after) == {"id", "name", "amount", "paid_at"}  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_update_ends_at_the_after_image_and_delete_removes_the_row(fmt: str) -> None:
    d = _decoder(fmt)
    image1 = d.source_image(Change(Op.READ, ORDERS, SnapshotPosition("c", (42,)), after=ROW1), "t")
    image2 = d.source_image(Change(Op.READ, ORDERS, SnapshotPosition("c", (42,)), after=ROW2), "t")
    assert image1 != image2
    update = _round_trip(d, _change(Op.UPDATE, ROW1, ROW2))
    # the last image added is the new row; what is removed first is the old one
    added = [x.after for x in update if x.after is not None]
    assert added[-1] == image2
    removed = [x.before for x in update if x.before is not None and x.op in ("delete", "update")]
    if fmt != "debezium_smt":  # the flattened update carries no before image
        assert removed and removed[0]["id"] in (42, "42")
    delete = _round_trip(d, _change(Op.DELETE, ROW1, None))
    if fmt == "debezium_smt":
        assert [x.op for x in delete] == ["delete", "delete"]  # the rewritten delete, then its tombstone
    else:
        assert delete[0].op == "delete" and delete[0].after is None
        assert delete[0].before is not None and delete[0].before["id"] in (42, "42")
        assert delete[0].table == ("shop", "orders")
    assert all(x.op == "delete" for x in delete)


@pytest.mark.parametrize("fmt", FORMATS)
def test_key_change_removes_the_old_key_and_adds_the_new(fmt: str) -> None:
    d = _decoder(fmt)
    moved = {**ROW1, "id": 43}
    got = _round_trip(d, _change(Op.UPDATE, ROW1, moved))
    removed_ids = {str(x.before["id"]) for x in got if x.op == "delete" and x.before}
    added_ids = [str(x.after["id"]) for x in got if x.after]
    if fmt not in ("debezium_smt",):
        assert "42" in removed_ids or any(x.op == "update" and str(x.before["id"]) == "42" for x in got if x.before)
    assert added_ids[-1] == "43"


@pytest.mark.parametrize("fmt", FORMATS)
def test_ddl_and_heartbeat_are_skipped(fmt: str) -> None:
    d = _decoder(fmt)
    ddl = Change(Op.DDL, ORDERS, POS, ddl="ALTER TABLE orders ADD COLUMN note TEXT", ddl_db="shop",
                 ddl_tables=(("shop", "orders"),), commit_time=1700000000.0)
    heartbeat = Change(Op.HEARTBEAT, None, LogPosition("mysql-bin.000042", 99), commit_time=1700000000.0)
    for change in (ddl, heartbeat):
        for r in d.encoder.encode(change, "orders_topic"):
            if d.learn(r.topic, r.key, r.value):
                continue
            assert {x.op for x in d.decode(r.topic, r.key, r.value)} <= {"skip"}


def test_unknown_bytes_are_a_decode_error() -> None:
    from obsync.formats.decoding import DecodeError

    for fmt in FORMATS:
        with pytest.raises(DecodeError):
            _decoder(fmt).decode("t", None, b"\x07not ours")

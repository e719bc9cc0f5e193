"""Partition choice, key changes and DDL placement, without an engine or a broker."""

from __future__ import annotations

from connectors.kafka.partitioner import murmur2, partition_for
from connectors.kafka.records import OutRecord, part_name
from formats.base import Encoder, KafkaRecord
from obsync.changes import Change, Op, StreamDone
from obsync.positions import LogPosition, SnapshotPosition, position_from_header, position_to_header
from obsync.routing import Router, TopicLayout
from obsync.schema import Column, TableSchema

T = TableSchema("shop", "orders", (Column("id", "int", "int(11)"), Column("v", "varchar", "varchar(9)")), ("id",))


class NameEncoder(Encoder):
    """Encodes a change as its op and row id: enough to see what went where."""

    name = "test"

    def encode(self, change, topic):
        row = change.after if change.after is not None else change.before
        ident = row["id"] if row else change.ddl
        return [KafkaRecord(topic, str(ident).encode(), f"{change.op.value}:{ident}".encode())]


def key_bytes(change):
    k = change.key()
    return None if k is None else str(list(k)).encode()


def router(partitioning="hash", partitions=3):
    layout = TopicLayout({("shop", "orders"): "orders"}, {"orders": partitions})
    return Router(NameEncoder(), layout, partitioning, key_bytes, send_ddl=True)


def test_murmur2_matches_kafka_reference_values():
    # From Kafka's UtilsTest.testMurmur2
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"") == 275646681


def test_same_key_same_partition_and_order_kept():
    r = router()
    batch = [Change(Op.INSERT, T, LogPosition("b.000001", 10 + i, 0), after={"id": i % 4, "v": str(i)})
             for i in range(40)]
    routed = r.route(batch)
    seen: dict[int, str] = {}
    for part, recs in routed:
        for rec in recs:
            ident = int(rec.key)
            assert seen.setdefault(ident, part) == part
            assert part == part_name("orders", partition_for(str([ident]).encode(), 3))
        positions = [rec.position.pos for rec in recs]
        assert positions == sorted(positions)


def test_key_change_becomes_delete_then_insert_in_their_partitions():
    r = router(partitions=8)
    ch = Change(Op.UPDATE, T, LogPosition("b.000001", 99, 2), before={"id": 1, "v": "a"}, after={"id": 2, "v": "a"})
    routed = dict(r.route([ch]))
    recs = [rec for recs in routed.values() for rec in recs]
    assert sorted((rec.value, rec.seq) for rec in recs) == [(b"delete:1", 0), (b"insert:2", 1)]
    for part, rs in routed.items():
        for rec in rs:
            assert part == part_name("orders", partition_for(str([int(rec.key)]).encode(), 8))


def test_update_keeping_key_stays_an_update():
    ch = Change(Op.UPDATE, T, LogPosition("b.000001", 99, 0), before={"id": 1, "v": "a"}, after={"id": 1, "v": "b"})
    [(part, [rec])] = router().route([ch])
    assert rec.value == b"update:1"


def test_stream_done_reaches_every_partition():
    routed = dict(router(partitions=4).route([StreamDone("snapshot:shop.orders/0001")]))
    assert sorted(routed) == [part_name("orders", p) for p in range(4)]


def test_ddl_placement_per_rule():
    ddl = Change(Op.DDL, T, LogPosition("b.000001", 5, 0), ddl="ALTER TABLE orders ADD c int", ddl_db="shop",
                 ddl_tables=(("shop", "orders"),))
    assert sorted(dict(router("hash", 3).route([ddl]))) == [part_name("orders", p) for p in range(3)]
    table_part = partition_for(b"shop.orders", 3)
    assert sorted(dict(router("table", 3).route([ddl]))) == [part_name("orders", table_part)]
    assert sorted(dict(router("one", 3).route([ddl]))) == [part_name("orders", 0)]
    unknown = Change(Op.DDL, None, LogPosition("b.000001", 6, 0), ddl="DROP INDEX i ON x", ddl_db="shop")
    assert sorted(dict(router("table", 3).route([unknown]))) == [part_name("orders", p) for p in range(3)]


def test_positions_round_trip_through_headers_and_order():
    snap = SnapshotPosition("shop.orders/0001", (5,))
    log = LogPosition("b.000002", 4, 0)
    assert position_from_header(position_to_header(snap)) == snap
    assert snap.sort_key < log.sort_key  # every snapshot row sorts before every log change
    assert LogPosition("b.000009", 900, 0).sort_key < LogPosition("b.000010", 4, 0).sort_key
    assert isinstance(OutRecord("t", 0, None, None, log), OutRecord)

"""Partition choice, key changes and DDL placement, without an engine or a broker."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from obsync.connectors.kafka.partitioner import murmur2, partition_for
from obsync.connectors.kafka.records import DEFAULT_LANES, OutRecord, lane_names, lane_of
from obsync.core.changes import Change, Op, StreamDone
from obsync.core.positions import LogPosition, SnapshotPosition, position_from_header, position_to_header
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord
from obsync.formats.default import DefaultEncoder
from obsync.formats.default_extend_column_type import DefaultExtendColumnTypeEncoder
from obsync.formats.registry import encoder_for
from obsync.steps.partitioning import partition_key
from obsync.steps.routing import Router, TopicLayout, split_key_change
from obsync.task.format_names import FORMAT_NAMES

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
    seen: dict[int, int] = {}
    for lane, recs in routed:
        for rec in recs:
            ident = int(rec.key)
            assert seen.setdefault(ident, rec.partition) == rec.partition
            assert rec.partition == partition_for(str([ident]).encode(), 3)
            assert lane == lane_of("orders", rec.partition, DEFAULT_LANES)
        positions = [rec.position.pos for rec in recs]
        assert positions == sorted(positions)
    assert len(seen) == 4


def test_key_change_becomes_delete_then_insert_in_their_partitions():
    r = router(partitions=8)
    ch = Change(Op.UPDATE, T, LogPosition("b.000001", 99, 2), before={"id": 1, "v": "a"}, after={"id": 2, "v": "a"})
    routed = dict(r.route([ch]))
    recs = [rec for recs in routed.values() for rec in recs]
    assert sorted((rec.value, rec.seq) for rec in recs) == [(b"delete:1", 0), (b"insert:2", 1)]
    for lane, rs in routed.items():
        for rec in rs:
            assert rec.partition == partition_for(str([int(rec.key)]).encode(), 8)
            assert lane == lane_of("orders", rec.partition, DEFAULT_LANES)


def test_update_keeping_key_stays_an_update():
    ch = Change(Op.UPDATE, T, LogPosition("b.000001", 99, 0), before={"id": 1, "v": "a"}, after={"id": 1, "v": "b"})
    [(part, [rec])] = router().route([ch])
    assert rec.value == b"update:1"


def test_stream_done_reaches_every_lane():
    routed = dict(router(partitions=4).route([StreamDone("snapshot:shop.orders/0001")]))
    assert sorted(routed) == lane_names(DEFAULT_LANES)




def test_positions_round_trip_through_headers_and_order():
    snap = SnapshotPosition("shop.orders/0001", (5,))
    log = LogPosition("b.000002", 4, 0)
    assert position_from_header(position_to_header(snap)) == snap
    assert snap.sort_key < log.sort_key  # every snapshot row sorts before every log change
    assert LogPosition("b.000009", 900, 0).sort_key < LogPosition("b.000010", 4, 0).sort_key
    assert isinstance(OutRecord("t", 0, None, None, log), OutRecord)


# ------------------------------------------------------------------------- rules, keys, DDL placement

ITEMS = TableSchema("shop", "items", (Column("id", "int", "int(11)"),), ("id",))
NAMES = TableSchema("shop", "names", (Column("name", "varchar", "varchar(9)"), Column("n", "int", "int(11)")),
                    ("name",))
SHARDED = TableSchema("shop", "orders", (Column("id", "int", "int(11)"), Column("cust", "int", "int(11)"),
                                         Column("v", "varchar", "varchar(9)")), ("id",), sharding_columns=("cust",))
LOGS = TableSchema("shop", "logs", (Column("msg", "varchar", "varchar(9)"), Column("n", "int", "int(11)")))
N = {"orders": 4, "items": 3, "logs": 5, "names": 3, "schema-changes": 2}


class SchemaTopicEncoder(DefaultEncoder):
    """The Default format, plus every DDL once more in a topic of its own (as Debezium's schema topic)."""

    def encode(self, change, topic):
        records = super().encode(change, topic)
        if change.op is Op.DDL:
            records.append(KafkaRecord("schema-changes", b"shop", change.ddl.encode()))
        return records

    def extra_topics(self):
        return ["schema-changes"]


def real_router(partitioning="hash", fixed_partition=0, encoder=None):
    layout = TopicLayout({("shop", "orders"): "orders", ("shop", "items"): "items", ("shop", "logs"): "logs"}, N)
    return Router(encoder or DefaultEncoder("t"), layout, partitioning, partition_key,
                  fixed_partition=fixed_partition, send_ddl=True)


def placed(routed) -> list[tuple[str, int, str, str | None]]:
    """(topic, partition, recordType, key) of every record, in routing order per part."""
    return [(r.topic, r.partition, json.loads(r.value)["recordType"], r.key and r.key.decode())
            for _, recs in routed for r in recs if r.topic != "schema-changes"]


def upd(table, n, before, after):
    return Change(Op.UPDATE, table, LogPosition("b.000001", n, 0), before=before, after=after, txn=f"x{n}")


def test_hash_rule_hashes_the_sharding_columns():
    batch = [Change(Op.INSERT, SHARDED, LogPosition("b.000001", 10 + i, 0), after={"id": i, "cust": i % 3, "v": ""})
             for i in range(12)]
    for _topic, p, _kind, key in placed(real_router().route(batch)):
        assert key in ("[0]", "[1]", "[2]") and p == partition_for(key.encode(), 4)


def test_an_update_of_the_sharding_columns_is_a_delete_then_an_insert_in_their_partitions():
    ch = upd(SHARDED, 5, {"id": 1, "cust": 1, "v": "a"}, {"id": 1, "cust": 2, "v": "a"})
    recs = sorted((r for _, rs in real_router().route([ch]) for r in rs), key=lambda r: r.seq)
    assert [(json.loads(r.value)["recordType"], r.key, r.partition, r.seq) for r in recs] == [
        ("DELETE", b"[1]", partition_for(b"[1]", 4), 0), ("INSERT", b"[2]", partition_for(b"[2]", 4), 1)]
    assert [json.loads(r.value)["allMetaData"]["record_primary_value"] for r in recs] == ["1", "1"]


def test_an_update_of_the_primary_key_alone_is_split_too_and_stays_in_its_partition():
    ch = upd(SHARDED, 5, {"id": 1, "cust": 1, "v": "a"}, {"id": 9, "cust": 1, "v": "a"})
    assert [(kind, key, p) for _, p, kind, key in placed(real_router().route([ch]))] == [
        ("DELETE", "[1]", partition_for(b"[1]", 4)), ("INSERT", "[1]", partition_for(b"[1]", 4))]
    keep = upd(SHARDED, 6, {"id": 1, "cust": 1, "v": "a"}, {"id": 1, "cust": 1, "v": "b"})
    assert [kind for *_, kind, _ in placed(real_router().route([keep]))] == ["UPDATE"]


def test_split_key_change_looks_at_identity_and_message_key():
    assert len(split_key_change(upd(SHARDED, 1, {"id": 1, "cust": 1, "v": "a"}, {"id": 1, "cust": 1, "v": "b"}))) == 1
    assert len(split_key_change(upd(SHARDED, 1, {"id": 1, "cust": 1, "v": "a"}, {"id": 1, "cust": 3, "v": "a"}))) == 2
    assert len(split_key_change(upd(LOGS, 1, {"msg": "a", "n": 1}, {"msg": "b", "n": 1}))) == 1
    assert len(split_key_change(upd(LOGS, 1, {"msg": "a", "n": 1}, {"msg": "b", "n": 1}), whole_row=True)) == 2


def whole_row_partition(row) -> int:
    return partition_for(json.dumps(row, sort_keys=True, ensure_ascii=False).encode(), N["logs"])


def test_hash_rule_without_a_key_hashes_the_whole_row_and_splits_updates_by_image():
    a, b = {"msg": "a", "n": 1}, {"msg": "b", "n": 1}
    batch = [Change(Op.INSERT, LOGS, LogPosition("b.000001", 1, 0), after=a), upd(LOGS, 2, a, b),
             Change(Op.DELETE, LOGS, LogPosition("b.000001", 3, 0), before=b)]
    got = sorted((r.position.pos, r.seq, r.partition, json.loads(r.value)["recordType"], r.key)
                 for _, rs in real_router("hash").route(batch) for r in rs)
    pa, pb = whole_row_partition(a), whole_row_partition(b)
    assert got == [(1, 0, pa, "INSERT", None), (2, 0, pa, "DELETE", None), (2, 1, pb, "INSERT", None),
                   (3, 0, pb, "DELETE", None)]
    # every image's changes are in that image's partition; under Table and One an update stays an update
    for rule in ("table", "one"):
        assert [k for *_, k, _ in placed(real_router(rule).route(batch))] == ["INSERT", "UPDATE", "DELETE"]


def test_table_rule_puts_a_whole_table_in_the_partition_of_its_name():
    batch = [Change(Op.INSERT, SHARDED, LogPosition("b.000001", i, 0), after={"id": i, "cust": i, "v": ""})
             for i in range(1, 20)] + [Change(Op.INSERT, ITEMS, LogPosition("b.000001", 30, 0), after={"id": 1})]
    got = {(topic, p) for topic, p, *_ in placed(real_router("table").route(batch))}
    assert got == {("orders", partition_for(b"shop.orders", 4)), ("items", partition_for(b"shop.items", 3))}


def test_one_rule_puts_everything_in_the_fixed_partition_in_commit_order():
    batch = [Change(Op.INSERT, SHARDED if i % 2 else ITEMS, LogPosition("b.000001", i, 0),
                    after={"id": i, "cust": i, "v": ""} if i % 2 else {"id": i}) for i in range(1, 30)]
    batch.append(upd(SHARDED, 40, {"id": 1, "cust": 1, "v": ""}, {"id": 2, "cust": 5, "v": ""}))
    routed = dict(real_router("one", fixed_partition=2).route(batch))
    assert {(r.topic, r.partition) for recs in routed.values() for r in recs} == {("items", 2), ("orders", 2)}
    for recs in routed.values():
        order = [(r.position.pos, r.seq) for r in recs]
        assert order == sorted(order)


def test_fixed_partition_beyond_a_topic_is_refused():
    with pytest.raises(ValueError, match="fixed partition 3 is not a partition of topic items"):
        real_router("one", fixed_partition=3)
    real_router("hash", fixed_partition=3)


def ddl(statement, tables, table=None, n=5):
    return Change(Op.DDL, table, LogPosition("b.000001", n, 0), ddl=statement, ddl_db="shop",
                  ddl_tables=tables, txn=f"g{n}", commit_time=1.0)


ONE_TABLE = ddl("ALTER TABLE orders ADD c int", (("shop", "orders"),), SHARDED)
SEVERAL = ddl("RENAME TABLE orders TO o2, items TO i2, other TO o3",  # `other` is not synced by the task
              (("shop", "orders"), ("shop", "o2"), ("shop", "items"), ("shop", "i2"), ("shop", "other"),
               ("shop", "o3")))
UNKNOWN = ddl("DROP INDEX i", ())


def targets(rule, change, fixed=0):
    return sorted({(topic, p) for topic, p, *_ in placed(real_router(rule, fixed).route([change]))})


def every(topic):
    return [(topic, p) for p in range(N[topic])]


def test_ddl_placement_under_hash():
    assert targets("hash", ONE_TABLE) == every("orders")
    assert targets("hash", SEVERAL) == every("items") + every("orders")
    assert targets("hash", UNKNOWN) == every("items") + every("logs") + every("orders")


def test_ddl_placement_under_table():
    orders_p, items_p = partition_for(b"shop.orders", 4), partition_for(b"shop.items", 3)
    assert targets("table", ONE_TABLE) == [("orders", orders_p)]
    assert targets("table", SEVERAL) == [("items", items_p), ("orders", orders_p)]
    assert targets("table", UNKNOWN) == every("items") + every("logs") + every("orders")


def test_ddl_placement_under_one():
    assert targets("one", ONE_TABLE, 1) == [("orders", 1)]
    assert targets("one", SEVERAL, 1) == [("items", 1), ("orders", 1)]
    assert targets("one", UNKNOWN, 1) == [("items", 1), ("logs", 1), ("orders", 1)]


def test_table_rule_ddl_on_two_tables_sharing_a_topic_goes_to_both_name_partitions():
    layout = TopicLayout({("shop", "orders"): "all", ("shop", "items"): "all"}, {"all": 16})
    r = Router(DefaultEncoder("t"), layout, "table", partition_key, send_ddl=True)
    got = sorted(p for _, recs in r.route([SEVERAL]) for p in [recs[0].partition])
    assert got == sorted({partition_for(b"shop.orders", 16), partition_for(b"shop.items", 16)})
    assert len(got) == 2


def test_ddl_naming_only_tables_outside_the_task_is_not_delivered():
    assert real_router().route([ddl("RENAME TABLE a TO b", (("shop", "a"), ("shop", "b")))]) == []


def test_ddl_reaches_a_formats_own_topic_once_and_table_topics_per_rule():
    r = real_router("hash", encoder=SchemaTopicEncoder("t"))
    routed = r.route([UNKNOWN])
    own = [rec for _, recs in routed for rec in recs if rec.topic == "schema-changes"]
    assert len(own) == 1 and own[0].value == b"DROP INDEX i"
    assert {rec.topic for _, recs in routed for rec in recs} == {"orders", "items", "logs", "schema-changes"}
    seqs = [rec.seq for _, recs in routed for rec in recs]
    assert len(seqs) == len(set(seqs)) == 4 + 3 + 5 + 1  # (position, seq) unique


def test_ddl_is_not_sent_unless_asked():
    layout = TopicLayout({("shop", "orders"): "orders"}, {"orders": 4})
    assert Router(DefaultEncoder("t"), layout, "hash", partition_key).route([ONE_TABLE]) == []


# ------------------------------------------------------------------------- the partition key is the router's

DEC = TableSchema("shop", "prices", (Column("sku", "varchar", "varchar(9)"), Column("p", "decimal", "decimal(6,2)",
                                     precision=6, scale=2), Column("n", "int", "int(11)")), ("sku", "p"))
UNIQUE = TableSchema("shop", "u", (Column("a", "int", "int(11)"), Column("b", "varchar", "varchar(9)")),
                     unique_keys=(("b",),))
KEY_SHAPES = [
    Change(Op.INSERT, T, LogPosition("b.000001", 1, 0), after={"id": 7, "v": "x"}),
    Change(Op.DELETE, SHARDED, LogPosition("b.000001", 2, 0), before={"id": 1, "cust": None, "v": "a"}),
    upd(SHARDED, 3, {"id": 1, "cust": 1, "v": "a"}, {"id": 1, "cust": 2, "v": "a"}),
    Change(Op.INSERT, DEC, LogPosition("b.000001", 4, 0), after={"sku": "é\"1", "p": Decimal("1.5"), "n": 2}),
    upd(UNIQUE, 5, {"a": 1, "b": "k"}, {"a": 2, "b": "k"}),
    Change(Op.READ, LOGS, SnapshotPosition("shop.logs/0000", (1,)), after={"msg": "m", "n": 1}),
]


@pytest.mark.parametrize("encoder", [DefaultEncoder("t"), DefaultExtendColumnTypeEncoder("t")])
def test_an_encoder_declaring_its_key_the_partition_key_writes_exactly_those_bytes(encoder):
    assert encoder.key_is_partition_key
    for change in KEY_SHAPES:
        for part in split_key_change(change, whole_row=True):
            records = encoder.encode(part, "t")
            assert records and [r.key for r in records] == [partition_key(part)] * len(records), part
    assert partition_key(KEY_SHAPES[3]) == '["é\\"1","1.50"]'.encode()


@pytest.mark.parametrize("fmt", sorted(set(FORMAT_NAMES) - {"default"}))
def test_every_format_puts_every_change_in_the_partition_the_default_format_does(fmt):
    options = {"schema_registry": {}} if fmt == "avro" else {}
    tables = {("shop", "orders"): "orders", ("shop", "items"): "items", ("shop", "logs"): "logs",
              ("shop", "prices"): "orders", ("shop", "u"): "items"}
    batch = [*KEY_SHAPES[1:], *(Change(Op.INSERT, SHARDED, LogPosition("b.000002", i, 0),
                                       after={"id": i, "cust": i * 7, "v": str(i)}) for i in range(40))]
    # one integer key (the router's shortcut for it), runs of one table interleaved with others', odd values
    for i, k in enumerate([0, -1, 2**31 - 2, -(2**31), 7, 12345, 99]):
        batch.append(Change(Op.INSERT, T, LogPosition("b.000003", i, 0), after={"id": k, "v": "x"}))
        batch.append(Change(Op.DELETE, T, LogPosition("b.000003", i, 1), before={"id": k + 1, "v": "x"}))
        if i % 3 == 0:
            batch.append(Change(Op.INSERT, DEC, LogPosition("b.000003", i, 2),
                                after={"sku": str(k), "p": Decimal("2.50"), "n": k}))

    def partitions(encoder):
        """The partitions each change's records go to, change by change (an update of the key in its two parts)."""
        router = Router(encoder, TopicLayout(tables, {**N, **{t: 2 for t in encoder.extra_topics()}}), "hash")
        return [{r.partition for _, rs in router.route([part]) for r in rs if r.topic in N}
                for change in batch for part in split_key_change(change, whole_row=True)]

    want = partitions(DefaultEncoder("t"))
    assert len(want) == len(batch) + 1 and all(len(p) == 1 for p in want)  # one update of the key: two parts
    assert len({p for ps in want for p in ps}) > 1
    assert partitions(encoder_for(fmt, EncoderContext("t", "MYSQL"), options)) == want


def test_partition_for_is_kafkas_partitioner_for_any_key():
    # `partition_for` (the compiled `_murmur2` module, built by `pip install`) and librdkafka's murmur2 through
    # ctypes (its fallback) agree with the Python reference on keys of every length up to 3 words past a
    # multiple of 4, with NUL and high bytes, and with the Kafka vectors above
    import ctypes
    import random

    from obsync.connectors.kafka import partitioner

    assert partitioner.partition_for is partitioner.compiled_partition_for is not None  # built, and in use
    rd = partitioner.librdkafka_partitioner()
    assert rd is not None
    rng = random.Random(15)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(0, 70) for _ in range(20)]
    keys += [b"\x00", b"\x00\x00\x00\x00\x00", b"21", b"foobar", b"[42]", '["名字",7]'.encode(), b"\xff" * 1000]
    for key in keys:
        for n in (1, 2, 3, 7, 16, 1000, 2**31 - 1):
            want = (murmur2(key) & 0x7FFFFFFF) % n
            assert partition_for(key, n) == partitioner.python_partition_for(key, n) == want, (key, n)
            assert rd(None, key, ctypes.c_size_t(len(key)), n, None, None) == want, (key, n)


def test_compiled_partition_for_names_a_bad_argument():
    from obsync.connectors.kafka import partitioner

    fn = partitioner.compiled_partition_for
    assert fn is not None
    with pytest.raises(TypeError, match="the key must be bytes, not str"):
        fn("[42]", 3)
    with pytest.raises(ValueError, match="partition count must be from 1 to 2147483647, not 0"):
        fn(b"[42]", 0)
    with pytest.raises(ValueError, match="not 2147483648"):
        fn(b"[42]", 2**31)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        fn(b"[42]")  # type: ignore[call-arg]


# ------------------------------------------------------------------------- the log's lanes, encoded by their workers

def mixed_log_batch() -> list:
    """Every kind of log item: inserts, updates keeping and changing the key (and the sharding key), deletes, a
    table without a key, DDL, a heartbeat; positions rising."""
    items: list = []
    for i in range(60):
        pos = LogPosition("b.000003", 100 + 10 * i, 0)
        kind = i % 6
        if kind == 0:
            items.append(Change(Op.INSERT, SHARDED, pos, after={"id": i, "cust": i % 7, "v": "é" * (i % 3)},
                                commit_time=5.0, txn=f"t{i}"))
        elif kind == 1:
            items.append(upd(SHARDED, pos.pos, {"id": i - 1, "cust": (i - 1) % 7, "v": "a"},
                             {"id": i - 1, "cust": (i - 1) % 7, "v": "b"}))
        elif kind == 2:
            items.append(upd(SHARDED, pos.pos, {"id": i, "cust": 1, "v": "a"}, {"id": i, "cust": 2 + i % 5, "v": "a"}))
        elif kind == 3:
            items.append(Change(Op.DELETE, ITEMS, pos, before={"id": i}, commit_time=5.0, txn=f"t{i}"))
        elif kind == 4:
            items.append(upd(LOGS, pos.pos, {"msg": f"m{i}", "n": i}, {"msg": f"m{i}", "n": i + 1}))
        else:
            items.append(Change(Op.INSERT, ITEMS, pos, after={"id": i}, commit_time=5.0, txn=f"t{i}"))
    items = [replace(c, commit_time=5.0) for c in items]  # a processing time would differ between encodings
    # a table keyed by text, and rows a backfill reads into the log's stream (at snapshot positions)
    items += [Change(Op.INSERT, NAMES, LogPosition("b.000003", 700 + i, i % 2), after={"name": f"n{i}", "n": i},
                     commit_time=5.0, txn="t70") for i in range(8)]
    items += [Change(Op.INSERT, ITEMS, SnapshotPosition("shop.items/0001", (1000 + i,)), after={"id": 1000 + i},
                     commit_time=5.0) for i in range(4)]
    items.insert(20, ddl("ALTER TABLE orders ADD c int", (("shop", "orders"),), SHARDED, n=295))
    items.insert(40, Change(Op.HEARTBEAT, None, LogPosition("b.000003", 495, 1), commit_time=6.0))
    return items


def comparable(routed) -> dict[str, list]:
    """Each lane's records in order, values without processing-time fields (they differ between two encodings:
    canal's `ts`, dataworks' `systemTime`, shareplex's `posttime`, whose second may tick between the two, and a
    full-sync row's read time in Debezium's `source.ts_ms`, flattened as `__source_ts_ms`)."""
    def value(v):
        if v is None or v[:1] != b"{":
            return v
        return json.dumps(untimed(json.loads(v)), sort_keys=True)
    return {lane: [r if isinstance(r, StreamDone) else
                   (r.topic, r.partition, r.key, value(r.value), r.position, r.seq, r.commit_time, r.headers)
                   for r in recs] for lane, recs in routed if recs}


def untimed(doc):
    if isinstance(doc, dict):
        return {k: untimed(v) for k, v in doc.items()
                if not k.startswith("ts") and k not in ("systemTime", "posttime", "__source_ts_ms")}
    return [untimed(v) for v in doc] if isinstance(doc, list) else doc


def expanded(router: Router, batch, cross: bool = True) -> list[tuple[str, list]]:
    """`pick` then `expand`, each lane's work pickled on the way (as it crosses to another process) if `cross`."""
    import pickle

    out = []
    for lane, work in router.pick(batch):
        if cross:
            work = pickle.loads(pickle.dumps(work))
        assert work.lane == lane
        out.append((lane, router.expand(work)))
    return out


JSON_FORMATS = sorted(set(FORMAT_NAMES) - {"avro"})


@pytest.mark.parametrize("packs", [False, True])
@pytest.mark.parametrize("rule", ["hash", "table", "one"])
@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_lanes_picked_where_read_and_encoded_by_their_worker_give_exactly_the_records_of_route(fmt, rule, packs):
    def new_router() -> Router:  # a router and encoder each (an encoder may remember what it wrote)
        encoder = encoder_for(fmt, EncoderContext("t", "MYSQL"), {})
        tables = {("shop", "orders"): "orders", ("shop", "items"): "items", ("shop", "logs"): "logs",
                  ("shop", "names"): "names"}
        layout = TopicLayout(tables, {**N, **{t: 2 for t in encoder.extra_topics()}})
        return Router(encoder, layout, rule, fixed_partition=1, send_ddl=True)

    r, here = new_router(), new_router()
    r.packs = here.packs = packs
    assert r.spreads()
    batch = mixed_log_batch()
    want = comparable(new_router().route(batch))
    # crossing to another process, and expanded where picked (a lane of the reading process)
    assert comparable(expanded(r, batch)) == want
    assert comparable(expanded(here, batch, cross=False)) == want
    assert sum(len(v) for v in want.values()) >= len(batch)
    # the rows crossing are changes, one list per lane touched; only DDL, heartbeats and key changes as records
    work = [w for _, w in r.pick(batch)]
    assert len(work) == len({lane for lane, _ in r.pick(batch)})
    assert all((w.rows is not None) is packs for w in work)
    from obsync.steps.routing import Encode
    encoded_here = [it for w in work for it in w.items if not isinstance(it, Encode)]
    assert {it.position for it in encoded_here} <= {c.position for c in batch if c.op in (Op.DDL, Op.HEARTBEAT)} | {
        c.position for c in batch if len(split_key_change(c, rule == "hash")) > 1}
    # every other change picked once, each lane's in batch order (packed or not, the same changes)
    rows = [c for c in batch if c.op not in (Op.DDL, Op.HEARTBEAT) and len(split_key_change(c, r.whole_row)) == 1]
    at = [[rows.index(it.change) for it in w.items if isinstance(it, Encode)] for w in work]
    assert sorted(i for lane in at for i in lane) == list(range(len(rows)))
    assert all(lane == sorted(lane) for lane in at)


def full_sync_batches(chunk: str, table: TableSchema, rows: list[dict], keys: list[tuple]) -> list[list]:
    """A chunk's batches as the snapshot source gives them (`Op.READ` at snapshot positions): the first led by its
    table's CREATE TABLE (as Debezium's snapshot writes it), a second of rows only, then the chunk's `StreamDone`."""
    create = Change(Op.DDL, table, SnapshotPosition(chunk, ()), ddl=f"CREATE TABLE {table.name} (...)",
                    ddl_db=table.db, ddl_tables=((table.db, table.name),))
    reads = [Change(Op.READ, table, SnapshotPosition(chunk, k), after=row) for row, k in zip(rows, keys, strict=True)]
    half = len(reads) // 2
    return [[create, *reads[:half]], reads[half:], [StreamDone(SnapshotPosition(chunk, ()).stream)]]


@pytest.mark.parametrize("packs", [False, True])
@pytest.mark.parametrize("rule", ["hash", "table", "one"])
@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_full_sync_rows_picked_by_their_chunk_and_encoded_by_their_lane_give_exactly_the_records_of_route(
        fmt, rule, packs):
    """In a cluster a chunk's rows cross to their lanes' processes as their values and are encoded there: each
    lane's records, positions and seq are those `route` gives where the chunk is read, the chunk's `StreamDone`
    reaches every lane, and the log-only count of changes encoded by lanes hears none of them."""
    import pickle

    from obsync.core import packing

    def new_router() -> Router:
        encoder = encoder_for(fmt, EncoderContext("t", "MYSQL"), {})
        tables = {("shop", "orders"): "orders", ("shop", "items"): "items", ("shop", "logs"): "logs"}
        return Router(encoder, TopicLayout(tables, {**N, **{t: 2 for t in encoder.extra_topics()}}), rule,
                      fixed_partition=1, send_ddl=True)

    orders = full_sync_batches("shop.orders/0002", SHARDED,
                               [{"id": i, "cust": i % 5, "v": "é" * (i % 3) if i % 4 else None} for i in range(40)],
                               [(i,) for i in range(40)])
    logs = full_sync_batches("shop.logs/0000", LOGS, [{"msg": f"m{i}", "n": i} for i in range(16)],
                             [(1_700_000_000_000_001, i + 1) for i in range(16)])  # no key: (attempt, row number)
    heard: list = []
    r, want_router = new_router(), new_router()
    r.packs = packs
    r.on_encoded = lambda lane, n: heard.append((lane, n))
    assert r.spreads()
    for first, rest, done in (orders, logs):
        for batch in (first, rest, done):
            want = comparable(want_router.route(batch))
            assert comparable(expanded(r, batch)) == want
            assert sum(len(v) for v in want.values()) >= len(batch)
        assert sorted(lane for lane, _ in r.pick(done)) == lane_names(DEFAULT_LANES)  # the StreamDone: every lane
        assert all(recs == done for _, recs in expanded(r, done))
        picked = r.pick(rest)
        assert sum(len(w.items) for _, w in picked) == len(rest)
        if packs:  # the rows cross as their values, packed: no Change, record or encoded value
            assert sum(len(row) == 6 for _, w in picked for row in w.rows[2]) == len(rest)
            for _, work in picked:
                assert packing.pack(work.rows[2], (Op.READ,)) is not None
                blob = pickle.dumps(work)
                assert b"Change" not in blob and b"OutRecord" not in blob and b'"after"' not in blob
            assert sum(len(row) == 6 for _, w in r.pick(first) for row in w.rows[2]) == len(first) - 1
    assert heard == []


@pytest.mark.parametrize("fmt, options, crosses", [
    ("debezium", {}, True), ("debezium", {"schemas_enable": False}, False), ("debezium_smt", {}, False),
    ("debezium_flatten", {}, False), ("default", {}, False), ("canal", {}, False), ("avro", {}, False)])
def test_a_clusters_full_sync_sends_rows_to_their_lanes_only_where_records_outweigh_them(fmt, options, crosses):
    """Records carrying a Connect schema (4 KB for a 150-byte row) cost more to cross processes than the row
    does; other formats' rows are encoded where read (their encoding then follows the evenly spread chunks)."""
    encoder = encoder_for(fmt, EncoderContext("t", "MYSQL"), options)
    r = Router(encoder, TopicLayout({("shop", "orders"): "orders"}, {"orders": 3, **{
        t: 1 for t in encoder.extra_topics()}}), "hash")
    assert not r.crosses_rows()  # one process: nothing crosses processes
    r.packs = True
    assert r.crosses_rows() is crosses
    if crosses:
        row = Change(Op.READ, SHARDED, SnapshotPosition("shop.orders/0000", (1,)), after={"id": 1, "cust": 2, "v": "x"})
        [record] = encoder.encode(row, "orders")
        assert len(record.value) > 8 * len(json.dumps(row.after))


def test_a_full_sync_change_its_packed_form_would_not_keep_whole_crosses_as_itself():
    import pickle

    r = real_router()
    r.packs = True
    odd = [Change(Op.READ, ITEMS, SnapshotPosition("shop.items/0000", (1,)), after={"id": 1}, commit_time=2.5),
           Change(Op.READ, ITEMS, SnapshotPosition("shop.items/0000", (2,)), after={"id": 2}, txn="x"),
           Change(Op.INSERT, ITEMS, SnapshotPosition("shop.items/0000", (3,)), after={"id": 3})]
    plain = Change(Op.READ, ITEMS, SnapshotPosition("shop.items/0000", (4,)), after={"id": 4})
    got = [e.change for _, w in r.pick([*odd, plain]) for e in pickle.loads(pickle.dumps(w)).items]
    assert sorted(got, key=lambda c: c.position.key) == [*odd, plain]
    assert [len(row) for _, w in r.pick(odd) for row in w.rows[2]] == [1, 1, 1]  # each as (Encode,)


def test_stream_done_picked_reaches_every_lane_and_counts_are_heard():
    heard: list = []
    r = real_router()
    r.on_encoded = lambda lane, n: heard.append((lane, n))
    batch = [Change(Op.INSERT, ITEMS, LogPosition("b.000001", i, 0), after={"id": i}) for i in range(30)]
    # rows a backfill reads into the log's stream (a table picked up while running) are the log's too
    batch += [Change(Op.INSERT, ITEMS, SnapshotPosition("shop.items/0000", (i,)), None, {"id": i}, 5.0)
              for i in range(100, 110)]
    lanes = dict(r.pick([*batch, StreamDone("x")]))
    assert sorted(lanes) == lane_names(DEFAULT_LANES)
    for work in lanes.values():
        assert r.expand(work)[-1] == StreamDone("x")
    assert sum(n for _, n in heard) == 40 and len(heard) == len({lane_of("items", p, DEFAULT_LANES) for p in range(3)})


def test_formats_and_policies_whose_rows_may_reach_other_lanes_are_not_spread():
    from obsync.steps.large_messages import LargeMessages

    enc = DefaultEncoder("t")
    layout = TopicLayout({("shop", "orders"): "orders"}, {"orders": 4, "dl": 3})
    for policy, spreads in [("fail", True), ("key_only", True), ("truncate", True), ("dead_letter", False)]:
        lm = LargeMessages(policy, enc, lambda t: 10_000, "dl", lambda t: 3)
        assert Router(enc, layout, "hash", large=lm).spreads() is spreads
    avro = encoder_for("avro", EncoderContext("t", "MYSQL"), {})  # no registry: schemas go to the schema topic,
    assert not avro.row_records_elsewhere()  # foreseen where the log is read (the next test)
    assert Router(avro, TopicLayout({("shop", "orders"): "orders"}, {"orders": 4, **{
        t: 1 for t in avro.extra_topics()}}), "hash").spreads()


@pytest.mark.parametrize("packs", [False, True])
@pytest.mark.parametrize("rule", ["hash", "table", "one"])
def test_avro_without_a_registry_is_encoded_on_the_lanes_each_schema_written_where_the_log_is_read(rule, packs):
    """The first row change of each schema is encoded where the log is read, with the schema topic's records
    `route` gives it; the rest by their lanes' workers, in another process whose encoder wrote no schema: the
    records are exactly those of `route` (positions and seq included)."""
    import pickle

    from obsync.formats.avro.encoder import DEBEZIUM_OPTIONS, AvroEncoder
    from obsync.formats.debezium.config import parse_options
    from obsync.steps.routing import Encode

    def new_router() -> Router:
        encoder = AvroEncoder(parse_options("avro", "t", {}, DEBEZIUM_OPTIONS), None,
                              clock=lambda: 1_700_000_000_123_456_789)  # the same times in both encodings
        tables = {("shop", "orders"): "orders", ("shop", "items"): "items", ("shop", "logs"): "logs",
                  ("shop", "names"): "names"}
        r = Router(encoder, TopicLayout(tables, {**N, **{t: 2 for t in encoder.extra_topics()}}), rule,
                   fixed_partition=1, send_ddl=True)
        r.packs = packs
        return r

    wider = TableSchema("shop", "orders", (*SHARDED.columns, Column("c", "int", "int(11)")), ("id",),
                        sharding_columns=("cust",))  # the table after a DDL: a new schema mid-batch
    batch = [*mixed_log_batch(), *[Change(Op.INSERT, wider, LogPosition("b.000004", 10 + i, 0),
                                          after={"id": 500 + i, "cust": i, "v": "w", "c": i}, commit_time=5.0)
                                   for i in range(12)]]
    reader, lanes = new_router(), new_router()
    assert reader.spreads()
    want = route = new_router().route(batch)
    schema_topic = reader.encoder.schema_topic  # type: ignore[attr-defined]  # an AvroEncoder
    assert sum(r.topic == schema_topic for _, recs in route for r in recs) >= 6  # the batch brings schemas
    picked = reader.pick(batch)
    got = [(lane, lanes.expand(pickle.loads(pickle.dumps(work)))) for lane, work in picked]
    assert comparable(got) == comparable(want)
    # encoded where read: the rare kinds, and one change per schema (a table's first, and the wider orders' first)
    here = {it.position for _, w in picked for it in w.items if not isinstance(it, Encode)}
    rare = {c.position for c in batch if c.op in (Op.DDL, Op.HEARTBEAT) or len(split_key_change(c, rule == "hash")) > 1}
    assert len(here - rare) <= 5 and LogPosition("b.000004", 10, 0) in here
    assert LogPosition("b.000004", 11, 0) not in here
    # a later batch of the same tables: every row change goes to its lane's worker
    more = [Change(Op.INSERT, t, LogPosition("b.000005", i, 0), after=after, commit_time=5.0) for i, (t, after) in
            enumerate([(ITEMS, {"id": 900}), (wider, {"id": 901, "cust": 1, "v": "x", "c": 1}),
                       (LOGS, {"msg": "z", "n": 1}), (NAMES, {"name": "q", "n": 2})])]
    assert all(isinstance(it, Encode) for _, w in reader.pick(more) for it in w.items)
    assert comparable([(lane, lanes.expand(w)) for lane, w in reader.pick(more)]) == comparable(
        route_after(new_router(), batch, more))


def route_after(router: Router, first: list, then: list) -> list:
    """What `router` routes of `then` after it routed `first` (its encoder has written the schemas of `first`)."""
    router.route(first)
    return router.route(then)


@pytest.mark.parametrize("packs", [False, True])
def test_a_lanes_batch_crosses_processes_as_plain_tuples_with_each_table_once(packs):
    import pickle

    r = real_router()
    r.packs = packs
    batch = [Change(Op.INSERT, SHARDED, LogPosition("b.000001", i, 2), after={"id": i, "cust": 1, "v": "é"},
                    commit_time=1.5, txn="0-1-9", server_id=3) for i in range(50)]
    [(lane, work)] = r.pick(batch)
    blob = pickle.dumps(work)
    assert pickle.dumps(work) == blob  # Bytewax pickles twice: packed once
    assert b"Change" not in blob and blob.count(b"varchar(9)") == 1  # no Change objects; the schema once
    back = pickle.loads(blob)
    assert back == work and [e.change for e in back.items] == batch
    # every batch of a table arrives with one schema object (the encoder's caches find it by identity)
    again = pickle.loads(pickle.dumps(r.pick(batch[:10])[0][1]))
    assert again.rows is not None and back.rows is not None and again.rows[0] == back.rows[0]
    assert again.rows[0][0] is back.rows[0][0] == SHARDED


def test_a_lanes_batch_that_crossed_processes_is_held_packed_until_its_lane_encodes_it():
    # the lanes' process may receive an epoch of the log's batches ahead of its encoding: held as Change objects
    # that backlog took 1 KB a row (a 1,000,000-row transaction pushed the process past 300 MB)
    import pickle
    import tracemalloc

    r = real_router()
    batch = [Change(Op.INSERT, SHARDED, LogPosition("b.000001", i, 2), after={"id": i, "cust": 1, "v": f"name-{i}"},
                    commit_time=1.5, txn="0-1-9", server_id=3) for i in range(2000)]
    [(lane, work)] = r.pick(batch)
    blob = pickle.dumps(work)
    tracemalloc.start()
    try:
        back = pickle.loads(blob)
        held = tracemalloc.get_traced_memory()[0]
        items = back.items
        unpacked = tracemalloc.get_traced_memory()[0] - held
    finally:
        tracemalloc.stop()
    assert held < len(blob) + 1000 and held * 3 < unpacked  # the packed bytes only
    assert [e.change for e in items] == batch and back == work
    assert pickle.dumps(back) == blob  # sent on again as it came
    want = r.expand(work)
    assert r.expand(pickle.loads(blob)) == want and len(want) == len(batch)


def test_routed_records_cross_processes_as_plain_tuples_and_arrive_as_the_same_records():
    import pickle

    from obsync.connectors.kafka.records import RecordBatch

    r = real_router()
    snap = [Change(Op.READ, ITEMS, SnapshotPosition("shop.items/0001", (i,)), after={"id": i}) for i in range(40)]
    log = [Change(Op.INSERT, ITEMS, LogPosition("b.000007", 100 + i, i % 3), after={"id": i}, commit_time=1.5,
                  txn="0-1-9", server_id=3) for i in range(40)]
    for batch in (snap, log, [*snap, StreamDone("snapshot:shop.items/0001")]):
        for lane, records in r.route(batch):
            assert type(records) is RecordBatch
            blob = pickle.dumps((lane, records))
            assert pickle.dumps((lane, records)) == blob  # Bytewax pickles twice: packed once
            assert b"OutRecord" not in blob and b"Position" not in blob  # plain tuples; the chunk's name once
            assert blob.count(b"shop.items/0001") <= 1 + sum(isinstance(it, StreamDone) for it in records)
            back_lane, back = pickle.loads(blob)
            assert back_lane == lane and type(back) is list and back == records
            assert [type(it) for it in back] == [type(it) for it in records]
            assert [type(rec.position) for rec in back if isinstance(rec, OutRecord)] == [
                type(rec.position) for rec in records if isinstance(rec, OutRecord)]
    # records of other shapes (headers, positions of other kinds) cross as they are
    odd = RecordBatch([OutRecord("t", 0, None, b"v", SnapshotPosition("c", ("a", 2)), 3, 1.5, (("h", b"x"),)),
                       StreamDone("s")])
    assert pickle.loads(pickle.dumps(odd)) == list(odd)


def test_values_that_begin_alike_cross_processes_once_with_that_beginning_and_arrive_whole():
    import pickle

    from obsync.connectors.kafka.records import RecordBatch

    schema = b'{"schema":{"type":"struct","fields":[' + b'{"type":"int32","field":"c"},' * 120 + b'],"payload":'
    snap = [OutRecord("shop.items", i % 3, b'{"id":%d}' % i, schema + b'{"after":{"id":%d}}}' % i,
                      SnapshotPosition("shop.items/0001", (i,))) for i in range(200)]
    odd = [OutRecord("shop.items", 0, b'{"id":7}', None, LogPosition("b.000007", 100, 0), 1),  # a tombstone
           OutRecord("shop.items", 1, b'{"id":8}', b'{"schema":{"type":"string"},"payload":"x"}' * 20,
                     LogPosition("b.000007", 200, 0)),  # a value that begins otherwise
           OutRecord("shop.items", 1, b'{"id":9}', schema, LogPosition("b.000007", 300, 0)),  # part of the beginning
           OutRecord("shop.orders", 2, b'{"id":1}', b'{"id":1}', LogPosition("b.000007", 400, 0)),  # short: as is
           StreamDone("snapshot:shop.items/0001")]
    for records in (snap, [*snap[:100], *odd, *snap[100:]], odd):
        batch = RecordBatch(records)
        blob = pickle.dumps(batch)
        back = pickle.loads(blob)
        assert type(back) is list and back == records
        assert [type(it) for it in back] == [type(it) for it in records]
        if len(records) > 100:  # the schema crossed once, not once per value
            whole = sum(isinstance(r, OutRecord) and r.value == schema for r in records)  # shorter than the beginning
            assert blob.count(schema) == 1 + whole
            assert len(blob) < sum(len(r.value or b"") for r in records if isinstance(r, OutRecord)) / 5

"""The Kafka sink against a real broker: partitions, order, resume without duplicates, raised errors."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid

import pytest

from obsync.connectors.kafka.client import KafkaSettings
from obsync.connectors.kafka.records import DEFAULT_LANES, OutRecord, lane_names, lane_of, part_name
from obsync.connectors.kafka.sink import KafkaSink
from obsync.connectors.kafka.stall import BrokerPatience
from obsync.connectors.kafka.topics import ensure_topics
from obsync.core.changes import StreamDone
from obsync.core.errors import BrokerFault, SinkError
from obsync.core.positions import LogPosition, SnapshotPosition, position_to_header
from obsync.runtime.progress import Progress
from tests.helpers.kafka import read_partition


def make_sink(kafka, topic, partitions, required=frozenset(), delivered=None, gaps_file=None):
    return KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, lane_names(DEFAULT_LANES), "task-" + topic,
                     required, (delivered.append if delivered is not None else (lambda p: None)), Progress(),
                     gaps_file=gaps_file)


def rec(topic, partition, pos, value, seq=0, key=b"k"):
    return OutRecord(topic, partition, key, value, pos, seq)


def test_creates_topics_with_configured_partitions(kafka):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    counts = ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 5, 1)
    assert counts == {topic: 5}
    # a second call finds it and does not fail
    assert ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 3, 1) == {topic: 5}


def test_resume_after_crash_writes_nothing_twice(kafka):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 2, 1)
    sink = make_sink(kafka, topic, 2)
    part = sink.build_part("out", lane_of(topic, 1, DEFAULT_LANES), None)
    log = [rec(topic, 1, LogPosition("bin.000001", 100 + i, 0), f"v{i}".encode()) for i in range(10)]
    part.write_batch([log[:4]])
    state = part.snapshot()  # the last state Bytewax committed
    part.write_batch([log[4:7]])  # written after the snapshot, then the process is killed
    part.shared.flush()

    # Bytewax resumes the part from `state` and replays everything after it (4..9).
    sink2 = make_sink(kafka, topic, 2)
    resumed = sink2.build_part("out", lane_of(topic, 1, DEFAULT_LANES), state)
    resumed.write_batch([log[4:]])
    resumed.close()
    values = [m.value for m in read_partition(kafka.bootstrap_servers, topic, 1)]
    assert values == [f"v{i}".encode() for i in range(10)]
    assert read_partition(kafka.bootstrap_servers, topic, 0) == []


def test_resume_without_any_snapshot_reads_the_partition(kafka):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    part = make_sink(kafka, topic, 1).build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    snap = [rec(topic, 0, SnapshotPosition("db.t/0001", (i,)), f"r{i}".encode()) for i in range(5)]
    part.write_batch([snap[:3]])
    part.shared.flush()  # crash before the first snapshot
    again = make_sink(kafka, topic, 1).build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    again.write_batch([snap])
    again.close()
    assert [m.value for m in read_partition(kafka.bootstrap_servers, topic, 0)] == [f"r{i}".encode() for i in range(5)]


def test_streams_are_deduplicated_independently(kafka):
    """Two snapshot chunks and the log interleave in one partition; each keeps its own last position."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    part = make_sink(kafka, topic, 1).build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    a = [rec(topic, 0, SnapshotPosition("db.t/0001", (i,)), f"a{i}".encode()) for i in (1, 2, 3)]
    b = [rec(topic, 0, SnapshotPosition("db.t/0002", (i,)), f"b{i}".encode()) for i in (10, 11)]
    part.write_batch([[a[0], b[0], a[1], b[1], a[2]], [a[1], b[1]]])  # the last two are replays
    part.close()
    assert [m.value for m in read_partition(kafka.bootstrap_servers, topic, 0)] == [
        b"a1", b"b10", b"a2", b"b11", b"a3"]


def test_several_messages_of_one_change_are_kept_by_seq(kafka):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    part = make_sink(kafka, topic, 1).build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    pos = LogPosition("bin.000003", 500, 1)
    part.write_batch([[rec(topic, 0, pos, b"delete", 0), OutRecord(topic, 0, b"k", None, pos, 1)]])
    state = part.snapshot()
    again = make_sink(kafka, topic, 1).build_part("out", lane_of(topic, 0, DEFAULT_LANES), state)
    again.write_batch([[rec(topic, 0, pos, b"delete", 0), OutRecord(topic, 0, b"k", None, pos, 1)]])
    again.close()
    msgs = read_partition(kafka.bootstrap_servers, topic, 0)
    assert [m.value for m in msgs] == [b"delete", None]
    assert msgs[0].headers["obsync.pos"] == b'["log","bin.000003",500,1]'
    assert msgs[1].headers["obsync.seq"] == b"1"


def test_partition_marks_itself_delivered_after_every_snapshot_chunk(kafka):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    delivered: list[str] = []
    required = frozenset({"snapshot:db.t/0001", "snapshot:db.t/0002"})
    part = make_sink(kafka, topic, 1, required, delivered).build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    part.write_batch([[StreamDone("snapshot:db.t/0001")]])
    assert delivered == []
    part.write_batch([[StreamDone("snapshot:db.t/0002")]])
    assert delivered == [lane_of(topic, 0, DEFAULT_LANES)]
    state = part.snapshot()
    # a rebuilt part that already has everything reports at once
    make_sink(kafka, topic, 1, required, delivered).build_part("out", lane_of(topic, 0, DEFAULT_LANES), state)
    assert delivered == [lane_of(topic, 0, DEFAULT_LANES)] * 2


def test_delivery_error_is_raised_not_dropped(kafka):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    sink = KafkaSink({"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 1000,
                      "message.timeout.ms": 5000}, lane_names(DEFAULT_LANES), "task-err", frozenset(),
                     lambda p: None, Progress())
    part = sink.build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    with pytest.raises(SinkError, match=rf"{topic}\[0\]"):
        part.write_batch([[rec(topic, 0, LogPosition("bin.000001", 4, 0), b"x" * 5000)]])
        part.snapshot()


def test_messages_acknowledged_but_not_kept_fail_the_snapshot_and_the_resume_writes_them_in_key_order(
        kafka, tmp_path, caplog):
    """A broker that acknowledges a message as already written (no offset) without holding it: the lane's
    snapshot checks the partition, fails with a `BrokerFault` naming the partition (the task restarts), and the
    resume from the previous snapshot writes the lost message, skips those Kafka holds, and writes again the
    later messages of the lost one's key, so a consumer replaying each key ends at the source's state.
    (tansu's loss cannot be provoked at will: the acknowledgement without an offset is recorded as the
    delivery report does, for a message the broker never received.)"""
    caplog.set_level(logging.INFO, "obsync")
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    gaps = tmp_path / "kafka-gaps.json"
    lane = lane_of(topic, 0, DEFAULT_LANES)
    keys = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"f", b"h", b"i"]  # 7 is a later change of 5's key
    log = [rec(topic, 0, LogPosition("bin.000001", 100 + i, 0), f"v{i}".encode(), key=keys[i]) for i in range(10)]
    part = make_sink(kafka, topic, 1, gaps_file=gaps).build_part("out", lane, None)
    part.write_batch([log[:4]])
    state = part.snapshot()
    part.write_batch([[log[4], log[6], log[7]]])  # the broker lost 5 ...
    part.shared.flush()
    w = part.written[(topic, 0)]
    for r in (log[4], log[5]):  # ... though it acknowledged it (and 4) as written already
        w.unverified.append((position_to_header(r.position), 0, r.key))
    with pytest.raises(BrokerFault, match=rf"Kafka acknowledged 1 message of {topic}\[0\] it did not keep .*"
                                          r"replaying from the last snapshot"):
        part.snapshot()
    assert gaps.exists()

    resumed = make_sink(kafka, topic, 1, gaps_file=gaps).build_part("out", lane, state)  # the restart
    resumed.write_batch([log[4:]])
    state2 = resumed.snapshot()
    values = [m.value for m in read_partition(kafka.bootstrap_servers, topic, 0)]
    assert values == [b"v0", b"v1", b"v2", b"v3", b"v4", b"v6", b"v7", b"v5", b"v7", b"v8", b"v9"]
    replayed = {}
    for m in read_partition(kafka.bootstrap_servers, topic, 0):
        replayed[m.key] = m.value
    assert replayed == {k: f"v{max(i for i in range(10) if keys[i] == k)}".encode() for k in set(keys)}
    assert "Kafka lost 1 message it had acknowledged" in caplog.text

    # the note is spent: a later resume drops by position as usual and writes nothing twice
    again = make_sink(kafka, topic, 1, gaps_file=gaps).build_part("out", lane, state2)
    again.write_batch([log[8:]])
    again.close()
    assert len(read_partition(kafka.bootstrap_servers, topic, 0)) == 11
    assert not gaps.exists()


def test_a_snapshot_row_acknowledged_but_not_kept_stops_the_full_sync_being_marked_delivered(kafka, tmp_path):
    """Once a lane marks its full sync delivered, no chunk is read again (obsync.connectors.mysql.snapshot.source):
    so before the mark the lane checks the messages acknowledged without an offset, and one Kafka lacks fails
    the lane (`BrokerFault`, the task restarts) with no mark. The resume, from before any snapshot, writes it."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    gaps = tmp_path / "kafka-gaps.json"
    lane = lane_of(topic, 0, DEFAULT_LANES)
    chunk = "db.t/0000"
    rows = [rec(topic, 0, SnapshotPosition(chunk, (i,)), f"r{i}".encode(), key=b"[%d]" % i) for i in range(6)]
    delivered: list[str] = []
    required = frozenset({SnapshotPosition(chunk, ()).stream})
    part = make_sink(kafka, topic, 1, required, delivered, gaps_file=gaps).build_part("out", lane, None)
    part.write_batch([rows[:3] + rows[4:]])  # the broker lost row 3 ...
    part.shared.flush()
    part.written[(topic, 0)].unverified.append((position_to_header(rows[3].position), 0, rows[3].key))  # ... acked
    with pytest.raises(BrokerFault, match=rf"Kafka acknowledged 1 message of {topic}\[0\] it did not keep"):
        part.write_batch([[StreamDone(SnapshotPosition(chunk, ()).stream)]])
    assert delivered == [] and gaps.exists()

    resumed = make_sink(kafka, topic, 1, required, delivered, gaps_file=gaps).build_part("out", lane, None)
    resumed.write_batch([rows + [StreamDone(SnapshotPosition(chunk, ()).stream)]])  # the chunk read again
    assert delivered == [lane]
    resumed.snapshot()
    assert sorted(m.value for m in read_partition(kafka.bootstrap_servers, topic, 0)) == [
        f"r{i}".encode() for i in range(6)]


def test_messages_acknowledged_without_an_offset_that_kafka_holds_pass_the_check(kafka, caplog):
    caplog.set_level(logging.INFO, "obsync")
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    part = make_sink(kafka, topic, 1).build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    log = [rec(topic, 0, LogPosition("bin.000001", 100 + i, 0), f"v{i}".encode()) for i in range(4)]
    part.write_batch([log])
    part.shared.flush()
    w = part.written[(topic, 0)]
    w.unverified.append((position_to_header(log[2].position), 0, b"k"))
    state = part.snapshot()
    assert state["partitions"][f"{topic}#00000"]["offset"] == 4
    assert w.unverified == []
    assert f"{topic}[0]: Kafka holds the 1 message it acknowledged without an offset" in caplog.text


def test_one_lane_writes_several_topics_and_learns_a_new_partition_after_resume(kafka):
    """A lane's state covers every partition it wrote; a partition it meets after a resume (a table created
    while the task ran) is read from offset 0, so writes made before a crash are not repeated."""
    a, b = f"t_{uuid.uuid4().hex[:8]}", f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [a, b], 1, 1)
    sink = KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, ["lane000"], "task-lanes", frozenset(),
                     lambda p: None, Progress())
    lane = sink.build_part("out", "lane000", None)
    log_a = [rec(a, 0, LogPosition("bin.000001", 10 + i, 0), f"a{i}".encode()) for i in range(4)]
    log_b = [rec(b, 0, LogPosition("bin.000001", 20 + i, 0), f"b{i}".encode()) for i in range(4)]
    lane.write_batch([log_a[:2]])
    state = lane.snapshot()
    assert list(state["partitions"]) == [f"{a}#00000"]
    lane.write_batch([log_a[2:], log_b[:3]])  # b first met after the snapshot; then a crash
    lane.shared.flush()
    resumed = KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, ["lane000"], "task-lanes", frozenset(),
                        lambda p: None, Progress()).build_part("out", "lane000", state)
    resumed.write_batch([log_a[2:], log_b])
    resumed.close()
    assert [m.value for m in read_partition(kafka.bootstrap_servers, a, 0)] == [b"a0", b"a1", b"a2", b"a3"]
    assert [m.value for m in read_partition(kafka.bootstrap_servers, b, 0)] == [b"b0", b"b1", b"b2", b"b3"]


def test_a_rescanned_stream_is_never_dropped_at_or_before_its_last_position(kafka):
    # A table without a key on MySQL/MariaDB: every run rescans it under a later attempt, so a row at or
    # before what an earlier run wrote is not a replay (it is another row): an error, never dropped.
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    stream = SnapshotPosition("db.heap/0000", ()).stream
    lane = lane_of(topic, 0, DEFAULT_LANES)

    def sink():
        return KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, lane_names(DEFAULT_LANES), "task-" + topic,
                         frozenset(), lambda p: None, Progress(), rescanned_streams=frozenset({stream}))

    def rows(attempt, n):
        return [rec(topic, 0, SnapshotPosition("db.heap/0000", (attempt, i)), f"{attempt}:{i}".encode())
                for i in range(1, n + 1)]

    first = sink().build_part("out", lane, None)
    first.write_batch([rows(500, 3)])
    first.shared.flush()  # killed before the first snapshot
    later = sink().build_part("out", lane, None)
    later.write_batch([rows(900, 2)])  # the next run's rescan: written whole
    later.close()
    behind = sink().build_part("out", lane, None)  # a run whose clock is behind
    with pytest.raises(SinkError, match=r"\[0\]: the rescan of snapshot:db.heap/0000 writes position "
                                        r"db.heap/0000@\[700,1\], not after db.heap/0000@\[900,2\].*clock"):
        behind.write_batch([rows(700, 2)])
    assert [m.value for m in read_partition(kafka.bootstrap_servers, topic, 0)] == [
        b"500:1", b"500:2", b"500:3", b"900:1", b"900:2"]


def test_an_unreachable_broker_is_waited_for_within_patience_then_named_with_the_clients_error(caplog):
    """Nothing listens at the bootstrap address (connections refused): after the notice time the wait is logged
    with librdkafka's error, after the patience the flush fails naming the brokers, the wait and that error;
    the secret in the settings appears nowhere."""
    from obsync.app.embedded.process import free_port
    from obsync.connectors.kafka.sink import _SharedProducer

    brokers = f"127.0.0.1:{free_port()}"
    secret = "kafka-secret-never-shown-31"
    shared = _SharedProducer({"bootstrap.servers": brokers, "sasl.username": "u", "sasl.password": secret},
                             patience=BrokerPatience(notice=0.5, patience=3, repeat=30))
    waits: list[tuple] = []

    class Listener(Progress):
        def broker_waiting(self, brokers, pending, seconds, error):
            waits.append((brokers, pending, error))

    shared.produce(rec("t", 0, LogPosition("bin.000001", 4, 0), b"v"), [])
    with caplog.at_level("INFO"), pytest.raises(SinkError) as e:
        shared.flush(Listener())
    msg = str(e.value)
    assert msg.startswith(f"Kafka ({brokers}) acknowledged nothing for 3 s while 1 message waited for "
                          "acknowledgements (target.patience: 3 s); last error from the client: "), msg
    assert "Connection refused" in msg and "start the task again" in msg, msg
    assert waits[0][:2] == (brokers, 1) and "Connection refused" in (waits[0][2] or ""), waits
    assert waits[-1] == (brokers, 0, None)  # over, once given up
    logged = [r.getMessage() for r in caplog.records if r.name == "obsync.connectors.kafka.sink"]
    assert any(line.startswith(f"waiting for Kafka ({brokers}): 1 message not acknowledged for ") for line in logged)
    assert secret not in msg + caplog.text + repr(waits)
    shared.producer.purge()


def test_reading_a_partition_from_an_unreachable_broker_waits_within_patience_and_a_stop_ends_it(caplog):
    """Resuming a partition reads it to its end first; nothing listens at the bootstrap address: the read is
    shown as a wait for Kafka (which partition), then fails after the patience naming the brokers, the partition,
    the client's error and what to do; a stop ends the same wait at once, with nothing written."""
    from obsync.app.embedded.process import free_port
    from obsync.connectors.kafka.tail import written_positions
    from obsync.core.errors import StopWhileWaiting

    brokers = f"127.0.0.1:{free_port()}"
    secret = "kafka-secret-never-shown-77"
    conf = {"bootstrap.servers": brokers, "sasl.username": "u", "sasl.password": secret}
    waits: list[tuple] = []

    class Listener(Progress):
        def broker_waiting(self, brokers, pending, seconds, error, reading=None):
            waits.append((brokers, pending, error, reading))

    patience = BrokerPatience(notice=0.5, patience=3, repeat=30)
    with caplog.at_level("INFO"), pytest.raises(SinkError) as e:
        list(written_positions(conf, "orders", 2, 40, "task-x", patience=patience, listener=Listener()))
    msg = str(e.value)
    assert msg.startswith(f"Kafka ({brokers}) sent nothing for 3 s while the sink read orders[2] from offset 40 to "
                          "its end to learn what an earlier run wrote (target.patience: 3 s); last error from the "
                          "client: "), msg
    assert "Connection refused" in msg and msg.endswith("Make the brokers reachable and start the task again: it "
                                                        "resumes from the last saved point, nothing is lost or "
                                                        "written twice"), msg
    assert waits[0][0] == brokers and waits[0][1] == 0 and waits[0][3] == "orders[2]", waits
    assert waits[-1] == (brokers, 0, None, None)  # over, once given up
    logged = [r.getMessage() for r in caplog.records if r.name == "obsync.connectors.kafka.tail"]
    assert any(line.startswith(f"waiting for Kafka ({brokers}): nothing read from orders[2] (from offset 40, to "
                               "learn what an earlier run wrote) for ") for line in logged), logged
    assert secret not in msg + caplog.text + repr(waits)

    with pytest.raises(StopWhileWaiting) as stopped:
        list(written_positions(conf, "orders", 2, 40, "task-x", patience=BrokerPatience(notice=30, patience=None),
                               stopping=lambda: True))
    assert str(stopped.value) == (f"stopped while reading orders[2] from Kafka ({brokers}); the next start reads it "
                                  "again")


def test_topic_metadata_from_an_unreachable_broker_is_waited_for_within_the_patience_then_fails_naming_it(caplog):
    caplog.set_level(logging.WARNING, "obsync")
    from obsync.app.embedded.process import free_port

    brokers = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(SinkError) as e:
        ensure_topics(KafkaSettings(bootstrap_servers=brokers), ["orders"], 3, 1,
                      BrokerPatience(notice=1, patience=7, repeat=30))
    assert 7 <= time.monotonic() - began < 15  # beyond one request's slice (5 s): tried again
    msg = str(e.value)
    assert msg.startswith(f"cannot read the topics' metadata from Kafka ({brokers}) within 7 s "
                          "(target.patience): "), msg
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for Kafka")]
    assert len(waits) == 1 and waits[0].startswith(f"waiting for Kafka ({brokers}): cannot read the topics' metadata "
                                                   "for 5 s; last error: "), waits
    assert waits[0].endswith("retrying until target.patience (7 s) runs out"), waits
    assert msg.endswith("Make the brokers reachable (target.bootstrap_servers, target.properties) and start the task "
                        "again: nothing is lost"), msg


def test_messages_carry_headers_timestamp_and_acknowledgements_are_counted(kafka):
    # what each message carries (key, value, partition, the task/position/seq headers, a CreateTime of when it was
    # written), and what the delivery reports, counted per batch, leave in the state and the listener
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 2, 1)
    progress = Progress()
    sink = KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, lane_names(DEFAULT_LANES), "task-x",
                     frozenset(), lambda p: None, progress)
    part = sink.build_part("out", lane_of(topic, 1, DEFAULT_LANES), None)
    start_ms = int(time.time() * 1000)
    records = [OutRecord(topic, 1, f"k{i}".encode(), b"v" * i, LogPosition("bin.000002", 100 + i, i % 2), i % 3)
               for i in range(40)]
    records.append(OutRecord(topic, 1, None, None, LogPosition("bin.000002", 200, 0), 17))  # a tombstone, seq 17
    part.write_batch([records[:25]])
    part.write_batch([records[25:]])
    state = part.snapshot()
    end_ms = int(time.time() * 1000)
    assert state["partitions"][f"{topic}#00001"]["offset"] == 41
    assert progress.written_by_topic()[topic] == (41, sum(range(40)))
    got = read_partition(kafka.bootstrap_servers, topic, 1)
    assert [(m.offset, m.key, m.value) for m in got] == [(i, r.key, r.value) for i, r in enumerate(records)]
    for m, r in zip(got, records, strict=True):
        assert m.headers == {"obsync.task": b"task-x", "obsync.seq": str(r.seq).encode(),
                             "obsync.pos": f'["log","bin.000002",{r.position.pos},{r.position.row}]'.encode()}
        assert start_ms - 1000 <= m.timestamp <= end_ms + 1000
    assert read_partition(kafka.bootstrap_servers, topic, 0) == []


def snapshot_past_the_end(sink, topic, lane):
    """Three messages written to partition 0 and snapshotted, then the snapshot's offset set to 50: as if Kafka
    had lost offsets 3..49 it acknowledged."""
    part = sink.build_part("out", lane, None)
    part.write_batch([[rec(topic, 0, LogPosition("bin.000001", 100 + i, 0), b"v") for i in range(3)]])
    state = part.snapshot()
    assert state["partitions"][part_name(topic, 0)]["offset"] == 3
    state["partitions"][part_name(topic, 0)]["offset"] = 50
    return state


def test_on_kafka_a_resume_past_the_partitions_end_fails_at_once_naming_the_cause(kafka_like):
    """Apache Kafka answers a read from past a partition's end with OFFSET_OUT_OF_RANGE. The read back used to
    start over at the partition's first offset then (auto.offset.reset=earliest), without a word: it found the
    positions written before the lost ones and the task went on, the lost messages never written again. Now it
    fails at once, before any write, saying where the partition ends and what to do."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    kafka_like.create_topic(topic)
    sink = make_sink(kafka_like, topic, 4)
    lane = lane_of(topic, 0, DEFAULT_LANES)
    state = snapshot_past_the_end(sink, topic, lane)
    t0 = time.monotonic()
    with pytest.raises(SinkError) as e:
        make_sink(kafka_like, topic, 4).build_part("out", lane, state)
    assert time.monotonic() - t0 < 15  # at the first fetch's answer, not at a stall (target.stall_timeout: 30 s)
    assert f"{topic}[0] ends at offset 3 on Kafka ({kafka_like.bootstrap_servers}), before offset 50" in str(e.value)
    assert "no longer holds messages it acknowledged" in str(e.value)
    assert [m.value for m in read_partition(kafka_like.bootstrap_servers, topic, 0)] == [b"v"] * 3  # nothing added


def test_on_kafka_a_resume_inside_the_partition_still_writes_nothing_twice(kafka_like):
    """The read back with auto.offset.reset=error, from a snapshot's offset inside the partition and from its
    end, on a broker answering as Kafka does: the replayed messages are dropped, the new ones written once."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    kafka_like.create_topic(topic)
    lane = lane_of(topic, 1, DEFAULT_LANES)
    log = [rec(topic, 1, LogPosition("bin.000001", 100 + i, 0), f"v{i}".encode()) for i in range(9)]
    part = make_sink(kafka_like, topic, 4).build_part("out", lane, None)
    part.write_batch([log[:2]])
    inside = part.snapshot()
    part.write_batch([log[2:5]])
    at_end = part.snapshot()
    part.shared.flush()
    resumed = make_sink(kafka_like, topic, 4).build_part("out", lane, inside)  # replays 2..6
    resumed.write_batch([log[2:7]])
    resumed.close()
    again = make_sink(kafka_like, topic, 4).build_part("out", lane, at_end)  # replays 5..8
    again.write_batch([log[5:]])
    again.close()
    got = read_partition(kafka_like.bootstrap_servers, topic, 1)
    assert [(m.offset, m.value) for m in got] == [(i, f"v{i}".encode()) for i in range(9)]


def test_a_partition_shorter_than_the_snapshot_says_fails_at_the_stall_naming_the_cause(kafka):
    """A resume whose snapshot offset lies past the partition's end (the broker lost acknowledged messages, or the
    topic was created again): the read from there gets nothing (tansu sends neither messages nor the end), so
    instead of waiting the whole patience as for a silent broker it fails once the read counts as stalled,
    saying why and what to do."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    sink = KafkaSink({"bootstrap.servers": kafka.bootstrap_servers}, lane_names(DEFAULT_LANES), "task-" + topic,
                     frozenset(), lambda p: None, Progress(), patience=BrokerPatience(notice=2, patience=60))
    lane = lane_of(topic, 0, DEFAULT_LANES)
    state = snapshot_past_the_end(sink, topic, lane)
    t0 = time.monotonic()
    with pytest.raises(SinkError) as e:
        sink.build_part("out", lane, state)
    assert time.monotonic() - t0 < 30  # at the stall notice (2 s), not at the patience (60 s)
    assert f"{topic}[0] ends at offset 3 on Kafka (" in str(e.value) and "before offset 50" in str(e.value)
    assert "no longer holds messages it acknowledged" in str(e.value)


def test_a_partition_shorter_than_the_snapshot_says_fails_at_the_stall_though_the_client_reported_an_error(kafka):
    """As above, with the client having reported an error before the read stalls (here a bootstrap address
    nobody listens on, as after an outage of one broker): Kafka is still asked where the partition ends, so the
    task fails at the stall, naming the cause, instead of waiting the whole patience."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    with socket.socket() as s:  # a port nobody listens on: connections to it are refused
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    conf = {"bootstrap.servers": f"127.0.0.1:{dead},{kafka.bootstrap_servers}",
            "enable.sparse.connections": False}  # connect to every address at once: the refusal comes first
    sink = KafkaSink(conf, lane_names(DEFAULT_LANES), "task-" + topic, frozenset(), lambda p: None, Progress(),
                     patience=BrokerPatience(notice=2, patience=60))
    lane = lane_of(topic, 0, DEFAULT_LANES)
    part = sink.build_part("out", lane, None)
    part.write_batch([[rec(topic, 0, LogPosition("bin.000001", 100 + i, 0), b"v") for i in range(3)]])
    state = part.snapshot()
    state["partitions"][part_name(topic, 0)]["offset"] = 50  # as if Kafka had lost offsets 3..49 it acknowledged
    t0 = time.monotonic()
    with pytest.raises(SinkError) as e:
        sink.build_part("out", lane, state)
    assert time.monotonic() - t0 < 30  # at the stall notice (2 s) or the next question (10 s), not the patience
    assert f"{topic}[0] ends at offset 3 on Kafka (" in str(e.value) and "before offset 50" in str(e.value)


def test_a_new_producer_asks_for_the_metadata_of_the_known_topic_alone(kafka, caplog):
    # the sink's producer asks for metadata at once (so that its idempotent producer id comes without librdkafka's
    # half-second timer): for the task's topic alone, not every topic of a cluster that may hold thousands; and
    # its messages are acknowledged as before
    topic = f"t_{uuid.uuid4().hex[:8]}"
    ensure_topics(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), [topic], 1, 1)
    caplog.set_level(logging.DEBUG, logger="obsync.rdkafka")
    sink = KafkaSink({"bootstrap.servers": kafka.bootstrap_servers, "debug": "metadata"}, lane_names(DEFAULT_LANES),
                     "task-m", frozenset(), lambda p: None, Progress(), known_topic=topic)
    part = sink.build_part("out", lane_of(topic, 0, DEFAULT_LANES), None)
    asking = [t for t in threading.enumerate() if t.name == "obsync-kafka-id"]
    assert asking
    for t in asking:
        t.join(30)
    part.write_batch([[rec(topic, 0, LogPosition("bin.000001", 4), b"v")]])
    assert part.snapshot()["partitions"][f"{topic}#00000"]["offset"] == 1
    part.shared.producer.poll(0.5)  # librdkafka's log lines reach the logger when the producer is polled
    requests = [r.getMessage() for r in caplog.records
                if r.name == "obsync.rdkafka" and "Request metadata for" in r.getMessage()]
    asked = [m for m in requests if "application requested" in m]  # librdkafka may merge or skip one of them
    assert asked, requests
    assert all("Request metadata for 1 topic(s)" in m for m in asked), asked
    assert not [m for m in requests if "all topics" in m], requests
    assert [(m.key, m.value) for m in read_partition(kafka.bootstrap_servers, topic, 0)] == [(b"k", b"v")]

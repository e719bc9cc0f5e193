"""Reading a partition back from an offset (`connectors.kafka.tail.read_messages`: `obsync verify`, the schema
history) on a broker answering as Apache Kafka does: librdkafka's mock broker (the `kafka_like` fixture)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from obsync.connectors.kafka.tail import read_messages
from obsync.core.errors import SinkError


def _write(bootstrap: str, topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for v in values:
        p.produce(topic, v, key=b"k", partition=2, headers=[("obsync.task", b"t1"), ("obsync.seq", b"7")])
    assert p.flush(10) == 0


def test_reads_from_the_offset_to_the_end_with_keys_values_and_headers(kafka_like):
    topic = f"t_{uuid.uuid4().hex[:8]}"
    kafka_like.create_topic(topic)
    _write(kafka_like.bootstrap_servers, topic, [b"v0", b"v1", b"v2", b"v3"])
    got = list(read_messages({"bootstrap.servers": kafka_like.bootstrap_servers}, topic, 2, 1, timeout=20))
    assert [(m.partition, m.offset, m.key, m.value, m.task, m.seq) for m in got] == [
        (2, i, b"k", f"v{i}".encode(), b"t1", 7) for i in (1, 2, 3)]
    assert list(read_messages({"bootstrap.servers": kafka_like.bootstrap_servers}, topic, 2, 4, timeout=20)) == []


def test_an_offset_past_the_end_is_an_error_naming_what_the_partition_holds(kafka_like):
    """Kafka answers the read with OFFSET_OUT_OF_RANGE. It used to start over at the partition's first offset
    without a word (auto.offset.reset=earliest): a verify reading on from where it had read applied those
    messages a second time. Now the read fails, naming the partition, the offset and what Kafka holds."""
    topic = f"t_{uuid.uuid4().hex[:8]}"
    kafka_like.create_topic(topic)
    _write(kafka_like.bootstrap_servers, topic, [b"v0", b"v1", b"v2"])
    with pytest.raises(SinkError) as e:
        list(read_messages({"bootstrap.servers": kafka_like.bootstrap_servers}, topic, 2, 10, timeout=20))
    assert str(e.value).startswith(f"cannot read {topic}[2] from offset 10 on Kafka "
                                   f"({kafka_like.bootstrap_servers}): it holds offsets 0 to 2")
    assert "created again, or Kafka lost them" in str(e.value)

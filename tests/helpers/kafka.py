"""Reading back what landed in Kafka, the way a consumer would (to end-of-partition, not ListOffsets)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient


@dataclass(frozen=True)
class Msg:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp: int = 0  # the message's Kafka timestamp (CreateTime, ms)


def partition_count(bootstrap: str, topic: str) -> int:
    return len(AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions)


def read_partition(bootstrap: str, topic: str, partition: int, timeout: float = 60) -> list[Msg]:
    """Every message of one partition, in offset order."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    out: list[Msg] = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise RuntimeError(m.error().str())
            out.append(Msg(m.partition(), m.offset(), m.key(), m.value(), dict(m.headers() or ()),
                           m.timestamp()[1]))
        raise TimeoutError(f"no end of {topic}[{partition}] within {timeout}s")
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[Msg]:
    """Every message of every partition (partition by partition, each in offset order)."""
    return [m for p in range(partition_count(bootstrap, topic))
            for m in read_partition(bootstrap, topic, p, timeout)]


class LibrdkafkaMockCluster:
    """librdkafka's own Kafka-protocol broker (`test.mock.num.brokers`), listening on 127.0.0.1 for as long as
    the client that created it lives.

    For the one behaviour of Apache Kafka that tansu lacks and a test needs, and no Apache Kafka can run here
    (no Maven Central): a fetch from an offset outside the partition is answered OFFSET_OUT_OF_RANGE, and
    ListOffsets gives the partition's true start and end (tansu sends nothing for such a fetch, and answers
    ListOffsets with its last batch's base offset + 1). `create_topic` makes a topic of 4 partitions (the mock
    answers no CreateTopics).
    """

    def __init__(self) -> None:
        lines: list[str] = []

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                lines.append(record.getMessage())

        logger = logging.getLogger(f"tests.librdkafka-mock.{uuid.uuid4().hex}")
        logger.addHandler(_Keep())
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        self._owner = Producer({"bootstrap.servers": "unused:1", "test.mock.num.brokers": 1, "logger": logger,
                                "debug": "broker"})
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            self._owner.poll(0.1)
            found = next((m.group(1) for m in map(re.compile(r"replaced with (127\.0\.0\.1:\d+)").search, lines)
                          if m), None)
        if found is None:
            raise RuntimeError(f"librdkafka's mock cluster did not say where it listens: {lines[-5:]}")
        self.bootstrap_servers: str = found

    def create_topic(self, topic: str) -> None:
        """A topic of 4 partitions, created by asking for its metadata (the mock creates topics it is asked of)."""
        meta = self._owner.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None or len(meta.partitions) != 4:
            raise RuntimeError(f"librdkafka's mock cluster did not create {topic}: {meta.error}")

    def close(self) -> None:
        self._owner.flush(5)
        del self._owner

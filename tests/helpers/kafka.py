"""Reading back what landed in Kafka, the way a consumer would (to end-of-partition, not ListOffsets)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition
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

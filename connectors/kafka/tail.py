"""Reading what a Kafka partition already holds past a known offset: to learn the last positions written
(`written_positions`), and to read messages back (`read_messages`, for `obsync verify`).

A crash can happen after messages reached Kafka but before the sink's state was snapshotted; on resume the
sink reads the partition from its snapshotted offset to the end and so knows, per stream, the last position
actually written. The end is found by consuming to the end-of-partition event, never by ListOffsets (which
some Kafka-compatible brokers answer wrongly).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from obsync.connectors.kafka.records import POS_HEADER, SEQ_HEADER, TASK_HEADER
from obsync.core.errors import SinkError
from obsync.core.positions import Position, position_from_header


def written_positions(conf: dict[str, Any], topic: str, partition: int, start_offset: int, task_id: str,
                      timeout: float = 120.0) -> Iterator[tuple[int, Position, int]]:
    """Yield (offset, position, seq) of this task's messages from `start_offset` to the partition's end."""
    consumer = Consumer({
        **conf,
        "group.id": f"obsync-tail-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_uncommitted",
        "fetch.wait.max.ms": 20,  # the end-of-partition event comes after one empty fetch: keep it short
        "logger": logging.getLogger("obsync.rdkafka"),
    })
    task = task_id.encode()
    try:
        consumer.assign([TopicPartition(topic, partition, start_offset)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise SinkError(f"timed out reading {topic}[{partition}] from offset {start_offset} to its end")
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err:
                if err.code() == KafkaError._PARTITION_EOF:
                    return
                raise SinkError(f"cannot read {topic}[{partition}]: {err.str()}")
            deadline = time.monotonic() + timeout
            # a consumed record always has an offset; header values come as bytes (None: a null header)
            offset, headers = msg.offset(), dict(msg.headers() or ())
            pos = headers.get(POS_HEADER)
            if offset is None or headers.get(TASK_HEADER) != task or not isinstance(pos, bytes):
                continue
            yield offset, position_from_header(pos), int(headers.get(SEQ_HEADER) or b"0")
    finally:
        consumer.close()


class TopicMessage(NamedTuple):
    """One message as read back, with the headers obsync writes (None where absent)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    task: bytes | None
    position: bytes | None
    seq: int
    headers: dict[str, bytes]


def partition_counts(conf: dict[str, Any], topics: list[str], timeout: float = 30.0) -> dict[str, int]:
    """Each topic's partition count (metadata only); SinkError naming a topic that does not exist."""
    admin = AdminClient({**conf, "logger": logging.getLogger("obsync.rdkafka")})  # type: ignore[dict-item]  # librdkafka takes a logger
    out: dict[str, int] = {}
    for topic in topics:
        try:
            meta = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as e:
            raise SinkError(f"cannot read the metadata of topic {topic}: {e.args[0].str() if e.args else e}") from None
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error is not None else "it does not exist"
            raise SinkError(f"topic {topic}: {why}")
        out[topic] = len(meta.partitions)
    return out


def read_messages(conf: dict[str, Any], topic: str, partition: int, start_offset: int = 0,
                  timeout: float = 120.0) -> Iterator[TopicMessage]:
    """Every message of one partition from `start_offset` to its end (the end-of-partition event), read
    without a consumer group's commits (`assign`, auto-commit off): nothing is written to Kafka."""
    consumer = Consumer({
        **conf,
        "group.id": f"obsync-verify-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_uncommitted",
        "fetch.wait.max.ms": 20,
        "logger": logging.getLogger("obsync.rdkafka"),
    })
    try:
        consumer.assign([TopicPartition(topic, partition, start_offset)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise SinkError(f"timed out reading {topic}[{partition}] from offset {start_offset} to its end "
                                f"(nothing for {timeout:g} s)")
            msgs = consumer.consume(500, 1.0)
            for msg in msgs:
                err = msg.error()
                if err:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    raise SinkError(f"cannot read {topic}[{partition}]: {err.str()}")
                headers = {h[0]: h[1] for h in (msg.headers() or ()) if isinstance(h[1], bytes)}
                seq = headers.get(SEQ_HEADER)
                key, value = msg.key(), msg.value()
                yield TopicMessage(partition, msg.offset() or 0, _as_bytes(key), _as_bytes(value),
                                   headers.get(TASK_HEADER), headers.get(POS_HEADER), int(seq) if seq else 0, headers)
            if msgs:
                deadline = time.monotonic() + timeout
    finally:
        consumer.close()


def _as_bytes(v: str | bytes | None) -> bytes | None:
    return v.encode() if isinstance(v, str) else v

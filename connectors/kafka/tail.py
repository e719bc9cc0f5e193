"""Reading what a Kafka partition already holds past a known offset, to learn the last positions written.

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
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

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

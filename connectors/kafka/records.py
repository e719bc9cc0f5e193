"""What the dataflow hands the Kafka sink: records already encoded and assigned a partition."""

from __future__ import annotations

import zlib
from typing import NamedTuple

from obsync.core.changes import StreamDone
from obsync.core.positions import Position

POS_HEADER = "obsync.pos"
SEQ_HEADER = "obsync.seq"
TASK_HEADER = "obsync.task"


class OutRecord(NamedTuple):
    """One Kafka message with the source position it carries (a named tuple: one is built per message).

    `seq` numbers the messages one change produces (a tombstone after a delete, the delete and insert an
    update of the key becomes), so (position, seq) is unique and ordered within the position's stream.
    """

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    position: Position
    seq: int = 0
    commit_time: float | None = None
    headers: tuple[tuple[str, bytes], ...] | None = None  # besides the position headers (large messages)


OutItem = OutRecord | StreamDone


def part_name(topic: str, partition: int) -> str:
    """A Kafka partition's name in sink state ('#' never occurs in a topic name)."""
    return f"{topic}#{partition:05d}"


def parse_part_name(name: str) -> tuple[str, int]:
    topic, _, p = name.rpartition("#")
    return topic, int(p)


DEFAULT_LANES = 16


def lane_names(lanes: int) -> list[str]:
    """The sink parts of a task: a fixed number of lanes, each writing a stable share of the partitions.

    Lanes rather than one part per Kafka partition, because Bytewax fixes a sink's parts when the
    dataflow starts, while a task's topics grow with tables created as it runs."""
    return [f"lane{i:03d}" for i in range(lanes)]


def lane_of(topic: str, partition: int, lanes: int) -> str:
    """The lane that writes a Kafka partition (stable across runs and processes): a topic's partitions take
    consecutive lanes from one picked by the crc32 of its name, so they are spread over as many lanes, and so
    workers, as they can be (Bytewax gives consecutive sink parts to different workers)."""
    return f"lane{(zlib.crc32(topic.encode()) + partition) % lanes:03d}"

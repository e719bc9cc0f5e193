"""What the dataflow hands the Kafka sink: records already encoded and assigned a partition."""

from __future__ import annotations

from typing import NamedTuple, Union

from obsync.changes import StreamDone
from obsync.positions import Position

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


OutItem = Union[OutRecord, StreamDone]


def part_name(topic: str, partition: int) -> str:
    """The sink part of a Kafka partition ('#' never occurs in a topic name)."""
    return f"{topic}#{partition:05d}"


def parse_part_name(name: str) -> tuple[str, int]:
    topic, _, p = name.rpartition("#")
    return topic, int(p)

"""The one interface every message format implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from obsync.changes import Change


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One Kafka message before partitioning: the sink adds position headers and the partition."""

    topic: str
    key: bytes | None
    value: bytes | None  # None is a tombstone


class Encoder(ABC):
    """Turns one change into the Kafka messages of a format (usually one; more for tombstones etc.)."""

    name: str

    @abstractmethod
    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        """The messages for `change`, all for `topic`, in the order they must be written."""

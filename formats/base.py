"""The one interface every message format implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, NamedTuple

from obsync.core.changes import Change
from obsync.core.errors import ConfigError


class KafkaRecord(NamedTuple):
    """One Kafka message before partitioning: the sink adds position headers and the partition.
    (A named tuple: one is built per message, and tuples are much cheaper than frozen dataclasses.)"""

    topic: str
    key: bytes | None
    value: bytes | None  # None is a tombstone


@dataclass(frozen=True, slots=True)
class EncoderContext:
    """What every encoder is built with, besides its own `format_options`."""

    task_name: str
    db_type: str  # "OB_MYSQL" for OceanBase, "MYSQL" for MySQL/MariaDB


class Encoder(ABC):
    """Turns one change into the Kafka messages of a format (usually one; more for tombstones etc.).

    A format module registers a factory `f(ctx: EncoderContext, **format_options) -> Encoder` with
    `formats.registry.register(name)`; the factory validates its options and raises `ConfigError` naming
    `format_options.<key>` for a bad one.
    """

    name: str
    # True when the Kafka key of each row record is `obsync.steps.partitioning.partition_key(change)` byte for
    # byte (the Default format's keys): the router then hashes the record's key instead of building it again
    key_is_partition_key: bool = False

    @abstractmethod
    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        """The messages for `change`, in the order they must be written.

        Records normally go to `topic` (the table's topic; for DDL, each topic the DDL is delivered to). A
        record may name another topic the format owns (a schema-change topic, say): it must be listed by
        `extra_topics()`, and is partitioned by the hash of its key (partition 0 without a key).
        """

    def extra_topics(self) -> list[str]:
        """Topics besides the tables' topics this encoder writes to (created with the task's topics)."""
        return []


def reject_unknown_options(format_name: str, options: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    """Raise a ConfigError naming the first `format_options` key the format does not know."""
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"field `format_options.{unknown[0]}`: unknown option of format {format_name}; "
                          f"valid: {', '.join(valid) or '(none)'}")

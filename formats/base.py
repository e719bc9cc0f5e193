"""The one interface every message format implements, and what every encoder shares.

- `Encoder`: a change in, the format's Kafka records out (`encode`); its opening is shared (`ChangeEncoder`):
  DDL and heartbeats go to `encode_ddl` / `encode_heartbeat` (nothing by default), every other change must name
  its table and goes to `encode_row`.
- `TableCache`: what an encoder computes once per table (render plans, schemas, serialized fragments), kept by
  table schema and bounded.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.schema import TableSchema

R = TypeVar("R")
T = TypeVar("T")
_MISSING: Any = object()


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
    schema_changes: str = "evolve"  # the task's schema_changes.policy (the avro format's `compatible`)


class ChangeEncoder(Generic[R]):
    """The opening every encoder shares: `encode` sends a DDL statement to `encode_ddl`, a heartbeat to
    `encode_heartbeat` (both give nothing unless overridden) and any other change, which must name its table
    (ValueError otherwise), to `encode_row` with that table."""

    def encode(self, change: Change, topic: str) -> list[R]:
        op = change.op
        if op is Op.DDL:
            return self.encode_ddl(change, topic)
        if op is Op.HEARTBEAT:
            return self.encode_heartbeat(change, topic)
        table = change.table
        if table is None:
            raise ValueError(f"{op.value} change at {change.position} has no table")
        return self.encode_row(change, table, topic)

    def encode_ddl(self, change: Change, topic: str) -> list[R]:
        return []

    def encode_heartbeat(self, change: Change, topic: str) -> list[R]:
        return []

    def encode_row(self, change: Change, table: TableSchema, topic: str) -> list[R]:
        """A row change (INSERT, READ, UPDATE, DELETE) of `table`; ValueError for any other op."""
        raise NotImplementedError(f"{type(self).__name__} does not encode row changes")


class Encoder(ChangeEncoder[KafkaRecord], ABC):
    """Turns one change into the Kafka messages of a format (usually one; more for tombstones etc.).

    `encode(change, topic)` gives the messages for `change`, in the order they must be written. Records
    normally go to `topic` (the table's topic; for DDL, each topic the DDL is delivered to). A record may name
    another topic the format owns (a schema-change topic, say): it must be listed by `extra_topics()`, and is
    partitioned by the hash of its key (partition 0 without a key). A format implements the `encode_*` parts
    (`ChangeEncoder`).

    A format module registers a factory `f(ctx: EncoderContext, **format_options) -> Encoder` with
    `formats.registry.register(name)`; the factory validates its options and raises `ConfigError` naming
    `format_options.<key>` for a bad one.
    """

    name: str
    # True when the Kafka key of each row record is `obsync.steps.partitioning.partition_key(change)` byte for
    # byte (the Default format's keys): the router then hashes the record's key instead of building it again
    key_is_partition_key: bool = False

    def extra_topics(self) -> list[str]:
        """Topics besides the tables' topics this encoder writes to (created with the task's topics)."""
        return []

    def row_records_elsewhere(self) -> bool:
        """True when encoding a row change may give records for a topic other than the table's that
        `records_elsewhere_now` cannot tell beforehand: such row changes are then encoded where the log is read,
        never by the worker of their partition's lane (`obsync.steps.routing.Router.spreads`)."""
        return False

    def records_elsewhere_now(self, change: Change, topic: str) -> bool:
        """True when encoding the row change `change` in this process now would also give records for a topic
        other than the table's (a schema this process has not written yet, `avro` without a registry):
        `Router.pick` then encodes that change where the log is read, as `route` would, and the changes after it
        on their lanes' workers with `encode_on_lane`."""
        return False

    def encode_on_lane(self, change: Change, topic: str) -> list[KafkaRecord]:
        """`encode` on the worker of the lane of the change's partition (`Router.expand`): without the records
        for other topics that `records_elsewhere_now` had written where the log is read."""
        return self.encode(change, topic)

    def records_outweigh_rows(self) -> bool:
        """True when a row's records are many times its values in size (each carries a schema): a cluster's full
        sync then sends its rows to the processes writing their partitions and encodes them there, as the log's
        (`obsync.steps.routing.Router.crosses_rows`). False: a row is encoded where it is read, so that encoding
        follows the chunks, spread evenly, rather than the partitions (docs/performance.md)."""
        return False

    def snapshot_ddl(self) -> bool:
        """True when the format wants each table's CREATE TABLE (SHOW CREATE TABLE at planning) as a DDL
        change before the table's full-sync rows, as Debezium's snapshot writes its schema events."""
        return False


def reject_unknown_options(format_name: str, options: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    """Raise a ConfigError naming the first `format_options` key the format does not know."""
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"field `format_options.{unknown[0]}`: unknown option of format {format_name}; "
                          f"valid: {', '.join(valid) or '(none)'}")


class TableCache(Generic[T]):
    """Values computed once per table by `build(schema)`: found by the schema object (one dict lookup), else
    by an equal schema (equal copies share one value), at most `limit` of each, then started afresh."""

    __slots__ = ("_build", "_limit", "_by_id", "_by_value")

    def __init__(self, build: Callable[[TableSchema], T], limit: int = 4096) -> None:
        self._build = build
        self._limit = limit
        self._by_id: dict[int, tuple[TableSchema, T]] = {}
        self._by_value: dict[TableSchema, T] = {}

    def get(self, schema: TableSchema) -> T:
        hit = self._by_id.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        by_value = self._by_value
        value = by_value.get(schema, _MISSING)
        if value is _MISSING:
            if len(by_value) >= self._limit:
                by_value.clear()
            value = by_value[schema] = self._build(schema)
        if len(self._by_id) >= self._limit:
            self._by_id.clear()
        self._by_id[id(schema)] = (schema, value)  # holding `schema` keeps its id from being reused
        return value

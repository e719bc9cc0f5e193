"""Which partition a row change goes to: the partition key of every rule, in one place (the router's).

- `hash`: Kafka's default partitioner (murmur2, `obsync.connectors.kafka.partitioner`) over the change's partition
  key (`partition_key`): the JSON array of its message key values (`TableSchema.message_key_columns`: the
  sharding columns, else the primary key, else a non-null unique key), rendered as the OMS-style formats render
  key values (`obsync.formats.values.json_key`: `[42]`, `["a",7]`); for a table without any, the JSON of the
  row image (`row_image_key`). The key does not depend on the message format, so changing the format never
  moves a row to another partition.
- `table`: the same partitioner over `db.table` (`table_key`).
- `one`: the task's fixed partition.

A format's Kafka key is the format's own; it may be these very bytes (the Default format's is), which an
encoder declares with `Encoder.key_is_partition_key` so that the router hashes its record's key rather than
building the same bytes twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from obsync.connectors.kafka.partitioner import partition_for
from obsync.core.changes import Change
from obsync.core.schema import TableSchema
from obsync.formats.values import json_key, key_render_function, table_renderer

KeyBytes = Callable[[Change], "bytes | None"]

__all__ = ["KeyBytes", "hash_partition", "int_key_column", "partition_key", "row_image_key", "table_key"]


def partition_key(change: Change) -> bytes | None:
    """The bytes the Hash rule hashes for a row change (the JSON array of its message key values), or None when
    its table has no message key columns (then `row_image_key` is hashed)."""
    table = change.table
    if table is None:
        return None
    values = table_renderer(table).message_key_values
    if values is None:
        return None
    row = change.after if change.after is not None else change.before
    assert row is not None
    return json_key(values(row))


def int_key_column(table: TableSchema) -> str | None:
    """The message key column of a table keyed by one integer column: `partition_key` of a change whose value
    there is an int `v` is then `b"[%d]" % v` (what `json_key` writes). None for any other table."""
    cols = table.message_key_columns
    if len(cols) != 1:
        return None
    return cols[0] if key_render_function(table.column(cols[0])) is int else None


def row_image_key(change: Change) -> bytes:
    """The Hash rule's key for a table without any key: the row image that identifies the row (the before image,
    else the after image) as JSON, keys sorted."""
    row = change.before if change.before is not None else change.after
    return json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode()


def table_key(db: str, table: str) -> bytes:
    """The Table rule's key: `db.table`."""
    return f"{db}.{table}".encode()


# the partition of `key` among `partitions` (Kafka's default partitioner): `partition_for` itself, no extra call
hash_partition: Callable[[bytes, int], int] = partition_for

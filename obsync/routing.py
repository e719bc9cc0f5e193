"""From change batches to per-partition record batches: encode, choose the partition, fan out DDL.

This is the engine-free core of the dataflow's "encode" step. An update that changes the row's key becomes
a delete of the old key and an insert of the new one, so every change of one key lands in one partition,
in commit order. Snapshot completion markers are broadcast to every partition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from connectors.kafka.partitioner import murmur2, partition_for
from connectors.kafka.records import OutItem, OutRecord, part_name
from formats.base import Encoder
from obsync.changes import Change, Item, Op, StreamDone

Partitioning = Literal["hash", "table", "one"]
KeyBytes = Callable[[Change], bytes | None]


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Which topic each table goes to, and how many partitions each topic has."""

    topic_of: dict[tuple[str, str], str]
    partitions: dict[str, int]

    def parts(self) -> list[str]:
        """Every Kafka partition of every topic, as sink part names."""
        return sorted(part_name(t, p) for t, n in self.partitions.items() for p in range(n))


def split_key_change(change: Change) -> list[Change]:
    """An UPDATE whose key changed becomes DELETE(old) + INSERT(new); anything else is left alone."""
    if change.op is not Op.UPDATE or change.table is None or not change.table.key_columns:
        return [change]
    cols = change.table.key_columns
    assert change.before is not None and change.after is not None
    if all(change.before[c] == change.after[c] for c in cols):
        return [change]
    return [replace(change, op=Op.DELETE, after=None), replace(change, op=Op.INSERT, before=None)]


class Router:
    """Encodes changes and groups the records by the sink part (Kafka partition) they belong to."""

    def __init__(self, encoder: Encoder, layout: TopicLayout, partitioning: Partitioning,
                 key_bytes: KeyBytes, fixed_partition: int = 0, send_ddl: bool = False) -> None:
        self.encoder = encoder
        self.layout = layout
        self.partitioning = partitioning
        self.key_bytes = key_bytes
        self.fixed_partition = fixed_partition
        self.send_ddl = send_ddl
        self.all_parts = layout.parts()
        self.key_is_record_key = encoder.name == "default"

    def route(self, batch: Sequence[Item]) -> list[tuple[str, list[OutItem]]]:
        """One (part, records) pair per sink part touched by the batch, records in batch order."""
        out: dict[str, list[OutItem]] = {}
        for item in batch:
            if isinstance(item, StreamDone):
                for p in self.all_parts:
                    out.setdefault(p, []).append(item)
                continue
            if item.op is Op.DDL:
                if self.send_ddl:
                    self._route_ddl(item, out)
                continue
            seq = 0
            for change in split_key_change(item):
                topic = self.layout.topic_of[(change.table.db, change.table.name)]  # type: ignore[union-attr]
                records = self.encoder.encode(change, topic)
                partition = self._partition(change, topic, records[0].key if records else None)
                name = part_name(topic, partition)
                bucket = out.get(name)
                if bucket is None:
                    bucket = out[name] = []
                for rec in records:
                    if rec.topic == topic:
                        bucket.append(OutRecord(topic, partition, rec.key, rec.value, change.position, seq,
                                                change.commit_time))
                    else:
                        self._add_to_own_topic(rec, change, seq, out)
                    seq += 1
        return list(out.items())

    def _partition(self, change: Change, topic: str, record_key: bytes | None) -> int:
        n = self.layout.partitions[topic]
        if self.partitioning == "one":
            return self.fixed_partition % n
        table = change.table
        assert table is not None
        if self.partitioning == "table":
            return partition_for(f"{table.db}.{table.name}".encode(), n)
        # The Default format's message key *is* the partition key: no need to build it twice.
        key = record_key if self.key_is_record_key else self.key_bytes(change)
        if key is None:  # no key: whole-row hash (the image that identifies the row)
            row = change.before if change.before is not None else change.after
            key = json.dumps(row, sort_keys=True, default=str, ensure_ascii=False).encode()
        return (murmur2(key) & 0x7FFFFFFF) % n

    def _route_ddl(self, change: Change, out: dict[str, list[OutItem]]) -> None:
        """DDL placement per FORMATS.md: by rule, to the named tables' topics (or all the task's topics)."""
        named = [self.layout.topic_of[t] for t in change.ddl_tables if t in self.layout.topic_of]
        topics = sorted(set(named)) if named else sorted(self.layout.partitions)
        seq = 0
        for topic in topics:
            n = self.layout.partitions[topic]
            if self.partitioning == "hash" or not named:
                targets: Any = list(range(n)) if self.partitioning != "one" else [self.fixed_partition % n]
            elif self.partitioning == "table":
                targets = sorted({partition_for(f"{db}.{t}".encode(), n) for db, t in change.ddl_tables
                                  if self.layout.topic_of.get((db, t)) == topic})
            else:
                targets = [self.fixed_partition % n]
            for p in targets:
                for rec in self.encoder.encode(change, topic):
                    if rec.topic == topic:
                        out.setdefault(part_name(topic, p), []).append(
                            OutRecord(topic, p, rec.key, rec.value, change.position, seq, change.commit_time))
                    elif p == targets[0]:  # the format's own topic (schema changes) gets it once
                        self._add_to_own_topic(rec, change, seq, out)
                    seq += 1

    def _add_to_own_topic(self, rec: Any, change: Change, seq: int, out: dict[str, list[OutItem]]) -> None:
        """A record for a topic of the format's own (see `Encoder.extra_topics`): partitioned by its key."""
        n = self.layout.partitions[rec.topic]
        p = (murmur2(rec.key) & 0x7FFFFFFF) % n if rec.key is not None else 0
        out.setdefault(part_name(rec.topic, p), []).append(
            OutRecord(rec.topic, p, rec.key, rec.value, change.position, seq, change.commit_time))

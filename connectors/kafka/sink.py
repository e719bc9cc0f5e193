"""The partition-aware Kafka sink: one Bytewax sink part per Kafka (topic, partition).

Delivery guarantee: every record reaches Kafka exactly once per task, in the order it arrived, as long as
no other writer forges this task's headers. Each part remembers, per stream (the log, or one snapshot
chunk), the last (position, seq) it wrote. Its Bytewax snapshot is taken only after the producer has
flushed, so the snapshot never claims a write Kafka has not acknowledged; on resume the part also reads
its Kafka partition from the snapshotted offset to the end, learning the writes made after the last
snapshot. Anything at or before the last written position of its stream is then dropped, so the records
Bytewax replays after a crash are not written twice. Delivery errors are raised, never dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.kafka.records import (
    POS_HEADER,
    SEQ_HEADER,
    TASK_HEADER,
    OutItem,
    OutRecord,
    parse_part_name,
)
from connectors.kafka.tail import written_positions
from obsync.changes import StreamDone
from obsync.errors import SinkError
from obsync.positions import Position, position_from_json, position_to_header
from obsync.progress import Progress

log = logging.getLogger(__name__)

_SEQ_BYTES = [str(i).encode() for i in range(16)]
SinkState = dict[str, Any]  # {"offset": int, "last": {stream: [position json, seq]}, "done": [stream]}


class _SharedProducer:
    """One idempotent producer per process, shared by the parts it hosts; delivery reports go to the part."""

    _instances: dict[tuple, _SharedProducer] = {}
    _lock = threading.Lock()

    def __init__(self, conf: dict[str, Any]) -> None:
        self.parts: dict[tuple[str, int], _KafkaPartition] = {}
        self.producer = Producer({
            "enable.idempotence": True,  # no duplicates or reordering from retries
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 65536,  # bounds memory held in the producer
            "logger": logging.getLogger("obsync.rdkafka"),  # librdkafka's own log lines, via logging
            **conf,
            "on_delivery": self._on_delivery,
        })

    @classmethod
    def get(cls, conf: dict[str, Any]) -> _SharedProducer:
        key = tuple(sorted((k, str(v)) for k, v in conf.items()))
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(conf)
            return cls._instances[key]

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        part = self.parts.get((msg.topic(), msg.partition()))
        if part is None:
            return
        if err is not None:
            if part.error is None:
                part.error = SinkError(f"write to {msg.topic()}[{msg.partition()}] failed: {err.str()}")
        elif msg.offset() >= part.next_offset:
            part.next_offset = msg.offset() + 1

    def produce(self, rec: OutRecord, headers: list[tuple[str, bytes]]) -> None:
        while True:
            try:
                self.producer.produce(rec.topic, rec.value, rec.key, partition=rec.partition, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.1)  # queue full: serve delivery reports, then retry
            except KafkaException as e:
                raise SinkError(f"cannot write to {rec.topic}[{rec.partition}]: {e.args[0].str()}") from None

    def flush(self) -> None:
        remaining = self.producer.flush(120)
        if remaining:
            raise SinkError(f"{remaining} messages were not acknowledged by Kafka within 120 s")


@dataclass
class _KafkaPartition(StatefulSinkPartition[list[OutItem], SinkState]):
    topic: str
    partition: int
    task_id: str
    shared: _SharedProducer
    required_streams: frozenset[str]
    on_delivered: Callable[[], None]
    progress: Progress
    next_offset: int = 0
    # stream -> ((position.sort_key, seq), position): the last record written of each stream
    last: dict[str, tuple[tuple, Position]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    error: SinkError | None = None
    gate_open: bool = False

    def _seen(self, pos: Position, seq: int) -> bool:
        """True if (pos, seq) is at or before the last record written of its stream; else records it."""
        stream = pos.stream
        key = (pos.sort_key, seq)
        prev = self.last.get(stream)
        if prev is not None and key <= prev[0]:
            return True
        self.last[stream] = (key, pos)
        return False

    def write_batch(self, values: list[list[OutItem]]) -> None:
        task = self.task_id.encode()
        seen = self._seen
        produce = self.shared.produce
        written = skipped = size = 0
        last_rec = None
        for items in values:
            for it in items:
                if it.__class__ is StreamDone:
                    self.done.add(it.stream)  # type: ignore[union-attr]
                    continue
                pos = it.position  # type: ignore[union-attr]
                if seen(pos, it.seq):  # type: ignore[union-attr]
                    skipped += 1
                    continue
                seq = it.seq  # type: ignore[union-attr]
                produce(it, [(TASK_HEADER, task), (POS_HEADER, position_to_header(pos)),  # type: ignore[arg-type]
                             (SEQ_HEADER, _SEQ_BYTES[seq] if seq < 16 else str(seq).encode())])
                written += 1
                size += len(it.value or b"")  # type: ignore[union-attr]
                last_rec = it
        self.shared.producer.poll(0)
        if written:
            self.progress.wrote(last_rec, written, size)
        if skipped:
            self.progress.skipped(skipped)
            log.debug("%s[%d]: dropped %d records already written", self.topic, self.partition, skipped)
        if self.error:
            raise self.error
        if not self.gate_open and self.required_streams <= self.done:
            self.shared.flush()
            self._raise_error()
            self.gate_open = True
            self.on_delivered()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def snapshot(self) -> SinkState:
        self.shared.flush()
        self._raise_error()
        return {
            "offset": self.next_offset,
            "last": {s: [pos.to_json(), key[1]] for s, (key, pos) in self.last.items()},
            "done": sorted(self.done),
        }

    def close(self) -> None:
        self.shared.flush()
        self._raise_error()


class KafkaSink(FixedPartitionedSink[list[OutItem], SinkState]):
    """Writes each (part, records) item to the part's Kafka partition, dropping replays by position.

    `parts` are the names `records.part_name(topic, partition)` of every partition of every topic of the
    task; the flow routes each record to its part by that name, so `part_fn` is the index of the name.
    `required_streams` are the snapshot chunks' streams: once a part has received the `StreamDone` of
    each, and flushed, `on_delivered(part)` is called (the log source waits for every part).
    """

    def __init__(self, target_conf: dict[str, Any], parts: list[str], task_id: str,
                 required_streams: frozenset[str], on_delivered: Callable[[str], None],
                 progress: Progress) -> None:
        self._conf = target_conf
        self._parts = sorted(parts)
        self._index = {p: i for i, p in enumerate(self._parts)}
        self._task_id = task_id
        self._required = required_streams
        self._on_delivered = on_delivered
        self._progress = progress

    def list_parts(self) -> list[str]:
        return self._parts

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState | None) -> _KafkaPartition:
        topic, partition = parse_part_name(for_part)
        shared = _SharedProducer.get(self._conf)
        part = _KafkaPartition(topic, partition, self._task_id, shared, self._required,
                               lambda: self._on_delivered(for_part), self._progress)
        state = resume_state or {"offset": 0, "last": {}, "done": []}
        for stream, (pos_json, seq) in state["last"].items():
            pos = position_from_json(pos_json)
            part.last[stream] = ((pos.sort_key, seq), pos)
        part.done = set(state["done"])
        part.next_offset = state["offset"]
        # Writes after the last snapshot are in Kafka but not in the state: read them back.
        found = 0
        for offset, pos, seq in written_positions(self._conf, topic, partition, part.next_offset, self._task_id):
            part._seen(pos, seq)
            part.next_offset = offset + 1
            found += 1
        if found:
            log.info("%s[%d]: %d messages written after the last snapshot found in Kafka; they will not be "
                     "written again", topic, partition, found)
        if self._required <= part.done:
            part.gate_open = True
            part.on_delivered()
        shared.parts[(topic, partition)] = part
        return part

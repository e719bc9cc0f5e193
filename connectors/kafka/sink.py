"""The partition-aware Kafka sink: a fixed set of lanes (Bytewax sink parts), each writing a stable share of
the task's Kafka partitions (`records.lane_of`), so topics of tables created while the task runs find a lane.

Delivery guarantee: every record reaches Kafka exactly once per task, in the order it arrived, as long as
no other writer forges this task's headers. For each Kafka partition it writes, a lane remembers, per stream
(the log, or one snapshot chunk), the last (position, seq) it wrote. Its Bytewax snapshot is taken only
after the producer has flushed, so the snapshot never claims a write Kafka has not acknowledged; on resume
(and when it first meets a partition) the lane also reads the partition from the snapshotted offset (0 for a
partition new to it) to the end, learning the writes made after the last snapshot. Anything at or before the
last written position of its stream is then dropped, so the records Bytewax replays after a crash are not
written twice. Delivery errors are raised, never dropped.

Streams that a run never replays but rescans under positions after everything written before (snapshot chunks
of tables without a key on MySQL/MariaDB, `rescanned_streams`) have nothing to drop: a record of one at or
before the last position written is an error (the rescan's rows are other rows), never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer

from obsync.connectors.kafka.records import (
    POS_HEADER,
    SEQ_HEADER,
    TASK_HEADER,
    OutItem,
    OutRecord,
    parse_part_name,
    part_name,
)
from obsync.connectors.kafka.tail import written_positions
from obsync.core.changes import StreamDone
from obsync.core.errors import SinkError, StateError
from obsync.core.listeners import NOOP_SINK_LISTENER, SinkListener
from obsync.core.positions import Position, position_from_json, position_to_header

log = logging.getLogger(__name__)

_SEQ_BYTES = [str(i).encode() for i in range(16)]
SinkState = dict[str, Any]  # {"partitions": {"topic#p": {"offset", "last": {stream: [pos, seq]}}}, "done": [...]}


class _SharedProducer:
    """One idempotent producer per process, shared by the parts it hosts; delivery reports go to the part."""

    _instances: dict[tuple, _SharedProducer] = {}
    _lock = threading.Lock()

    def __init__(self, conf: dict[str, Any], tuning: dict[str, Any] | None = None) -> None:
        self.parts: dict[tuple[str, int], _Written] = {}
        self.producer = Producer({
            "enable.idempotence": True,  # no duplicates or reordering from retries
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 65536,  # bounds memory held in the producer
            "logger": logging.getLogger("obsync.rdkafka"),  # librdkafka's own log lines, via logging
            **(tuning or {}),  # from the task's resources (`obsync.task.resources`)
            **conf,  # the user's target.properties win
            "on_delivery": self._on_delivery,
        })

    @classmethod
    def get(cls, conf: dict[str, Any], tuning: dict[str, Any] | None = None) -> _SharedProducer:
        key = tuple(sorted((k, str(v)) for k, v in {**(tuning or {}), **conf}.items()))
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(conf, tuning)
            return cls._instances[key]

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        w = self.parts.get((msg.topic(), msg.partition()))
        if w is None:
            return
        if err is not None:
            if w.lane.error is None:
                w.lane.error = SinkError(f"write to {msg.topic()}[{msg.partition()}] failed: {err.str()}")
        else:
            # None when the acknowledgement carries no offset (seen after the broker restarted mid-batch: the
            # idempotent producer's retry is acknowledged as already written). The resume offset then stays where
            # it was: reading the partition from an earlier offset on resume only reads more.
            offset = msg.offset()
            if offset is not None and offset >= w.next_offset:
                w.next_offset = offset + 1
            w.lane.listener.acked(msg.topic(), len(msg))

    def produce(self, rec: OutRecord, headers: list[tuple[str, str | bytes | None]]) -> None:
        """Write `rec` with `headers` (typed as the producer takes them: its list type is invariant)."""
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
class _Written:
    """What a lane knows it wrote to one Kafka partition."""

    topic: str
    partition: int
    lane: _Lane
    next_offset: int = 0
    # stream -> ((position.sort_key, seq), position): the last record written of each stream
    last: dict[str, tuple[tuple, Position]] = field(default_factory=dict)

    def seen(self, pos: Position, seq: int) -> bool:
        """True if (pos, seq) is at or before the last record written of its stream; else records it."""
        stream = pos.stream
        key = (pos.sort_key, seq)
        prev = self.last.get(stream)
        if prev is not None and key <= prev[0]:
            return True
        self.last[stream] = (key, pos)
        return False

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.next_offset,
                "last": {s: [pos.to_json(), key[1]] for s, (key, pos) in self.last.items()}}


@dataclass
class _Lane(StatefulSinkPartition[list[OutItem], SinkState]):
    name: str
    task_id: str
    conf: dict[str, Any]
    shared: _SharedProducer
    required_streams: frozenset[str]
    on_delivered: Callable[[], None]
    listener: SinkListener
    written: dict[tuple[str, int], _Written] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    error: SinkError | None = None
    gate_open: bool = False
    rescanned: frozenset[str] = frozenset()  # streams never replayed (see the module docstring)

    def open(self, topic: str, partition: int, state: dict[str, Any] | None = None) -> _Written:
        """Start writing a partition: restore its state, then learn what Kafka holds past its offset."""
        w = _Written(topic, partition, self)
        if state is not None:
            w.next_offset = state["offset"]
            for stream, (pos_json, seq) in state["last"].items():
                pos = position_from_json(pos_json)
                w.last[stream] = ((pos.sort_key, seq), pos)
        found = 0
        for offset, pos, seq in written_positions(self.conf, topic, partition, w.next_offset, self.task_id):
            w.seen(pos, seq)
            w.next_offset = offset + 1
            found += 1
        if found:
            log.info("%s[%d]: %d messages written after the last snapshot found in Kafka; they will not be "
                     "written again", topic, partition, found)
        self.written[(topic, partition)] = w
        self.shared.parts[(topic, partition)] = w
        return w

    def write_batch(self, values: list[list[OutItem]]) -> None:
        task = self.task_id.encode()
        produce = self.shared.produce
        written = self.written
        written_n = skipped = size = 0
        last_rec = None
        for items in values:
            for it in items:
                if isinstance(it, StreamDone):
                    self.done.add(it.stream)
                    continue
                w = written.get((it.topic, it.partition))
                if w is None:
                    w = self.open(it.topic, it.partition)
                pos = it.position
                seq = it.seq
                if w.seen(pos, seq):
                    if self.rescanned and pos.stream in self.rescanned:
                        raise self._not_after(w, pos)
                    skipped += 1
                    continue
                headers: list[tuple[str, str | bytes | None]] = [
                    (TASK_HEADER, task), (POS_HEADER, position_to_header(pos)),
                    (SEQ_HEADER, _SEQ_BYTES[seq] if seq < 16 else str(seq).encode())]
                if it.headers:
                    headers.extend(it.headers)
                produce(it, headers)
                written_n += 1
                size += len(it.value or b"")
                last_rec = it
        self.shared.producer.poll(0)
        if written_n:
            self.listener.wrote(cast(OutRecord, last_rec), written_n, size)  # the last record written
        if skipped:
            self.listener.skipped(skipped)
            log.debug("%s: dropped %d records already written", self.name, skipped)
        if self.error:
            raise self.error
        if not self.gate_open and self.required_streams <= self.done:
            self.shared.flush()
            self._raise_error()
            self.gate_open = True
            self.on_delivered()

    def _not_after(self, w: _Written, pos: Position) -> SinkError:
        last = w.last[pos.stream][1]
        return SinkError(
            f"{w.topic}[{w.partition}]: the rescan of {pos.stream} writes position {pos}, not after {last} that "
            "an earlier run wrote; a rescan of a table without a key numbers its attempt by the time it starts, "
            "so this host's clock is behind the one that ran before: correct the clock and start the task "
            "again (nothing was dropped)")

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def snapshot(self) -> SinkState:
        self.shared.flush()
        self._raise_error()
        return {
            "partitions": {part_name(t, p): w.to_json() for (t, p), w in sorted(self.written.items())},
            "done": sorted(self.done),
        }

    def close(self) -> None:
        self.shared.flush()
        self._raise_error()


class KafkaSink(FixedPartitionedSink[list[OutItem], SinkState]):
    """Writes each (lane, records) item to the records' Kafka partitions, dropping replays by position.

    `lanes` are the task's sink parts (`records.lane_names`); the flow routes each record to the lane of
    its partition (`records.lane_of`). `required_streams` are the snapshot chunks' streams: once a lane has
    received the `StreamDone` of each, and flushed, `on_delivered(lane)` is called (the log source waits
    for every lane). `listener` hears what is written, dropped and acknowledged (`obsync.core.listeners`).
    `rescanned_streams`: streams whose replays come under new positions, never dropped (module docstring).
    """

    def __init__(self, target_conf: dict[str, Any], lanes: list[str], task_id: str,
                 required_streams: frozenset[str], on_delivered: Callable[[str], None],
                 listener: SinkListener = NOOP_SINK_LISTENER, producer_conf: dict[str, Any] | None = None,
                 rescanned_streams: frozenset[str] = frozenset()) -> None:
        self._conf = target_conf
        self._tuning = producer_conf or {}  # producer settings from the task's resources
        self._lanes = sorted(lanes)
        self._index = {p: i for i, p in enumerate(self._lanes)}
        self._task_id = task_id
        self._required = required_streams
        self._on_delivered = on_delivered
        self._listener = listener
        self._rescanned = rescanned_streams
        listener.use_acks()  # messages and bytes written are counted when Kafka acknowledges them

    def list_parts(self) -> list[str]:
        return self._lanes

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState | None) -> _Lane:
        shared = _SharedProducer.get(self._conf, self._tuning)
        lane = _Lane(for_part, self._task_id, self._conf, shared, self._required,
                     lambda: self._on_delivered(for_part), self._listener, rescanned=self._rescanned)
        state = resume_state or {"partitions": {}, "done": []}
        if "partitions" not in state:
            raise StateError(f"sink state of {for_part} was written by an older obsync (one part per Kafka "
                             "partition); start the task with a new state directory")
        for name, w_state in state["partitions"].items():
            lane.open(*parse_part_name(name), w_state)
        lane.done = set(state["done"])
        if self._required <= lane.done:
            lane.gate_open = True
            lane.on_delivered()
        return lane

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

A lane's items are lists of records (`records.RecordBatch`: they cross processes packed), or work its `expand`
turns into them on the lane's worker (the log's row changes, encoded there rather than where the log is read:
`obsync.steps.routing.Router.expand`).

Acknowledged but not kept: an acknowledgement without an offset (the idempotent producer's retry answered as a
duplicate of a write the broker already holds; seen after tansu restarted) is taken on trust by librdkafka.
The lane does not: it records each such message (`_Written.unverified`) and, before its snapshot completes
and before it marks its full sync delivered, reads the partition from the last snapshot's offset to check they
are there (`_Lane._check_unverified`). If any is missing the lane fails with `BrokerFault`, so the task
restarts (`obsync.app.supervisor`) and replays from the last snapshot; what was missing is noted in
`kafka-gaps.json` in the state directory (`gaps.GapFile`) because resuming by "last position written" would
skip it (later messages of its stream are in Kafka): the resumed lane skips exactly the messages Kafka holds,
writes the missing ones, and writes again those of the same message key after a missing one (so a consumer
still sees each key's changes in order; those are the only messages written twice).

Streams that a run never replays but rescans under positions after everything written before (snapshot chunks
of tables without a key on MySQL/MariaDB, `rescanned_streams`) have nothing to drop: a record of one at or
before the last position written is an error (the rescan's rows are other rows), never dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException

from obsync.connectors.kafka.client import idempotent_producer, mask_secrets
from obsync.connectors.kafka.faults import restartable
from obsync.connectors.kafka.gaps import Gap, GapFile, Redo
from obsync.connectors.kafka.records import (
    POS_HEADER,
    SEQ_HEADER,
    TASK_HEADER,
    OutItem,
    OutRecord,
    parse_part_name,
    part_name,
)
from obsync.connectors.kafka.stall import DEFAULT_PATIENCE, STOP_GRACE, AckWatch, BrokerPatience
from obsync.connectors.kafka.tail import written_positions
from obsync.core.changes import StreamDone
from obsync.core.errors import BrokerFault, SinkError, StateError, StopWhileWaiting
from obsync.core.listeners import NOOP_SINK_LISTENER, SinkListener
from obsync.core.positions import Position, position_from_header, position_from_json, position_to_header
from obsync.core.wording import counted

log = logging.getLogger(__name__)

_SEQ_HEADERS = [(SEQ_HEADER, str(i).encode()) for i in range(16)]
_SLICE = 0.5  # s of one slice of waiting for Kafka (then the silence is judged, and a stop request heard)




def _never() -> bool:
    return False


SinkState = dict[str, Any]  # {"partitions": {"topic#p": {"offset", "last": {stream: [pos, seq]}}}, "done": [...]}


class _SharedProducer:
    """One idempotent producer per process, shared by the parts it hosts; delivery reports go to the part.

    Waiting for Kafka (a full queue in `produce`, a `flush`) is done in slices of `_SLICE` s; after each,
    `_watch` (an `AckWatch`) judges the silence: a broker that has acknowledged nothing for `patience.notice`
    s while messages wait is logged (naming the brokers, the messages waiting and librdkafka's last error)
    and told to the listener (`broker_waiting`: status.json, metrics) until acknowledgements resume; after
    `patience.patience` s the wait ends with a `SinkError`. librdkafka keeps retrying (reconnecting with its
    own backoff) meanwhile, and its `message.timeout.ms` is set beyond the patience (`BrokerPatience`), unless
    `target.properties` sets it. A stop (`stopping()` true) ends a wait once nothing was acknowledged for
    `STOP_GRACE` s (`StopWhileWaiting`): the stop needs no acknowledgement, the next start learns from Kafka
    what arrived.
    """

    _instances: dict[tuple, _SharedProducer] = {}
    _lock = threading.Lock()

    def __init__(self, conf: dict[str, Any], tuning: dict[str, Any] | None = None,
                 patience: BrokerPatience = DEFAULT_PATIENCE, known_topic: str | None = None) -> None:
        self.parts: dict[tuple[str, int], _Written] = {}
        self.patience = patience
        self.brokers = str(conf.get("bootstrap.servers", "?"))
        self._conf = conf
        self._watch = AckWatch(patience)
        self.last_error: str | None = None  # librdkafka's last error (error_cb), secrets masked
        self.fatal: KafkaError | None = None  # librdkafka's fatal error (error_cb): the producer writes no more
        self.failed = False  # a part raised an error (the dataflow is ending: `_Lane.close`)
        # partitions whose delivery reports were tallied since the last `fold` (a deque: appended to by the
        # thread serving reports while another may be folding)
        self.unfolded: collections.deque[_Written] = collections.deque()
        self._fold_lock = threading.Lock()
        timeout = ({} if {"message.timeout.ms", "delivery.timeout.ms"} & set(conf)
                   else {"message.timeout.ms": patience.message_timeout_ms()})
        self.producer = idempotent_producer({
            "enable.idempotence": True,  # no duplicates or reordering from retries
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 65536,  # bounds memory held in the producer
            "logger": logging.getLogger("obsync.rdkafka"),  # librdkafka's own log lines, via logging
            **timeout,  # librdkafka never fails a message before the patience runs out
            **(tuning or {}),  # from the task's resources (`obsync.task.resources`)
            **conf,  # the user's target.properties win
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }, known_topic)

    @classmethod
    def get(cls, conf: dict[str, Any], tuning: dict[str, Any] | None = None,
            patience: BrokerPatience = DEFAULT_PATIENCE, known_topic: str | None = None) -> _SharedProducer:
        """The process's producer of `conf` and `tuning`, made on first use (`known_topic`: one that exists, for
        the producer's first metadata requests: `client.idempotent_producer`)."""
        key = (tuple(sorted((k, str(v)) for k, v in {**(tuning or {}), **conf}.items())), patience)
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(conf, tuning, patience, known_topic)
            return cls._instances[key]

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """The delivery report of a message produced without its partition's `_Written.report` (none is)."""
        w = self.parts.get((msg.topic(), msg.partition()))
        if w is not None:
            w.report(err, msg)
        elif err is None:
            self._watch.acked()

    def fold(self) -> None:
        """Count the acknowledgements the partitions' delivery reports tallied since the last fold: their next
        offsets, the listeners' counts (`acked`) and the stall watch. Called before the silence is judged."""
        unfolded = self.unfolded
        acked = 0
        with self._fold_lock:  # lanes in several worker threads: one fold at a time counts each tally once
            while unfolded:
                w = unfolded.popleft()
                w.listed = False  # before reading the counters: a report after this lists the partition again
                n, size, last = w.acks, w.acked_bytes, w.last_acked
                if n == w.folded_acks:
                    continue
                w.lane.listener.acked(w.topic, size - w.folded_bytes, n - w.folded_acks)
                acked += n - w.folded_acks
                w.folded_acks, w.folded_bytes = n, size
                # offset None: an acknowledgement without one (seen after the broker restarted mid-batch: the
                # idempotent producer's retry acknowledged as already written); the resume offset then stays where
                # it was (reading the partition from an earlier offset on resume only reads more)
                offset = None if last is None else last.offset()
                if offset is not None and offset >= w.next_offset:
                    w.next_offset = offset + 1
        if acked:
            self._watch.acked(acked)

    def _delivery_error(self, msg: Any, err: KafkaError) -> SinkError:
        """The error of a failed delivery: a `BrokerFault` (the task restarts by itself) if a new producer
        writes the message (`faults.restartable`), else a `SinkError` (the task fails)."""
        text = f"write to {msg.topic()}[{msg.partition()}] failed: {mask_secrets(err.str(), self._conf)}"
        if restartable(err, self.fatal):
            return BrokerFault(text + self._restart_hint(err))
        if err.code() == KafkaError._MSG_TIMED_OUT:
            text += (" (librdkafka's message.timeout.ms ran out: Kafka did not acknowledge the message in time; "
                     "start the task again to resume from the last saved point, nothing is lost)")
        return SinkError(text)

    def _restart_hint(self, err: KafkaError) -> str:
        cause = self.fatal if err.code() == KafkaError._FATAL and self.fatal is not None else None
        return ((f" (the producer's fatal error: {mask_secrets(cause.str(), self._conf)})" if cause else "")
                + "; a new producer writes it: the task restarts and resumes from the last snapshot")

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's errors (broker down, unreachable, refusing): it retries by itself; kept for the log. A
        fatal error (the producer writes nothing more) is kept to judge the failed writes (`_delivery_error`)."""
        self.last_error = mask_secrets(err.str(), self._conf)
        if err.fatal() and self.fatal is None:
            self.fatal = err
            log.warning("Kafka producer: fatal error %s", self.last_error)

    def produce(self, rec: OutRecord, headers: list[tuple[str, str | bytes | None]],
                listener: SinkListener = NOOP_SINK_LISTENER, stopping: Callable[[], bool] = _never,
                on_delivery: Callable[[KafkaError | None, Any], None] | None = None) -> None:
        """Write `rec` with `headers` (typed as the producer takes them: its list type is invariant); its
        delivery report goes to `on_delivery` (its partition's `_Written.report`), else to `_on_delivery`."""
        while True:
            try:
                self.producer.produce(rec.topic, rec.value, rec.key, partition=rec.partition, headers=headers,
                                      on_delivery=on_delivery or self._on_delivery)
                return
            except BufferError:  # queue full: serve delivery reports, then retry
                self.producer.poll(_SLICE)
                self._judge(len(self.producer), "room in the producer's queue", listener, stopping)
            except KafkaException as e:
                err = e.args[0]
                text = f"cannot write to {rec.topic}[{rec.partition}]: {mask_secrets(err.str(), self._conf)}"
                if restartable(err, self.fatal):
                    raise BrokerFault(text + self._restart_hint(err)) from None
                raise SinkError(text) from None

    def flush(self, listener: SinkListener = NOOP_SINK_LISTENER, stopping: Callable[[], bool] = _never) -> None:
        """Wait until Kafka acknowledged every message produced (or failed it: see the lanes' `error`)."""
        while True:
            remaining = self.producer.flush(_SLICE)
            self._judge(remaining, "acknowledgements", listener, stopping)
            if not remaining:
                return

    def observe(self, listener: SinkListener) -> None:
        """After a batch was produced and delivery reports served: start timing the messages now waiting."""
        self._judge(len(self.producer), "acknowledgements", listener, _never)

    def _judge(self, pending: int, what: str, listener: SinkListener, stopping: Callable[[], bool]) -> None:
        self.fold()
        v = self._watch.observe(pending)
        if v.recovered_after is not None:
            log.info("Kafka (%s) acknowledges again after %.0f s", self.brokers, v.recovered_after)
            listener.broker_waiting(self.brokers, 0, 0.0, None)
        if pending and v.silent_for >= min(self.patience.notice, STOP_GRACE) and stopping():
            msg = (f"stopped while {counted(pending, 'message')} waited for Kafka ({self.brokers}); the next start "
                   "learns from Kafka which arrived")
            log.info("%s", msg)
            raise StopWhileWaiting(msg)
        if not v.stalled:
            return
        error = self.last_error
        patience = self.patience.patience
        if v.give_up:
            listener.broker_waiting(self.brokers, 0, 0.0, None)
            raise SinkError(
                f"Kafka ({self.brokers}) acknowledged nothing for {v.silent_for:.0f} s while "
                f"{counted(pending, 'message')} waited for {what} (target.patience: {patience:g} s); last error "
                "from the client: "
                f"{error or 'none (the brokers are silent)'}. Make the brokers reachable and start the task "
                "again: it resumes from the last saved point, nothing is lost or written twice")
        listener.broker_waiting(self.brokers, pending, v.silent_for, error)
        if v.announce:
            left = "retrying forever" if patience is None else \
                f"retrying until target.patience ({patience:g} s) runs out"
            log.warning("waiting for Kafka (%s): %s not acknowledged for %.0f s (waiting for %s); "
                        "last error: %s; %s", self.brokers, counted(pending, "message"), v.silent_for, what,
                        error or "none (the brokers are silent)", left)


@dataclass(eq=False)
class _Written:
    """What a lane knows it wrote to one Kafka partition.

    `report` is the delivery report of each message written to it: it only tallies (acknowledgements, bytes,
    the last acknowledged message) and lists the partition for `_SharedProducer.fold`, which turns the tallies
    into `next_offset` and the listener's counts once per batch rather than once per message. Reports of one
    partition arrive in offset order, so the last acknowledged message has its highest offset.
    """

    topic: str
    partition: int
    lane: _Lane
    next_offset: int = 0
    # stream -> ((position.sort_key, seq), position): the last record written of each stream
    last: dict[str, tuple[tuple, Position]] = field(default_factory=dict)
    acks: int = 0  # tallied by `report`
    acked_bytes: int = 0
    last_acked: Any = None  # the last acknowledged message (a confluent_kafka.Message)
    listed: bool = False  # in `_SharedProducer.unfolded`
    folded_acks: int = 0  # what `fold` has counted of the tallies
    folded_bytes: int = 0
    # (position header, seq, key) of messages acknowledged without an offset since the last snapshot
    unverified: list[tuple[bytes, int, bytes | None]] = field(default_factory=list)
    snap_offset: int = 0  # `next_offset` when the lane was resumed or last snapshotted (`_Lane.verify`)
    redo: Redo | None = None  # resumed after Kafka lost acknowledged messages: what to write again (`gaps`)
    on_delivery: Callable[[KafkaError | None, Any], None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.on_delivery = self.report  # bound once: handed to the producer with every message

    def report(self, err: KafkaError | None, msg: Any) -> None:
        """The delivery report of a message written to this partition (called by the producer)."""
        if err is None:
            size = len(msg)  # before the tallies: no call between reading and writing them (threads switch at calls)
            self.acks += 1  # the tallies first, then the listing (`fold` clears the listing, then reads them)
            self.acked_bytes += size
            self.last_acked = msg
            if msg.offset() is None:  # taken as written already: checked before the next snapshot (`verify`)
                self._unverified(msg)
        elif self.lane.error is None:
            self.lane.error = self.lane.shared._delivery_error(msg, err)
        if not self.listed:
            self.listed = True
            self.lane.shared.unfolded.append(self)

    def _unverified(self, msg: Any) -> None:
        headers = dict(msg.headers() or ())
        pos = headers.get(POS_HEADER)
        if isinstance(pos, bytes):
            key = msg.key()
            self.unverified.append((pos, int(headers.get(SEQ_HEADER) or b"0"),
                                    key.encode() if isinstance(key, str) else key))

    def seen(self, pos: Position, seq: int, key: bytes | None = None) -> bool:
        """True if (pos, seq) is at or before the last record written of its stream; else records it. After a
        loss (`redo`): True if Kafka holds it and it needs no rewrite (the module docstring)."""
        if self.redo is not None:
            verdict = self.redo.verdict(pos, seq, key)
            if verdict is not None:
                self._advance(pos, seq)
                return verdict
        stream = pos.stream
        here = (pos.sort_key, seq)
        prev = self.last.get(stream)
        if prev is not None and here <= prev[0]:
            return True
        self.last[stream] = (here, pos)
        return False

    def _advance(self, pos: Position, seq: int) -> None:
        key = (pos.sort_key, seq)
        prev = self.last.get(pos.stream)
        if prev is None or key > prev[0]:
            self.last[pos.stream] = (key, pos)

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
    stopping: Callable[[], bool] = _never  # a stop was requested: waits for Kafka end (`_SharedProducer`)
    expand: Callable[[Any], list[OutItem]] | None = None  # an item that is not a list: its records (docstring)
    gaps: GapFile = field(default_factory=lambda: GapFile(None))  # acknowledged messages Kafka lost (`gaps`)

    def _read_tail(self, topic: str, partition: int, since: int) -> Iterator[tuple[int, Position, int]]:
        return written_positions(self.conf, topic, partition, since, self.task_id, patience=self.shared.patience,
                                 listener=self.listener, stopping=self.stopping)

    def open(self, topic: str, partition: int, state: dict[str, Any] | None = None) -> _Written:
        """Start writing a partition: restore its state, then learn what Kafka holds past its offset (waiting for
        a silent Kafka within the patience, as for acknowledgements: `tail.written_positions`)."""
        w = _Written(topic, partition, self)
        if state is not None:
            w.next_offset = state["offset"]
            for stream, (pos_json, seq) in state["last"].items():
                pos = position_from_json(pos_json)
                w.last[stream] = ((pos.sort_key, seq), pos)
        w.snap_offset = since = w.next_offset
        gap = self.gaps.take(part_name(topic, partition), since)
        held: set[tuple[str, tuple, int]] = set()
        found = 0
        for offset, pos, seq in self._read_tail(topic, partition, since):
            if gap is None:
                w.seen(pos, seq)
            else:
                held.add((pos.stream, pos.sort_key, seq))
            w.next_offset = offset + 1
            found += 1
        if found:
            log.info("%s[%d]: %s written after the last snapshot found in Kafka; %s not be written again",
                     topic, partition, counted(found, "message"), "it will" if found == 1 else "they will")
        if gap is not None:
            w.redo = Redo(gap, held)
            log.warning("%s[%d]: Kafka lost %s it had acknowledged after the last snapshot; writing %s again, and "
                        "the messages of the same keys after them", topic, partition,
                        counted(len(gap.missing), "message"), "it" if len(gap.missing) == 1 else "them")
        self.written[(topic, partition)] = w
        self.shared.parts[(topic, partition)] = w
        return w

    def write_batch(self, values: list[Any]) -> None:
        try:
            self._write_batch(values)
        except BaseException:
            self.shared.failed = True
            raise

    def _write_batch(self, values: list[Any]) -> None:
        task_header = (TASK_HEADER, self.task_id.encode())
        shared = self.shared
        produce = shared.producer.produce
        listener, stopping = self.listener, self.stopping
        written = self.written
        written_n = skipped = size = 0
        last_rec = None
        expand = self.expand
        for items in values:
            if not isinstance(items, list):  # a list, or a `RecordBatch` (a list crossing processes packed)
                assert expand is not None, f"{self.name}: received {type(items).__name__} without an expand"
                items = expand(items)
            for it in items:
                if isinstance(it, StreamDone):
                    self.done.add(it.stream)
                    continue
                w = written.get((it.topic, it.partition))
                if w is None:
                    w = self.open(it.topic, it.partition)
                pos = it.position
                seq = it.seq
                if w.seen(pos, seq, it.key):
                    if self.rescanned and pos.stream in self.rescanned:
                        raise self._not_after(w, pos)
                    skipped += 1
                    continue
                headers: list[tuple[str, str | bytes | None]] = [
                    task_header, (POS_HEADER, position_to_header(pos)),
                    _SEQ_HEADERS[seq] if seq < 16 else (SEQ_HEADER, str(seq).encode())]
                if it.headers:
                    headers.extend(it.headers)
                try:  # positional (topic, value, key, partition, callback, on_delivery, timestamp, headers):
                    # parsed in about half the instructions of keywords; 0 is librdkafka's "now" as by default
                    produce(it.topic, it.value, it.key, it.partition, w.on_delivery, None, 0, headers)
                except (BufferError, KafkaException):  # a full queue (waited for there) or an error (raised)
                    shared.produce(it, headers, listener, stopping, w.on_delivery)
                written_n += 1
                value = it.value
                if value is not None:
                    size += len(value)
                last_rec = it
        shared.producer.poll(0)
        shared.observe(listener)
        if written_n:
            self.listener.wrote(cast(OutRecord, last_rec), written_n, size)  # the last record written
        if skipped:
            self.listener.skipped(skipped)
            log.debug("%s: dropped %s already written", self.name, counted(skipped, "record"))
        if self.error:
            raise self.error
        if not self.gate_open and self.required_streams <= self.done:
            self.shared.flush(self.listener, self.stopping)
            self._raise_error()
            for w in self.written.values():  # the mark is final (no chunk is read again): nothing may be missing
                self._check_unverified(w)
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
        try:
            self.shared.flush(self.listener, self.stopping)
            self._raise_error()
            for w in self.written.values():
                self.verify(w)
        except BaseException:
            self.shared.failed = True
            raise
        return {
            "partitions": {part_name(t, p): w.to_json() for (t, p), w in sorted(self.written.items())},
            "done": sorted(self.done),
        }

    def verify(self, w: _Written) -> None:
        """Before a snapshot (after the flush): check that the partition holds the messages acknowledged without
        an offset since the last one (`_check_unverified`). Then the snapshot's offset is where the next check
        starts."""
        self._check_unverified(w)
        if w.redo is not None and not w.redo.pending(w.last):
            if w.redo.rewritten:
                log.info("%s[%d]: %s Kafka held written again after the lost ones of their keys (so each key's "
                         "changes stay in order)", w.topic, w.partition, counted(w.redo.rewritten, "message"))
            w.redo = None
        w.snap_offset = w.next_offset

    def _check_unverified(self, w: _Written) -> None:
        """After a flush: check that the partition holds the messages acknowledged without an offset since the
        last snapshot, reading it from that snapshot's offset; a `BrokerFault` if any is missing (noted for the
        resume from that snapshot: `gaps`). Before a snapshot, and before the lane marks its full sync
        delivered (after which no snapshot chunk is read again, so a lost snapshot row could not be written)."""
        if w.unverified:
            found: set[tuple[str, tuple, int]] = set()
            for offset, pos, seq in self._read_tail(w.topic, w.partition, w.snap_offset):
                found.add((pos.stream, pos.sort_key, seq))
                if offset >= w.next_offset:
                    w.next_offset = offset + 1
            acked = [(position_from_header(raw), seq, key) for raw, seq, key in w.unverified]
            missing = tuple(m for m in acked if (m[0].stream, m[0].sort_key, m[1]) not in found)
            if missing:
                self.gaps.record(part_name(w.topic, w.partition), Gap(w.snap_offset, missing))
                first = missing[0]
                raise BrokerFault(
                    f"Kafka acknowledged {counted(len(missing), 'message')} of {w.topic}[{w.partition}] it did not "
                    f"keep (the first at position {first[0]}, seq {first[1]}; acknowledged as already written, "
                    "without an offset); replaying from the last snapshot")
            log.info("%s[%d]: Kafka holds the %s it acknowledged without an offset", w.topic, w.partition,
                     counted(len(acked), "message"))
            w.unverified.clear()

    def close(self) -> None:
        """Flush what is left; never raises. Bytewax calls it after the last snapshot (which flushed and raised
        any error) when the dataflow ends, and also while it tears the dataflow down after an error or a stop,
        when an exception would abort the process (a panic while unwinding): problems are logged."""
        if self.shared.failed:
            return  # torn down after this producer's failure, which was raised already
        try:
            self.shared.flush(self.listener, self.stopping)
            self._raise_error()
        except StopWhileWaiting as e:
            log.info("%s: %s", self.name, e)
        except SinkError as e:
            log.error("%s: %s", self.name, e)


class KafkaSink(FixedPartitionedSink[list[OutItem], SinkState]):
    """Writes each (lane, records) item to the records' Kafka partitions, dropping replays by position.

    `lanes` are the task's sink parts (`records.lane_names`); the flow routes each record to the lane of
    its partition (`records.lane_of`). `required_streams` are the snapshot chunks' streams: once a lane has
    received the `StreamDone` of each, and flushed, `on_delivered(lane)` is called (the log source waits
    for every lane). `listener` hears what is written, dropped and acknowledged (`obsync.core.listeners`).
    `rescanned_streams`: streams whose replays come under new positions, never dropped (module docstring).
    `patience`: how long Kafka may be silent before it is reported, and before the task fails;
    `stopping()`: whether a stop was requested (a wait for a silent Kafka then ends; `_SharedProducer`).
    `expand`: turns an item that is not a list of records into one, on the lane's worker (module docstring).
    `gaps_file`: where messages Kafka acknowledged but lost are noted for the resume (`gaps`; None: nowhere).
    `offered`: the lanes this process lists to Bytewax, which builds each lane on one of the workers listing it
    (default: every lane; `obsync.steps.lane_placement`).
    `known_topic`: a topic that exists, whose metadata alone the new producer asks for (default: every topic's;
    `client.idempotent_producer`).
    """

    def __init__(self, target_conf: dict[str, Any], lanes: list[str], task_id: str,
                 required_streams: frozenset[str], on_delivered: Callable[[str], None],
                 listener: SinkListener = NOOP_SINK_LISTENER, producer_conf: dict[str, Any] | None = None,
                 rescanned_streams: frozenset[str] = frozenset(), patience: BrokerPatience = DEFAULT_PATIENCE,
                 stopping: Callable[[], bool] = _never, gaps_file: Path | None = None,
                 expand: Callable[[Any], list[OutItem]] | None = None,
                 offered: Sequence[str] | None = None, known_topic: str | None = None) -> None:
        self._conf = target_conf
        self._known_topic = known_topic
        self._expand = expand
        self._tuning = producer_conf or {}  # producer settings from the task's resources
        self._lanes = sorted(lanes)
        self._index = {p: i for i, p in enumerate(self._lanes)}
        self._offered = self._lanes if offered is None else sorted(offered)
        if not set(self._offered) <= set(self._lanes):
            raise ValueError(f"lanes offered that the sink does not have: {sorted(set(self._offered) - set(lanes))}")
        self._task_id = task_id
        self._required = required_streams
        self._on_delivered = on_delivered
        self._listener = listener
        self._rescanned = rescanned_streams
        self._patience = patience
        self._stopping = stopping
        self._gaps = GapFile(gaps_file)
        listener.use_acks()  # messages and bytes written are counted when Kafka acknowledges them

    def list_parts(self) -> list[str]:
        return self._offered

    def part_fn(self, item_key: str) -> int:
        return self._index[item_key]

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState | None) -> _Lane:
        shared = _SharedProducer.get(self._conf, self._tuning, self._patience, self._known_topic)
        shared.failed = False  # a new dataflow (the producer outlives a failed one in the same process)
        lane = _Lane(for_part, self._task_id, self._conf, shared, self._required,
                     lambda: self._on_delivered(for_part), self._listener, rescanned=self._rescanned,
                     stopping=self._stopping, gaps=self._gaps, expand=self._expand)
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

"""Reading what a Kafka partition already holds past a known offset: to learn the last positions written
(`written_positions`), and to read messages back (`read_messages`, for `obsync verify`).

A crash can happen after messages reached Kafka but before the sink's state was snapshotted; on resume the
sink reads the partition from its snapshotted offset to the end and so knows, per stream, the last position
actually written. The end is found by consuming to the end-of-partition event, never by ListOffsets (which
some Kafka-compatible brokers answer wrongly).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from obsync.connectors.kafka.client import mask_secrets
from obsync.connectors.kafka.records import POS_HEADER, SEQ_HEADER, TASK_HEADER
from obsync.connectors.kafka.stall import DEFAULT_PATIENCE, STOP_GRACE, AckWatch, BrokerPatience
from obsync.core.errors import SinkError, StopWhileWaiting
from obsync.core.listeners import NOOP_SINK_LISTENER, SinkListener
from obsync.core.positions import Position, position_from_header

log = logging.getLogger(__name__)

_SLICE = 0.5  # s of one poll (then the silence is judged, and a stop request heard)
_ASK_EVERY = 10.0  # s between questions of where a stalled read's partition ends (`_ask_where_it_ends`)
_CONFIRM = 5.0  # s for the read that finds where such a partition ends (`_end_by_reading`)
_QUIET = 1.0  # s without messages before such a read takes the stated end as the end (`stalled_end`)


def reader_conf(conf: dict[str, Any], purpose: str) -> dict[str, Any]:
    """A consumer that reads an assigned partition from an offset to the end-of-partition event, joining no group
    and committing nothing. Kafka answers a start outside the partition with OFFSET_OUT_OF_RANGE; "earliest"
    would then read from the partition's beginning without a word and hide lost messages, so the reader is told
    (`_AUTO_OFFSET_RESET`) and decides."""
    return {
        **conf,
        "group.id": f"obsync-{purpose}-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "isolation.level": "read_uncommitted",  # to the end, not to the last stable offset
        "fetch.wait.max.ms": 20,  # the end-of-partition event comes after one empty fetch: keep it short
        "logger": logging.getLogger("obsync.rdkafka"),
    }


def _never() -> bool:
    return False


def written_positions(conf: dict[str, Any], topic: str, partition: int, start_offset: int, task_id: str, *,
                      patience: BrokerPatience = DEFAULT_PATIENCE, listener: SinkListener = NOOP_SINK_LISTENER,
                      stopping: Callable[[], bool] = _never) -> Iterator[tuple[int, Position, int]]:
    """Yield (offset, position, seq) of this task's messages from `start_offset` to the partition's end.

    Kafka may be slow or away meanwhile: the read waits as the sink waits for acknowledgements (`patience`,
    the task's target.stall_timeout and target.patience). Once nothing (no message, not the end) came for
    `patience.notice` s the wait is logged, naming the brokers, the partition and the client's last error, and
    told to `listener` (`broker_waiting` with `reading`: status.json, metrics) until Kafka answers; after
    `patience.patience` s a `SinkError` says the same and what to do. A stop (`stopping()`) ends the wait once
    Kafka was silent for `STOP_GRACE` s (`StopWhileWaiting`): nothing was written, the next start reads again.
    """
    brokers = str(conf.get("bootstrap.servers", "?"))
    last_error: list[str] = []  # librdkafka's last error (error_cb), secrets masked

    def on_error(err: KafkaError) -> None:
        last_error[:] = [mask_secrets(err.str(), conf)]

    # the brokers being down or unreachable: kept for the log (error_cb), librdkafka retries
    consumer = Consumer({**reader_conf(conf, "tail"), "error_cb": on_error})
    task = task_id.encode()
    where = f"{topic}[{partition}]"
    watch = AckWatch(patience)
    told = False  # the listener was told the sink waits
    asked = -_ASK_EVERY  # time.monotonic() when Kafka was last asked where the partition ends
    holds: str | None = None  # what Kafka last said the partition holds (`_ask_where_it_ends`), for the log
    reached = start_offset  # the offset after the last message read
    try:
        consumer.assign([TopicPartition(topic, partition, start_offset)])
        while True:
            msg = consumer.poll(_SLICE)
            err = msg.error() if msg is not None else None
            if msg is None or (err is not None and err.code() != KafkaError._PARTITION_EOF and err.retriable()):
                if err is not None:
                    last_error[:] = [mask_secrets(err.str(), conf)]
                stalled = _judge(watch, brokers, where, start_offset, last_error, listener, stopping, holds,
                                 reached)
                if stalled and time.monotonic() - asked >= _ASK_EVERY:  # where does Kafka say the partition ends?
                    asked = time.monotonic()
                    ends = _ask_where_it_ends(consumer, conf, topic, partition, start_offset, reached, brokers)
                    if ends is not None:
                        holds = _holds(*ends)
                        if at_stated_end(start_offset, reached, ends[1]):
                            log.warning("%s on Kafka (%s): read to offset %d, then neither messages nor the end of "
                                        "the partition for %.0f s, yet Kafka says the partition holds %s: taking "
                                        "offset %d as its end (a broker whose reads and ListOffsets disagree, as "
                                        "tansu's after a failed write)", where, brokers, reached - 1,
                                        watch.observe(1).silent_for, holds, reached)
                            return
                told = stalled or told
                continue
            watch.acked()
            if told:
                told = False
                listener.broker_waiting(brokers, 0, 0.0, None)
                log.info("Kafka (%s) answers again: reading %s", brokers, where)
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return
                if err.code() == KafkaError._AUTO_OFFSET_RESET:  # the start lies outside what Kafka holds
                    start_offset = _start_out_of_range(consumer, topic, partition, start_offset, brokers, err.str())
                    consumer.assign([TopicPartition(topic, partition, start_offset)])
                    continue
                raise SinkError(
                    f"cannot read {where} on Kafka ({brokers}) from offset {start_offset}: "
                    f"{mask_secrets(err.str(), conf)}. obsync reads what it wrote there to resume exactly once: "
                    "check that the topic exists and that the task's Kafka user may read it, then start the "
                    "task again (nothing is lost)")
            # a consumed record always has an offset; header values come as bytes (None: a null header)
            offset, headers = msg.offset(), dict(msg.headers() or ())
            reached = offset + 1 if offset is not None else reached
            pos = headers.get(POS_HEADER)
            if offset is None or headers.get(TASK_HEADER) != task or not isinstance(pos, bytes):
                continue
            yield offset, position_from_header(pos), int(headers.get(SEQ_HEADER) or b"0")
    finally:
        if told:
            listener.broker_waiting(brokers, 0, 0.0, None)
        consumer.close()


def _start_out_of_range(consumer: Consumer, topic: str, partition: int, start: int, brokers: str,
                        why: str) -> int:
    """Where to read from after Kafka answered that `start` is out of range (OFFSET_OUT_OF_RANGE): Kafka is
    asked where the partition begins and ends (its answer is exact here; brokers that answer ListOffsets
    wrongly do not send OFFSET_OUT_OF_RANGE), then `start_within`; unanswered, a `SinkError` naming both."""
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    except KafkaException as e:
        raise SinkError(
            f"Kafka ({brokers}) answered that offset {start} of {topic}[{partition}], where this task's last "
            f"snapshot says its next message goes, is out of range ({why}), and did not say where the partition "
            f"begins and ends ({e.args[0].str() if e.args else e}). Start the task again: nothing was "
            "written") from None
    return start_within(topic, partition, start, low, high, brokers, why)


def start_within(topic: str, partition: int, start: int, low: int, high: int, brokers: str, why: str) -> int:
    """The offset to read a partition back from when Kafka answered `start` out of range, the partition holding
    offsets `low` to `high` (exclusive):

    - it ends before `start`: `SinkError`, Kafka lost messages it acknowledged;
    - it begins after `start` (retention, or records deleted): `low`, logged. What this task wrote from `start`
      on that Kafka deleted cannot be read back; if the last of its messages was among them, the messages
      after its last snapshot are written again;
    - `start` inside after all: `SinkError` naming both, nothing written.
    """
    if 0 <= high < start:
        raise _lost(topic, partition, high, start, brokers)
    if low > start:
        log.warning("%s[%d] on Kafka (%s) begins at offset %d, after offset %d where this task's last snapshot "
                    "says its next message goes: Kafka deleted offsets %d-%d (retention, or records deleted) "
                    "before they were read back; reading from offset %d. If the last message this task wrote lay "
                    "there, the messages after its last snapshot are written again", topic, partition, brokers,
                    low, start, start, low - 1, low)
        return low
    raise SinkError(
        f"Kafka ({brokers}) answered that offset {start} of {topic}[{partition}], where this task's last snapshot "
        f"says its next message goes, is out of range ({why}), yet says the partition holds {_holds(low, high)}. "
        "Start the task again: nothing was written")


def _holds(low: int, high: int) -> str:
    """What a partition holding offsets `low` to `high` (exclusive) holds, in words."""
    return f"offsets {low} to {high - 1}" if high > low else f"no messages (its next offset is {high})"


def _lost(topic: str, partition: int, high: int, start: int, brokers: str) -> SinkError:
    """The error of a partition that ends at `high`, before `start`, where this task's next message goes."""
    return SinkError(
        f"{topic}[{partition}] ends at offset {high} on Kafka ({brokers}), before offset {start}, where this "
        "task's last snapshot says its next message goes: Kafka no longer holds messages it acknowledged to "
        "this task (a broker that lost data, or the topic deleted and created again). obsync cannot tell "
        "which of its messages are missing, so it does not go on: `obsync verify` shows what the topic "
        "lacks; to sync again, start the task with an empty state directory (a new full sync)")


def _ask_where_it_ends(consumer: Consumer, conf: dict[str, Any], topic: str, partition: int, start: int,
                       reached: int, brokers: str) -> tuple[int, int] | None:
    """Where Kafka says a stalled read's partition begins and ends (ListOffsets: low, high); None if that is not
    answered in 2 s. Asked when the read first counts as stalled and every `_ASK_EVERY` s after, whatever error
    the client reported (a broker it could not reach at first, or one that answers again after an outage, may
    still answer this).

    With nothing read yet (`reached` is `start`), raise if the partition ends before `start`: a read from there
    gets nothing, neither messages nor the end-of-partition event (tansu), and would wait the whole patience as
    for a silent broker. The end is then found by reading to the end-of-partition event (`_end_by_reading`) from
    each offset `ends_from` gives, and that end is what is judged and said: ListOffsets alone is not trusted
    (tansu answers it with its last batch's base offset + 1, short of the end). No end found (each read given
    `_CONFIRM` s), nothing is judged."""
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=2, cached=False)
    except KafkaException:
        return None
    if reached == start:
        for offset in ends_from(start, low, high):
            end = _end_by_reading(conf, topic, partition, offset, high)
            if end is not None:
                if end < start:
                    raise _lost(topic, partition, end, start, brokers)
                break
    return low, high


def read_so_far(start: int, reached: int) -> str:
    """How far a read from `start` got, for the stall's log line and error: empty when nothing was read, else
    where the messages stopped (the clue to a broker whose data ends before the end it states)."""
    return "" if reached <= start else f"; read offsets {start} to {reached - 1}, then nothing"


def at_stated_end(start: int, reached: int, high: int) -> bool:
    """Whether a read from `start` that got to `reached` (the offset after the last message read) and then stalled
    (neither messages nor the end-of-partition event) is at the end Kafka states, `high` (ListOffsets; negative:
    unknown). Kafka itself never stalls there: a read from its end gets the end-of-partition event at once. Tansu,
    after a write it failed, counts the failed batch's offsets in its reads' end yet holds nothing there, and
    answers ListOffsets with less: once seen (CI, December 2026), a read from offset 818 got messages to 945 and
    then nothing, its reads saying the partition ends at 991 and ListOffsets at 660. The read is then at the
    stated end when `high` is not past `reached`, unless nothing was read and `high` lies before `start`: a
    partition shorter than the snapshot says, judged by `_ask_where_it_ends`."""
    return 0 <= high <= reached and (reached > start or high == start)


def ends_from(start: int, low: int, high: int) -> list[int]:
    """Where to read a partition's end from, in order, when a read from `start` stalls and Kafka says the
    partition holds offsets `low` to `high` (exclusive): from `high` if that lies before `start` (the cheap read,
    a batch at most), then from `low` (the whole partition, as far as `_CONFIRM` s go) if it lies before `start`,
    whatever `high` says: a broker whose ListOffsets or whose read from `high` is wrong still sends what it holds
    from its first offset. Kafka itself never gets here (a read from inside a partition gets messages, from its
    end the end-of-partition event; a silent broker does not answer ListOffsets either), so the whole read costs
    only a broker that is already failing. Nothing to read when `low` is unknown (negative) or not before `start`."""
    out = [high] if 0 <= high < start else []
    if 0 <= low < start and low not in out:
        out.append(low)
    return out


def _end_by_reading(conf: dict[str, Any], topic: str, partition: int, offset: int, high: int) -> int | None:
    """The partition's end, read from `offset` (at or before it) to the end-of-partition event, or to the end
    Kafka states (`high`, ListOffsets) when the messages stop there and no such event comes (`stalled_end`);
    None if neither within `_CONFIRM` s, or `offset` is out of range."""
    consumer = Consumer(reader_conf(conf, "tail"))
    reached = offset  # the offset after the last message read
    last = time.monotonic()  # when the last message came
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = last + _CONFIRM
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                return msg.offset()  # the end-of-partition event has the end offset
            if err is not None and not err.retriable():
                return None
            at = msg.offset()
            if err is None and at is not None:
                reached, last = at + 1, time.monotonic()
        # messages that still came in the last second may go on (a read cut short by the deadline): no end known
        return stalled_end(offset, reached, high) if time.monotonic() - last >= _QUIET else None
    finally:
        consumer.close()


def stalled_end(offset: int, reached: int, high: int) -> int | None:
    """Where a partition ends when a read from `offset` got messages to `reached` (the offset after the last one)
    and then neither more nor the end-of-partition event, and Kafka states the end `high` (ListOffsets; negative:
    unknown): `reached` once that is the stated end or past it (`at_stated_end`), else None (no end known).
    Kafka never gets here (a read to its end gets the event). Tansu did (CI, 5 December 2026): after a freeze
    and a failed write, the snapshot said offset 994, ListOffsets 905; the read from 905 got nothing, the read
    from 0 got messages to 904, and neither got the event, so the loss went unjudged for the whole patience. A
    read that got nothing tells nothing: it may be a slow broker's."""
    return reached if reached > offset and at_stated_end(offset, reached, high) else None


def _judge(watch: AckWatch, brokers: str, where: str, start: int, last_error: list[str], listener: SinkListener,
           stopping: Callable[[], bool], holds: str | None, reached: int) -> bool:
    """After a slice in which Kafka sent nothing: a stop, the patience spent, or the stall to show; True when the
    listener was told of the wait. `holds`: what Kafka last said the partition holds; `reached`: the offset after
    the last message read (`start`: nothing read yet); both said with the wait."""
    v = watch.observe(1)
    got = read_so_far(start, reached)
    error = last_error[0] if last_error else None
    said = f"; Kafka says the partition holds {holds}" if holds else ""
    if v.silent_for >= min(watch.settings.notice, STOP_GRACE) and stopping():
        raise StopWhileWaiting(f"stopped while reading {where} from Kafka ({brokers}); the next start reads it again")
    if not v.stalled:
        return False
    patience = watch.settings.patience
    if v.give_up:
        listener.broker_waiting(brokers, 0, 0.0, None)
        raise SinkError(
            f"Kafka ({brokers}) sent nothing for {v.silent_for:.0f} s while the sink read {where} from offset "
            f"{start} to its end to learn what an earlier run wrote{got} (target.patience: {patience:g} s); "
            f"last error from the client: {error or 'none (the brokers are silent)'}{said}. Make the brokers "
            "reachable and start the task again: it resumes from the last saved point, nothing is lost or written "
            "twice")
    listener.broker_waiting(brokers, 0, v.silent_for, error, reading=where)
    if v.announce:
        left = "retrying forever" if patience is None else f"retrying until target.patience ({patience:g} s) runs out"
        log.warning("waiting for Kafka (%s): nothing %sread from %s (from offset %d, to learn what an earlier run "
                    "wrote%s) for %.0f s; last error: %s%s; %s", brokers, "more " if got else "", where, start, got,
                    v.silent_for, error or "none (the brokers are silent)", said, left)
    return True


class TopicMessage(NamedTuple):
    """One message as read back, with the headers obsync writes (None where absent)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    task: bytes | None
    position: bytes | None
    seq: int
    headers: dict[str, bytes]


def partition_counts(conf: dict[str, Any], topics: list[str], timeout: float = 30.0) -> dict[str, int]:
    """Each topic's partition count (metadata only); SinkError naming a topic that does not exist."""
    admin = AdminClient({**conf, "logger": logging.getLogger("obsync.rdkafka")})  # type: ignore[dict-item]  # librdkafka takes a logger
    out: dict[str, int] = {}
    for topic in topics:
        brokers = conf.get("bootstrap.servers", "?")
        try:
            meta = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as e:
            raise SinkError(f"cannot read the metadata of topic {topic} from Kafka ({brokers}) within {timeout:g} s: "
                            f"{e.args[0].str() if e.args else e}. Make the brokers reachable and try again") from None
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error is not None else "it does not exist"
            raise SinkError(f"topic {topic} on Kafka ({brokers}): {why}")
        out[topic] = len(meta.partitions)
    return out


def read_messages(conf: dict[str, Any], topic: str, partition: int, start_offset: int = 0,
                  timeout: float = 120.0) -> Iterator[TopicMessage]:
    """Every message of one partition from `start_offset` to its end (the end-of-partition event), read
    without a consumer group's commits (`assign`, auto-commit off): nothing is written to Kafka."""
    consumer = Consumer({**reader_conf(conf, "verify"), "enable.auto.offset.store": False})
    try:
        consumer.assign([TopicPartition(topic, partition, start_offset)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise SinkError(f"timed out reading {topic}[{partition}] from offset {start_offset} to its end on "
                                f"Kafka ({conf.get('bootstrap.servers', '?')}): nothing for {timeout:g} s. Make the "
                                "brokers reachable and try again")
            msgs = consumer.consume(500, 0.05)  # returns at once with 500; else waits it out: keep it short
            for msg in msgs:
                err = msg.error()
                if err:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    if err.code() == KafkaError._AUTO_OFFSET_RESET:
                        start_offset = read_on_from(consumer, str(conf.get("bootstrap.servers", "?")), topic,
                                                partition, start_offset, err.str())
                        consumer.assign([TopicPartition(topic, partition, start_offset)])
                        break
                    raise SinkError(f"cannot read {topic}[{partition}]: {err.str()}")
                headers = {h[0]: h[1] for h in (msg.headers() or ()) if isinstance(h[1], bytes)}
                seq = headers.get(SEQ_HEADER)
                key, value = msg.key(), msg.value()
                yield TopicMessage(partition, msg.offset() or 0, _as_bytes(key), _as_bytes(value),
                                   headers.get(TASK_HEADER), headers.get(POS_HEADER), int(seq) if seq else 0, headers)
            if msgs:
                deadline = time.monotonic() + timeout
    finally:
        consumer.close()


def read_on_from(consumer: Consumer, brokers: str, topic: str, partition: int, start: int, why: str) -> int:
    """Where a read of everything from `start` goes on after Kafka answered `start` out of range (`why`): the
    partition's first offset if it begins after `start` (retention or compaction; those messages are gone for
    every reader), else a `SinkError` saying what it holds (it was created again, or Kafka lost messages, since
    they were read up to `start`)."""
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    except KafkaException as e:
        raise SinkError(f"cannot read {topic}[{partition}] from offset {start} on Kafka ({brokers}): {why}; where "
                        f"it begins and ends is not known either ({e.args[0].str() if e.args else e})") from None
    if low > start:
        return low
    raise SinkError(f"cannot read {topic}[{partition}] from offset {start} on Kafka ({brokers}): it holds "
                    f"{_holds(low, high)} ({why}). Messages read before are gone: the topic was created again, "
                    "or Kafka lost them")


def _as_bytes(v: str | bytes | None) -> bytes | None:
    return v.encode() if isinstance(v, str) else v

"""A task's control topic: small keyed JSON records that every process of a task reads and writes through Kafka.

A Bytewax cluster is one process per pod or host, each with its own disk, so what all of them must agree on
(the task's identity and start point, which lanes delivered their full sync, the binlog schema history, the
recovery store's layout) is kept here, as Kafka Connect keeps its offsets, configs and status in topics.

- One partition, so every reader sees the records in one order; created with `cleanup.policy=compact`.
- A record is `key -> JSON value`; the value of a key is its *last* record (a null value deletes it). Readers
  always read from where they stopped to the end of the partition (the end-of-partition event, never
  ListOffsets), so the answer is the same whether or not the broker compacts (tansu stores the policy but
  never compacts: every record stays, the last one per key still wins).
- Keys that must all be kept (schema history entries) are unique per record, so compaction keeps them, in
  their order.
- Writes are acknowledged by every in-sync replica (`acks=all`, idempotent producer) before `write` returns;
  a failed write raises.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from obsync.connectors.kafka.client import KafkaSettings, base_config, idempotent_producer
from obsync.connectors.kafka.tail import read_on_from, reader_conf
from obsync.core.errors import SinkError

log = logging.getLogger(__name__)

CONTROL_PREFIX = "obsync.control."


def control_topic_name(task_name: str) -> str:
    """The control topic of a task (task names are letters, digits, `.`, `-`, `_`: valid in a topic name)."""
    return f"{CONTROL_PREFIX}{task_name}"


class ControlTopic:
    """The records of one control topic, as far as this process has read it (`refresh`)."""

    def __init__(self, settings: KafkaSettings, topic: str, *, replication_factor: int = 1,
                 timeout: float = 60.0) -> None:
        self.settings = settings
        self.topic = topic
        self.replication_factor = replication_factor
        self.timeout = timeout
        self._records: dict[str, Any] = {}
        self._order: dict[str, int] = {}  # key -> offset of its last record
        self._next = 0  # the next offset to read
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None

    def ensure(self) -> None:
        """Create the topic if it is missing (1 partition, compacted); an error if it has more partitions."""
        admin = AdminClient(base_config(self.settings))
        try:
            topics = admin.list_topics(timeout=self.timeout).topics
        except KafkaException as e:
            raise SinkError(f"cannot reach Kafka at {self.settings.bootstrap_servers}: {e.args[0].str()}") from None
        if self.topic not in topics:
            new = NewTopic(self.topic, num_partitions=1, replication_factor=self.replication_factor,
                           config={"cleanup.policy": "compact"})
            fut = admin.create_topics([new], operation_timeout=self.timeout, request_timeout=self.timeout)[self.topic]
            try:
                fut.result()
                log.info("created control topic %s", self.topic)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SinkError(f"cannot create control topic {self.topic!r}: {e.args[0].str()}") from None
            topics = admin.list_topics(self.topic, timeout=self.timeout).topics
        meta = topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise SinkError(f"control topic {self.topic!r} is not available on {self.settings.bootstrap_servers}")
        if len(meta.partitions) != 1:
            raise SinkError(f"control topic {self.topic!r} has {len(meta.partitions)} partitions; it must have "
                            "exactly 1 (obsync creates it so): delete it only if no process of the task runs and "
                            "its state may be lost, or give the task another name")

    def refresh(self) -> dict[str, Any]:
        """Read the records written since the last refresh (to the end of the partition); all records now."""
        with self._lock:
            consumer = self._consumer_for_read()
            consumer.assign([TopicPartition(self.topic, 0, self._next)])
            deadline = time.monotonic() + self.timeout
            try:
                while True:
                    if time.monotonic() > deadline:
                        raise SinkError(f"timed out reading control topic {self.topic} from offset {self._next} to "
                                        f"its end ({self.timeout:.0f} s); is Kafka at "
                                        f"{self.settings.bootstrap_servers} reachable?")
                    msg = consumer.poll(0.5)
                    if msg is None:
                        continue
                    err = msg.error()
                    if err:
                        if err.code() == KafkaError._PARTITION_EOF:
                            break
                        if err.code() == KafkaError._AUTO_OFFSET_RESET:  # compacted away, or the topic is new
                            self._next = read_on_from(consumer, self.settings.bootstrap_servers, self.topic, 0,
                                                      self._next, err.str())
                            consumer.assign([TopicPartition(self.topic, 0, self._next)])
                            continue
                        raise SinkError(f"cannot read control topic {self.topic}: {err.str()}")
                    offset = msg.offset()
                    key = (msg.key() or b"").decode()
                    value = msg.value()
                    if offset is None or offset < self._next:
                        continue
                    self._next = offset + 1
                    if value is None:
                        self._records.pop(key, None)
                        self._order.pop(key, None)
                    else:
                        self._records[key] = json.loads(value)
                        self._order.pop(key, None)  # re-inserted last: `items` keeps the order of last writes
                        self._order[key] = offset
            finally:
                consumer.unassign()
            return dict(self._records)

    def get(self, key: str) -> Any | None:
        """The value of `key` as last refreshed (None if absent)."""
        return self._records.get(key)

    def items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """(key, value) of the keys starting with `prefix`, in the order their last records were written."""
        for key in list(self._order):
            if key.startswith(prefix):
                yield key, self._records[key]

    def write(self, records: Mapping[str, Any]) -> None:
        """Append `records` (key -> JSON-able value, None deletes the key), acknowledged before returning."""
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        with self._lock:
            if self._producer is None:
                self._producer = idempotent_producer({**base_config(self.settings), "enable.idempotence": True,
                                                      "acks": "all", "linger.ms": 0,
                                                      "logger": logging.getLogger("obsync.rdkafka")},
                                                     self.topic)
            for key, value in records.items():
                data = None if value is None else json.dumps(value, sort_keys=True, default=str).encode()
                self._producer.produce(self.topic, data, key.encode(), partition=0, on_delivery=on_delivery)
            left = self._producer.flush(self.timeout)
        if left or errors:
            raise SinkError(f"cannot write to control topic {self.topic}: "
                            + (errors[0] if errors else f"not acknowledged within {self.timeout:.0f} s"))

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            if self._producer is not None:
                self._producer.flush(self.timeout)
                self._producer = None

    def _consumer_for_read(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(reader_conf(base_config(self.settings), "control"))
        return self._consumer

"""Creating the task's topics (never relying on broker auto-creation) and reading their partition counts.

Kafka may be away when the task starts or meets a new table: the metadata and topic-creation requests are
tried again in slices of `SLICE` s for as long as `target.patience` allows (`BrokerPatience`; forever if so),
logged after `target.stall_timeout` s naming the brokers, what is waited for and the client's last error, as
the sink waits for acknowledgements (`stall`), then fail with a `SinkError` saying what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from obsync.connectors.kafka.client import KafkaSettings, base_config
from obsync.connectors.kafka.stall import DEFAULT_PATIENCE, BrokerPatience
from obsync.core.errors import SinkError
from obsync.core.wording import counted

log = logging.getLogger(__name__)

SLICE = 5.0  # s of one metadata or creation request before it is tried again
_AWAY = frozenset({KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                   KafkaError.REQUEST_TIMED_OUT, KafkaError._RESOLVE, KafkaError.NOT_CONTROLLER})  # tried again
T = TypeVar("T")


def within_patience(call: Callable[[float], T], what: str, target: KafkaSettings, patience: BrokerPatience,
                    clock: Callable[[], float] = time.monotonic) -> T:
    """`call(timeout)` until it returns, while it fails because Kafka is away or silent (`_AWAY`) and the
    patience lasts (see the module docstring); other errors are raised as they are."""
    began = clock()
    announced: float | None = None
    while True:
        waited = clock() - began
        left = None if patience.patience is None else patience.patience - waited
        try:
            return call(SLICE if left is None else max(0.1, min(SLICE, left)))
        except KafkaException as e:
            err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
            if err is None or err.code() not in _AWAY:
                raise
            error = err.str()
        now = clock()
        waited = now - began
        if patience.patience is not None and waited >= patience.patience:
            raise SinkError(f"cannot {what} from Kafka ({target.bootstrap_servers}) within {patience.patience:g} s "
                            f"(target.patience): {error}. Make the brokers reachable (target.bootstrap_servers, "
                            "target.properties) and start the task again: nothing is lost") from None
        if waited >= patience.notice and (announced is None or now - announced >= patience.repeat):
            announced = now
            left_text = ("retrying forever" if patience.patience is None else
                         f"retrying until target.patience ({patience.patience:g} s) runs out")
            log.warning("waiting for Kafka (%s): cannot %s for %.0f s; last error: %s; %s",
                        target.bootstrap_servers, what, waited, error, left_text)


def ensure_topics(target: KafkaSettings, names: list[str], partitions: int, replication_factor: int,
                  patience: BrokerPatience = DEFAULT_PATIENCE, *, create: bool = True,
                  why: dict[str, str] | None = None, config: dict[str, str] | None = None) -> dict[str, int]:
    """Create the missing topics of `names` (with `create`; else a missing one is an error saying `why[name]`
    it was wanted), with the topic `config` given (else the broker's defaults); return every topic's partition
    count. Kafka is waited for within `patience`."""
    if not names:
        return {}
    admin = AdminClient(base_config(target))
    existing = _topics(admin, target, patience)
    missing = sorted(set(names) - set(existing))
    if missing and not create:
        t = missing[0]
        raise SinkError(f"{(why or {}).get(t, 'the task')}: topic {t!r} does not exist on {target.bootstrap_servers}; "
                        "obsync never creates an existing_topic. Create it, or use `topic:` to have obsync create it")
    outcome: dict[str, KafkaError | None] = {}  # topic -> None (created) or the broker's error

    def create_missing(timeout: float) -> None:  # the topics not answered yet, in one request
        todo = [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor,
                         config=dict(config or {}))
                for t in missing if t not in outcome]
        for topic, fut in admin.create_topics(todo, operation_timeout=timeout, request_timeout=timeout).items():
            try:
                fut.result()
                outcome[topic] = None
            except KafkaException as e:
                if e.args[0].code() in _AWAY:
                    raise
                outcome[topic] = e.args[0]

    if missing:
        within_patience(create_missing, f"create {counted(len(missing), 'topic')}", target, patience)
    for topic in missing:
        err = outcome[topic]
        if err is None:
            log.info("created topic %s with %s", topic, counted(partitions, "partition"))
        elif err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise SinkError(f"cannot create topic {topic!r} on Kafka ({target.bootstrap_servers}): "
                            f"{err.str()}. Create it with {counted(partitions, 'partition')}, or let the "
                            "task's Kafka user create topics, and start the task again")
    counts: dict[str, int] = {}
    meta = _topics(admin, target, patience)
    for t in names:
        if t not in meta or meta[t].error is not None or not meta[t].partitions:
            cause = meta[t].error.str() if t in meta and meta[t].error is not None else "no partitions in its metadata"
            raise SinkError(f"topic {t!r} is not available on Kafka ({target.bootstrap_servers}): {cause}. Check the "
                            "brokers' logs and start the task again once the topic has its partitions")
        counts[t] = len(meta[t].partitions)
    return counts


def _topics(admin: AdminClient, target: KafkaSettings, patience: BrokerPatience) -> dict[str, Any]:
    """The cluster's topics (metadata), or a SinkError naming the brokers, the bound and what to do."""
    return within_patience(lambda timeout: admin.list_topics(timeout=timeout).topics,
                           "read the topics' metadata", target, patience)


PRODUCER_MAX_DEFAULT = 1_000_000  # librdkafka's default message.max.bytes


class MessageLimits:
    """The largest record each topic accepts: the smaller of the topic's `max.message.bytes` (DescribeConfigs,
    asked once per topic) and the producer's `message.max.bytes` (`producer_max`). obsync checks sizes itself
    because not every broker enforces the topic's setting (tansu stores it but accepts larger messages)."""

    def __init__(self, target: KafkaSettings, producer_max: int = PRODUCER_MAX_DEFAULT,
                 patience: BrokerPatience = DEFAULT_PATIENCE) -> None:
        self.target = target
        self.producer_max = producer_max
        self.patience = patience
        self._known: dict[str, int] = {}

    def load(self, topics: list[str]) -> dict[str, int]:
        """Read the limits of `topics` (those not known yet) in one request; every topic's limit."""
        missing = [t for t in topics if t not in self._known]
        if missing:
            admin = AdminClient(base_config(self.target))
            answers: dict[str, Any] = {}  # topic -> its configuration, or the error reading it

            def describe(timeout: float) -> None:  # the topics not answered yet, in one request
                todo = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in missing if t not in answers]
                for res, fut in admin.describe_configs(todo, request_timeout=timeout).items():
                    try:
                        answers[res.name] = fut.result()
                    except KafkaException as e:
                        if e.args[0].code() in _AWAY:
                            raise
                        answers[res.name] = e

            within_patience(describe, f"read the configuration of {counted(len(missing), 'topic')}", self.target,
                            self.patience)
            for t in missing:
                limit = self.producer_max
                try:
                    answer = answers[t]
                    if isinstance(answer, Exception):
                        raise answer
                    entry = answer.get("max.message.bytes")
                    if entry is not None and entry.value is not None:
                        limit = min(limit, int(entry.value))
                except (KafkaException, ValueError) as e:
                    log.warning("cannot read max.message.bytes of topic %s (%s); checking messages against the "
                                "producer's message.max.bytes (%d) only", t, e, self.producer_max)
                self._known[t] = limit
        return {t: self._known[t] for t in topics}

    def __call__(self, topic: str) -> int:
        known = self._known.get(topic)
        return known if known is not None else self.load([topic])[topic]

"""Creating the task's topics (never relying on broker auto-creation) and reading their partition counts."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from obsync.connectors.kafka.client import KafkaSettings, base_config
from obsync.core.errors import SinkError
from obsync.core.wording import counted

log = logging.getLogger(__name__)


def ensure_topics(target: KafkaSettings, names: list[str], partitions: int, replication_factor: int,
                  timeout: float = 30.0, *, create: bool = True, why: dict[str, str] | None = None,
                  config: dict[str, str] | None = None) -> dict[str, int]:
    """Create the missing topics of `names` (with `create`; else a missing one is an error saying `why[name]`
    it was wanted), with the topic `config` given (else the broker's defaults); return every topic's partition
    count."""
    if not names:
        return {}
    admin = AdminClient(base_config(target))
    existing = _topics(admin, target, timeout)
    missing = sorted(set(names) - set(existing))
    if missing and not create:
        t = missing[0]
        raise SinkError(f"{(why or {}).get(t, 'the task')}: topic {t!r} does not exist on {target.bootstrap_servers}; "
                        "obsync never creates an existing_topic. Create it, or use `topic:` to have obsync create it")
    if missing:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor, config=dict(config or {}))
             for t in missing],
            operation_timeout=timeout, request_timeout=timeout,
        )
        for topic, fut in futures.items():
            try:
                fut.result()
                log.info("created topic %s with %s", topic, counted(partitions, "partition"))
            except KafkaException as e:
                err = e.args[0]
                if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SinkError(f"cannot create topic {topic!r} on Kafka ({target.bootstrap_servers}): "
                                    f"{err.str()}. Create it with {counted(partitions, 'partition')}, or let the "
                                    "task's Kafka user create topics, and start the task again") from None
    counts: dict[str, int] = {}
    meta = _topics(admin, target, timeout)
    for t in names:
        if t not in meta or meta[t].error is not None or not meta[t].partitions:
            cause = meta[t].error.str() if t in meta and meta[t].error is not None else "no partitions in its metadata"
            raise SinkError(f"topic {t!r} is not available on Kafka ({target.bootstrap_servers}): {cause}. Check the "
                            "brokers' logs and start the task again once the topic has its partitions")
        counts[t] = len(meta[t].partitions)
    return counts


def _topics(admin: AdminClient, target: KafkaSettings, timeout: float) -> dict[str, Any]:
    """The cluster's topics (metadata), or a SinkError naming the brokers, the bound and what to do."""
    try:
        return admin.list_topics(timeout=timeout).topics
    except KafkaException as e:
        raise SinkError(f"cannot read the topics' metadata from Kafka ({target.bootstrap_servers}) within "
                        f"{timeout:g} s: {e.args[0].str() if e.args else e}. Make the brokers reachable "
                        "(target.bootstrap_servers, target.properties) and start the task again: nothing is lost"
                        ) from None


PRODUCER_MAX_DEFAULT = 1_000_000  # librdkafka's default message.max.bytes


class MessageLimits:
    """The largest record each topic accepts: the smaller of the topic's `max.message.bytes` (DescribeConfigs,
    asked once per topic) and the producer's `message.max.bytes` (`producer_max`). obsync checks sizes itself
    because not every broker enforces the topic's setting (tansu stores it but accepts larger messages)."""

    def __init__(self, target: KafkaSettings, producer_max: int = PRODUCER_MAX_DEFAULT, timeout: float = 30.0) -> None:
        self.target = target
        self.producer_max = producer_max
        self.timeout = timeout
        self._known: dict[str, int] = {}

    def load(self, topics: list[str]) -> dict[str, int]:
        """Read the limits of `topics` (those not known yet) in one request; every topic's limit."""
        missing = [t for t in topics if t not in self._known]
        if missing:
            admin = AdminClient(base_config(self.target))
            futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in missing],
                                             request_timeout=self.timeout)
            for res, fut in futures.items():
                limit = self.producer_max
                try:
                    entry = fut.result().get("max.message.bytes")
                    if entry is not None and entry.value is not None:
                        limit = min(limit, int(entry.value))
                except (KafkaException, ValueError) as e:
                    log.warning("cannot read max.message.bytes of topic %s (%s); checking messages against the "
                                "producer's message.max.bytes (%d) only", res.name, e, self.producer_max)
                self._known[res.name] = limit
        return {t: self._known[t] for t in topics}

    def __call__(self, topic: str) -> int:
        known = self._known.get(topic)
        return known if known is not None else self.load([topic])[topic]

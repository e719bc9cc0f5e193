"""Creating the task's topics (never relying on broker auto-creation) and reading their partition counts."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from obsync.connectors.kafka.client import KafkaSettings, base_config
from obsync.core.errors import SinkError

log = logging.getLogger(__name__)


def ensure_topics(target: KafkaSettings, names: list[str], partitions: int, replication_factor: int,
                  timeout: float = 30.0, *, create: bool = True, why: dict[str, str] | None = None) -> dict[str, int]:
    """Create the missing topics of `names` (with `create`; else a missing one is an error saying `why[name]`
    it was wanted); return every topic's partition count."""
    if not names:
        return {}
    admin = AdminClient(base_config(target))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as e:
        raise SinkError(f"cannot reach Kafka at {target.bootstrap_servers}: {e.args[0].str()}") from None
    missing = sorted(set(names) - set(existing))
    if missing and not create:
        t = missing[0]
        raise SinkError(f"{(why or {}).get(t, 'the task')}: topic {t!r} does not exist on {target.bootstrap_servers}; "
                        "obsync never creates an existing_topic. Create it, or use `topic:` to have obsync create it")
    if missing:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in missing],
            operation_timeout=timeout, request_timeout=timeout,
        )
        for topic, fut in futures.items():
            try:
                fut.result()
                log.info("created topic %s with %d partitions", topic, partitions)
            except KafkaException as e:
                err = e.args[0]
                if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SinkError(f"cannot create topic {topic!r}: {err.str()}") from None
    counts: dict[str, int] = {}
    meta = admin.list_topics(timeout=timeout).topics
    for t in names:
        if t not in meta or meta[t].error is not None or not meta[t].partitions:
            raise SinkError(f"topic {t!r} is not available on {target.bootstrap_servers}")
        counts[t] = len(meta[t].partitions)
    return counts

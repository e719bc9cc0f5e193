"""librdkafka settings shared by the admin client, the producer and the tail reader.

The connectors are given a `KafkaSettings` (built from the task file's `target` by `obsync.runtime.settings`),
never the task file; its repr hides secrets, as `redacted` does for a librdkafka configuration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from obsync.core.threads import NamedThread

_METADATA_TIMEOUT = 10.0  # s each of `idempotent_producer`'s metadata requests may take
_METADATA_PAUSES = (0.0, 0.02, 0.1)  # s before each of them

# Keys whose values must never be printed.
_SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret")


@dataclass(frozen=True)
class KafkaSettings:
    """The Kafka cluster: bootstrap servers and the user's raw librdkafka properties (SASL, SSL, ...)."""

    bootstrap_servers: str
    properties: Mapping[str, str | int | float | bool] = field(default_factory=dict, hash=False)

    def __repr__(self) -> str:
        return f"KafkaSettings({redacted(base_config(self))!r})"


def base_config(settings: KafkaSettings) -> dict[str, Any]:
    """Bootstrap servers plus the user's raw librdkafka properties (SASL, SSL, ...)."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    conf.update(settings.properties)
    return conf


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """A copy fit for logs."""
    return {k: ("***" if any(s in k for s in _SECRET_KEYS) else v) for k, v in conf.items()}


def idempotent_producer(conf: dict[str, Any], topic: str | None = None) -> Producer:
    """A producer of `conf` (`enable.idempotence` set) that asks for its producer id at once. librdkafka asks
    when a metadata answer comes, or on a 500 ms timer whose first round, at creation, finds no broker connected
    yet (its rdkafka_idempotence.c): so a new producer's first messages waited 0.5-1 s for their id, and every
    start of a task waited that long for its first acknowledgements. Metadata requests, in a thread of its own
    that nothing waits for, bring the id within a round trip or two (the first answer may come before the
    connection to the broker it names is up, and it takes one that is up: asked once, a new producer on tansu
    still waited in 7 of 12 tries; asked so, in none of 60); with the broker away they change nothing.

    `topic`, one that exists: the requests ask for its metadata alone. Without it they ask for every topic's,
    which on a cluster of thousands of topics is a large answer for the broker to build at every start."""
    producer = Producer(conf)

    def ask() -> None:
        try:
            for pause in _METADATA_PAUSES:
                time.sleep(pause)
                producer.list_topics(topic, timeout=_METADATA_TIMEOUT)
        except KafkaException:
            pass  # the broker is away: the timer asks again, as without this

    NamedThread(target=ask, name="obsync-kafka-id", daemon=True).start()
    return producer


def config_problem(settings: KafkaSettings) -> str | None:
    """Why librdkafka refuses the settings (an unknown property, a bad value, a missing certificate file), in
    librdkafka's words with every secret value masked, or None. Nothing is contacted: the client is built
    without bootstrap servers and dropped."""
    conf = {**base_config(settings), "bootstrap.servers": "", "log_level": 0}
    try:
        Producer(conf)
    except KafkaException as e:
        text = e.args[0].str() if e.args and hasattr(e.args[0], "str") else str(e)
    except (TypeError, ValueError) as e:  # a value of a type the client cannot pass on
        text = str(e)
    else:
        return None
    return mask_secrets(text, conf)


def mask_secrets(text: str, conf: dict[str, Any]) -> str:
    """`text` (a librdkafka message) with the value of every secret setting of `conf` masked."""
    for k, v in conf.items():
        if redacted({k: v})[k] == "***" and str(v):
            text = text.replace(str(v), "***")
    return text

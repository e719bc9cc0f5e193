"""librdkafka settings shared by the admin client, the producer and the tail reader.

The connectors are given a `KafkaSettings` (built from the task file's `target` by `obsync.runtime.settings`),
never the task file; its repr hides secrets, as `redacted` does for a librdkafka configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

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

"""librdkafka settings shared by the admin client, the producer and the tail reader."""

from __future__ import annotations

from typing import Any

from obsync.task.config import TargetConfig

# Keys whose values must never be printed.
_SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret")


def base_config(target: TargetConfig) -> dict[str, Any]:
    """Bootstrap servers plus the user's raw librdkafka properties (SASL, SSL, ...)."""
    conf: dict[str, Any] = {"bootstrap.servers": target.bootstrap_servers}
    conf.update(target.properties)
    return conf


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """A copy fit for logs."""
    return {k: ("***" if any(s in k for s in _SECRET_KEYS) else v) for k, v in conf.items()}

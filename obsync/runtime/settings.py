"""The plain settings the connectors are given, built from the task file (which the connectors never read).

    source: (SourceConfig) ─> sql_endpoint (schema, snapshot, filters' questions), log_endpoint (binlog stream)
    target: (TargetConfig) ─> kafka_settings (admin client, producer, tail reader), broker_patience (the sink)

Passwords leave their `SecretStr` only here, into settings whose repr hides them.
"""

from __future__ import annotations

from obsync.connectors.kafka.client import KafkaSettings
from obsync.connectors.kafka.stall import BrokerPatience
from obsync.connectors.mysql.connection import Endpoint
from obsync.task.config import SourceConfig, TargetConfig


def sql_endpoint(source: SourceConfig) -> Endpoint:
    """Where SQL (schema, snapshot) goes: `sql_host`/`sql_port` when set, else the source's host and port."""
    return _endpoint(source, source.sql_host or source.host, source.sql_port or source.port)


def log_endpoint(source: SourceConfig) -> Endpoint:
    """Where the binlog stream comes from."""
    return _endpoint(source, source.host, source.port)


def _endpoint(source: SourceConfig, host: str, port: int) -> Endpoint:
    return Endpoint(host, port, source.user, source.password.get_secret_value(), source.connect_timeout,
                    source.read_timeout, source.write_timeout,
                    None if source.patience == "forever" else float(source.patience))


def kafka_settings(target: TargetConfig) -> KafkaSettings:
    """The Kafka cluster of the task."""
    return KafkaSettings(target.bootstrap_servers, dict(target.properties))


def broker_patience(target: TargetConfig) -> BrokerPatience:
    """How long the sink lets Kafka be silent: `target.stall_timeout` before saying so, `target.patience` before
    the task fails; while it lasts the log line comes again every 30 s (or every stall_timeout, if longer)."""
    return BrokerPatience(target.stall_timeout, None if target.patience == "forever" else float(target.patience),
                          repeat=max(30.0, target.stall_timeout))

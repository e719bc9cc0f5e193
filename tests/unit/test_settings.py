"""obsync.runtime.settings: the plain settings the connectors get from the task file, secrets kept out of reprs."""

from __future__ import annotations

from obsync.connectors.kafka.client import KafkaSettings, base_config
from obsync.runtime.settings import kafka_settings, log_endpoint, sql_endpoint
from obsync.task.config import parse_task


def task(**source: object):
    return parse_task({
        "name": "t",
        "source": {"host": "log.example", "port": 3306, "user": "u", "password": "s3cret", **source},
        "target": {"bootstrap_servers": "k:9092",
                   "properties": {"security.protocol": "SASL_SSL", "sasl.password": "k4fka"}},
        "objects": [{"match": "shop.*"}],
    })


def test_endpoints_of_the_source() -> None:
    t = task(sql_host="sql.example", sql_port=2883, connect_timeout=3)
    sql, log = sql_endpoint(t.source), log_endpoint(t.source)
    assert (sql.host, sql.port, sql.user, sql.password, sql.connect_timeout) == ("sql.example", 2883, "u", "s3cret", 3)
    assert (log.host, log.port, log.user, log.password, log.connect_timeout) == ("log.example", 3306, "u", "s3cret", 3)
    plain = task()
    assert (sql_endpoint(plain.source).host, sql_endpoint(plain.source).port) == ("log.example", 3306)
    assert "s3cret" not in repr(sql) + str(sql) + repr(log)


def test_kafka_settings_hide_secrets() -> None:
    k = kafka_settings(task().target)
    assert k == KafkaSettings("k:9092", {"security.protocol": "SASL_SSL", "sasl.password": "k4fka"})
    assert base_config(k) == {"bootstrap.servers": "k:9092", "security.protocol": "SASL_SSL",
                              "sasl.password": "k4fka"}
    assert "k4fka" not in repr(k) + str(k)
    assert "SASL_SSL" in repr(k)

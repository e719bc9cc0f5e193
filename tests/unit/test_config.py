"""The task file: what users write, and the errors they get when it is wrong."""

from __future__ import annotations

import pytest

from obsync.core.errors import ConfigError
from obsync.formats.registry import register, registered_formats
from obsync.task.config import load_task, parse_task
from obsync.task.format_names import FORMAT_NAMES

BASE = {
    "name": "shop-to-kafka",
    "source": {"host": "127.0.0.1", "port": 2883, "user": "cdc@tenant#cluster", "password": "pw",
               "server_id": 5401},
    "target": {"bootstrap_servers": "127.0.0.1:9092", "properties": {"security.protocol": "PLAINTEXT"}},
    "sync": {"full": True, "incremental": True},
    "objects": [{"match": "shop.orders"}],
    "topic": "Topic_${database}_${table}",
    "topics": {"partitions": 3, "replication_factor": 1},
    "format": "default",
    "partitioning": "hash",
}


def task(**over):
    return parse_task({**BASE, **over})


def test_issue_example_is_valid_and_maps_topic():
    t = task()
    assert t.topic_for("shop", "orders") == "Topic_shop_orders"
    assert t.topics.partitions == 3 and t.partitioning == "hash" and t.format == "default"


def test_unknown_format_names_field_and_lists_valid_values():
    with pytest.raises(ConfigError) as e:
        task(format="xml")
    msg = str(e.value)
    assert "`format`" in msg
    for valid in ("'default'", "'canal'", "'debezium_smt'", "'avro'"):
        assert valid in msg


def test_the_format_names_are_the_registered_formats():
    assert registered_formats() == sorted(FORMAT_NAMES)
    for name in FORMAT_NAMES:
        assert task(format=name).format == name
    with pytest.raises(ValueError, match="FORMAT_NAMES"):
        register("xml")


def test_unknown_setting_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"`source.pasword`: unknown setting"):
        parse_task({**BASE, "source": {**BASE["source"], "pasword": "x"}})


def test_partitioning_lists_valid_values():
    with pytest.raises(ConfigError, match=r"`partitioning`.*'hash', 'table' or 'one'"):
        task(partitioning="random")


def test_password_from_environment_and_never_printed(monkeypatch):
    monkeypatch.setenv("OB_PW", "s3cr3t-value")
    t = parse_task({**BASE, "source": {**BASE["source"], "password": "${OB_PW}"}})
    assert t.source.password.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(t) and "s3cr3t-value" not in str(t.model_dump())


def test_missing_environment_variable_names_field(monkeypatch):
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(ConfigError, match=r"`source.password`: environment variable NOPE_PW is not set"):
        parse_task({**BASE, "source": {**BASE["source"], "password": "${NOPE_PW}"}})


@pytest.mark.parametrize("topic", ["ab", "has space", "x" * 65, "Topic_${schema}"])
def test_bad_topic_names_are_refused(topic):
    with pytest.raises(ConfigError, match="`topic`"):
        task(topic=topic)


def test_task_name_rules():
    with pytest.raises(ConfigError, match="`name`"):
        task(name="has space")


def test_object_must_be_db_dot_table():
    with pytest.raises(ConfigError, match=r"`objects.0.match`"):
        task(objects=[{"match": "orders"}])


def test_load_task_reports_yaml_errors(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_task(p)
    with pytest.raises(ConfigError, match="cannot read task file"):
        load_task(tmp_path / "missing.yaml")


@pytest.mark.parametrize("side", ["source", "target"])
def test_patience_is_seconds_or_forever_and_anything_else_is_refused_by_field(side):
    assert getattr(task(), side).patience == 600
    assert getattr(task(**{side: {**BASE[side], "patience": "forever"}}), side).patience == "forever"
    assert getattr(task(**{side: {**BASE[side], "patience": 5}}), side).patience == 5
    for bad in (-1, "ten minutes", True, None):
        with pytest.raises(ConfigError, match=rf"`{side}.patience`.*nor `forever`"):
            task(**{side: {**BASE[side], "patience": bad}})


def test_the_broker_stall_timeout_is_a_positive_number_of_seconds():
    assert task().target.stall_timeout == 30
    assert task(target={**BASE["target"], "stall_timeout": 2.5}).target.stall_timeout == 2.5
    for bad in (0, -3):
        with pytest.raises(ConfigError, match=r"`target.stall_timeout`"):
            task(target={**BASE["target"], "stall_timeout": bad})

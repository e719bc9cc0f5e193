"""A task's control topic on a real broker (tansu, which stores `cleanup.policy=compact` but never compacts):
what two processes write, each reads back with the last record of a key winning."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from obsync.connectors.kafka.client import KafkaSettings
from obsync.connectors.kafka.control import ControlTopic, control_topic_name
from obsync.core.errors import SinkError
from tests.helpers.tasks import unique


def test_two_processes_see_each_others_records_the_last_per_key_winning(kafka) -> None:
    settings = KafkaSettings(kafka.bootstrap_servers)
    topic = control_topic_name(unique("task"))
    a, b = ControlTopic(settings, topic), ControlTopic(settings, topic)
    a.ensure()
    b.ensure()  # a second process finds it
    assert a.refresh() == {}
    a.write({"start": {"log": 1}, "delivered/lane000": {"at": 1}})
    b.write({"start": {"log": 2}, "schema/x": {"line": "1"}, "schema/y": {"line": "2"}})
    a.write({"delivered/lane000": None, "schema/x": {"line": "1"}})  # a deletion; the same record again
    for reader in (a, b, ControlTopic(settings, topic)):
        assert reader.refresh() == {"start": {"log": 2}, "schema/x": {"line": "1"}, "schema/y": {"line": "2"}}
        assert [k for k, _ in reader.items("schema/")] == ["schema/y", "schema/x"]  # order of their last writes
    b.write({"delivered/lane001": {"at": 3}})
    assert a.refresh()["delivered/lane001"] == {"at": 3}  # read on from where it stopped
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    cfg = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    assert next(iter(cfg.values())).result()["cleanup.policy"].value == "compact"
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 1
    for c in (a, b):
        c.close()


def test_a_control_topic_of_several_partitions_is_refused(kafka) -> None:
    topic = control_topic_name(unique("task"))
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    with pytest.raises(SinkError, match=f"control topic '{topic}' has 2 partitions; it must have exactly 1"):
        ControlTopic(KafkaSettings(kafka.bootstrap_servers), topic).ensure()


def test_on_kafka_records_are_read_from_the_start_and_a_topic_shorter_than_what_was_read_is_an_error(kafka_like):
    """On a broker answering a read past the end as Apache Kafka does (librdkafka's mock broker), a process reads
    every record; a topic that now ends before what the process had read (deleted and created again while the
    task runs; the mock deletes no topics, so the process's read point is set past the end) is an error naming
    it: the read used to start over at offset 0 without a word and skip every record before that point."""
    topic = unique("obsync.control.t")
    kafka_like.create_topic(topic)
    settings = KafkaSettings(bootstrap_servers=kafka_like.bootstrap_servers)
    writer = ControlTopic(settings, topic, timeout=20)
    writer.write({"a": 1, "b": {"x": 2}})
    writer.write({"a": 3})
    reader = ControlTopic(settings, topic, timeout=20)
    assert reader.refresh() == {"a": 3, "b": {"x": 2}}
    reader._next = 10  # noqa: SLF001  # what it had read of the topic before it was created again
    with pytest.raises(SinkError) as e:
        reader.refresh()
    assert str(e.value).startswith(f"cannot read {topic}[0] from offset 10 on Kafka ({kafka_like.bootstrap_servers}):"
                                   " it holds offsets 0 to 2")
    writer.close()
    reader.close()

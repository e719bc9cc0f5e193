"""Topic and name rules (`obsync.task.naming`): each table's topic, its kind, and which names are valid."""

from __future__ import annotations

import pytest

from obsync.task.config import parse_task
from obsync.task.naming import (
    check_existing_topic,
    check_topic_template,
    existing_topics,
    render_topic,
    topic_for,
    topic_kind,
    topic_problem,
    topic_safe,
    topic_template,
)

BASE = {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "b:9092"}}


def test_each_table_topic_and_its_kind() -> None:
    task = parse_task({**BASE, "topic": "cdc_${database}", "objects": [
        {"match": "app.users", "topic": "users_v1"},
        {"match": "app.legacy", "existing_topic": "legacy.topic"},
        {"match": "app.*", "topic": "${database}.${table}"},
        {"match": "shop.*"},
    ]})
    fixed, existing, per_table, default = task.objects
    assert [topic_for(task.topic, "app", "users", fixed), topic_for(task.topic, "app", "legacy", existing),
            topic_for(task.topic, "app", "x", per_table), topic_for(task.topic, "shop", "y", default),
            topic_for(task.topic, "shop", "y")] == ["users_v1", "legacy.topic", "app.x", "cdc_shop", "cdc_shop"]
    assert [topic_kind(task.topic, o) for o in task.objects] == ["fixed", "existing", "generated", "generated"]
    assert [topic_template(task.topic, o) for o in task.objects] == [
        "users_v1", "legacy.topic", "${database}.${table}", "cdc_${database}"]
    assert task.topic_for("app", "x", per_table) == "app.x"  # the task file asks the same module
    assert render_topic("Topic_${database}_${table}", "a", "b") == "Topic_a_b"


def test_topics_that_must_exist_name_the_first_object() -> None:
    task = parse_task({**BASE, "objects": [{"match": "a.x", "existing_topic": "t1"}, {"match": "a.y"},
                                           {"match": "a.z", "existing_topic": "t1"},
                                           {"match": "b.*", "existing_topic": "t2"}]})
    assert existing_topics(task.objects) == {"t1": "field `objects.0.existing_topic`",
                                             "t2": "field `objects.3.existing_topic`"}


def test_template_and_topic_name_rules() -> None:
    assert check_topic_template("Topic_${database}_${table}") and check_topic_template("my-topic")
    with pytest.raises(ValueError, match=r"unknown variable \$\{schema\}"):
        check_topic_template("t_${schema}")
    with pytest.raises(ValueError, match="3-64 characters"):
        check_topic_template("a.b")
    assert check_existing_topic("legacy.topic") == "legacy.topic"
    for bad in ("", ".", "..", "a b", "x" * 250):
        assert topic_problem(bad) is not None
        with pytest.raises(ValueError, match="1-249 characters"):
            check_existing_topic(bad)
    assert topic_safe("my db$.t-1") == "my_db_.t-1"

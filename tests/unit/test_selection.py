"""Match rules and exclude patterns (`obsync.task.selection`), the task-file keys behind them, and object CSV."""

from __future__ import annotations

import re

import pytest

from obsync.core.errors import ConfigError
from obsync.task.config import parse_task
from obsync.task.naming import table_name_problem
from obsync.task.objects_csv import object_to_row, read_csv, write_csv
from obsync.task.selection import Selected, Selection, check_pattern, matches

BASE = {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "b:9092"}}


def task(objects, exclude=()):
    return parse_task({**BASE, "objects": objects, "exclude": list(exclude)})


@pytest.mark.parametrize("pattern, table, expected", [
    ("app.*", "users", True), ("app.*", "", True), ("app.user?", "users", True), ("app.user?", "user", False),
    ("app.user?", "userss", False), ("app.[abc]x", "bx", True), ("app.[abc]x", "dx", False),
    ("app.[!abc]x", "dx", True), ("app.[!abc]x", "ax", False), ("app.t[0-9]", "t7", True),
    ("app.t[0-9]", "ta", False), ("app.Users", "users", False), ("app.*_log", "a_b_log", True),
    ("a*.t", "t", True), ("app.t", "t", True), ("app.t", "tt", False), ("app.[]]x", "]x", True),
    ("app.a+b", "a+b", True), ("app.a+b", "aab", False),  # regex characters are literal
])
def test_patterns_match_like_the_issue_says(pattern, table, expected):
    db = "apple" if pattern.startswith("a*") else "app"
    assert matches(pattern, db, table) is expected


def test_database_and_table_sides_are_matched_separately():
    assert not matches("app.*", "app2", "t")  # * never crosses the dot
    assert matches("app*.t", "app2", "t")


@pytest.mark.parametrize("bad, message", [
    ("app", "must be 'database.table'"), ("a.b.c", "must be 'database.table'"), ("app.", "both sides"),
    ("app.[abc", "unclosed '['"), ("app.[]", "unclosed '['"), ("my db.t", "it contains space"),
    ("app.tëst", "non-ASCII"),
])
def test_bad_rules_are_refused_with_the_reason(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_pattern(bad)
    with pytest.raises(ConfigError, match=r"field `objects.0.match`"):
        task([{"match": bad}])


def test_first_matching_rule_wins_and_exclude_beats_every_include():
    s = Selection(task([{"match": "app.user_[0-9]", "topic": "users"}, {"match": "app.user*"}, {"match": "app.*"}],
                       exclude=["app.tmp_*", "app.user_9"]).objects,
                  ["app.tmp_*", "app.user_9"])
    assert [s.index_for("app", t) for t in ("user_1", "user_9", "user_x", "orders", "tmp_a", "tmpx")] == [
        0, None, 1, 2, None, 2]
    assert s.index_for("other", "users") is None
    assert s.index_for("mysql", "user") is None  # system schemas are never synced
    assert s.excluded_by("app", "tmp_1") == "app.tmp_*"
    assert [x.name for x in s.select([("app", "b"), ("app", "a"), ("app", "tmp_1")])] == [("app", "a"), ("app", "b")]
    assert s.schemas() == ["app"]
    assert Selection(task([{"match": "a*.t"}]).objects).schemas() is None


def test_names_obsync_cannot_carry_are_refused_naming_table_and_rule():
    for name in ("a b", "a.b", "a|b", 'a"b', "a'b", "a\\b", "a`b", "a(b", "a)b", "a=b", "a;b", "a/b", "a&b",
                 "a\nb", "a\rb", "é"):
        assert table_name_problem(name) is not None, name
    assert table_name_problem("a b") == "it contains space" and table_name_problem("a\nb") == "it contains line break"
    assert table_name_problem("é") == "it has non-ASCII characters" and table_name_problem("a|b") == "it contains '|'"
    assert table_name_problem("Orders_2024$x") is None
    s = Selection(task([{"match": "app.*"}]).objects)
    with pytest.raises(ConfigError, match=r"objects.0 \('app.\*'\) selects table 'app'.'my t', whose name obsync "
                                          r"cannot carry: it contains space. Add it to `exclude:`"):
        s.check_names([Selected("app", "my t", 0)])


def test_object_settings_in_the_task_file():
    t = task([{"match": "app.users", "topic": "users_v1", "where": "status = 'a'", "columns": ["id", "name"],
               "sharding_columns": ["id"]}, {"match": "app.*", "existing_topic": "legacy.topic"}])
    assert t.topic_for("app", "users", t.objects[0]) == "users_v1"
    assert t.topic_for("app", "x", t.objects[1]) == "legacy.topic"
    assert t.topic_for("app", "x") == "Topic_app_x"
    assert t.objects[0].is_exact and not t.objects[1].is_exact
    for obj, message in [
        ({"match": "a.b", "topic": "x"}, "3-64 characters"),
        ({"match": "a.b", "topic": "T_${schema}"}, r"`objects.0.topic`: `\$\{schema\}`: .*a topic template takes"),
        ({"match": "a.b", "topic": "abc", "existing_topic": "abc"}, "not both"),
        ({"match": "a.b", "where": "  "}, "empty row filter"),
        ({"match": "a.b", "columns": []}, "`columns` is empty"),
        ({"match": "a.b", "columns": ["id", "id"]}, "'id' is named twice"),
        ({"match": "a.b", "existing_topic": "bad topic"}, "1-249 characters"),
    ]:
        with pytest.raises(ConfigError, match=message):
            task([obj])
    with pytest.raises(ConfigError, match=r"field `exclude`: .*unclosed"):
        task([{"match": "a.b"}], exclude=["a.[x"])
    with pytest.raises(ConfigError, match=r"field `sync.dml.0`"):
        parse_task({**BASE, "objects": [{"match": "a.b"}], "sync": {"dml": ["upsert"]}})
    with pytest.raises(ConfigError, match=r"'insert' is listed twice"):
        parse_task({**BASE, "objects": [{"match": "a.b"}], "sync": {"dml": ["insert", "insert"]}})


def test_csv_round_trip_and_errors_with_line_numbers():
    t = task([{"match": "app.users", "where": "name LIKE 'a,%'", "columns": ["id", "name"],
               "sharding_columns": ["id"]}, {"match": "app.*", "existing_topic": "legacy"}])
    text = write_csv([object_to_row("app", "users", t.objects[0], "Topic_app_users"),
                      object_to_row("app", "orders", t.objects[1])])
    assert text.splitlines() == [
        "database,table,topic,where,columns,sharding_columns",
        'app,users,Topic_app_users,"name LIKE \'a,%\'","id,name",id',
        "app,orders,existing:legacy,,,",
    ]
    assert read_csv(text) == [
        {"match": "app.users", "topic": "Topic_app_users", "where": "name LIKE 'a,%'", "columns": ["id", "name"],
         "sharding_columns": ["id"]},
        {"match": "app.orders", "existing_topic": "legacy"},
    ]
    header = "database,table,topic\n"
    for body, message in [
        ("", "empty"), ("database,table,color\n", "line 1: unknown column 'color'"),
        ("table,topic\n", "line 1: the header lacks 'database'"),
        (header + "app,a,\napp,b,t\n", "line 3: topic: .*3-64"),
        (header + "app,a,\napp,a,\n", "line 3: app.a is already on line 2"),
        (header + "app,a b,\n", "line 2: table 'a b'.*space"),
        (header + "app,a\n", "line 2: 2 cells, the header has 3"),
        (header, "no rows"),
    ]:
        with pytest.raises(ConfigError, match=message):
            read_csv(body, origin="o.csv")

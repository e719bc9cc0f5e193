"""obsync.task.start_point: the task's start point (`start.json`), its transitions, its JSON form as obsync
has always written it, and the errors for a start point it cannot use (through `TaskState`, the one reader)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from obsync.app.lifecycle import state_status
from obsync.core.errors import StateError
from obsync.core.positions import LogPosition
from obsync.runtime.prepare import selection_rules
from obsync.task.config import parse_task
from obsync.task.start_point import SelectionRules, StartPoint
from obsync.task.state import TaskState

PLAN = {"version": 1, "dialect": "oceanbase", "scn": 1700000000123456789, "chunk_size": 10, "created_at": 1.0,
        "tables": [], "chunks": [{"id": "shop.a/0", "table": "shop.a", "lo": None, "hi": None,
                                  "estimated_rows": 3}]}
# What obsync wrote before the typed start point, after a backfill was added: loaded and written back as is.
START = {"tables": ["shop.a", "shop.b-x", "shop.new"], "rules": {"match": ["shop.*"], "exclude": ["shop.tmp"]},
         "lanes": 8, "log": ["log", "binlog.000003", 4711, 0], "plan": PLAN,
         "backfills": [{"n": 1, "table": ["shop", "new"]}]}


def test_the_json_form_is_what_obsync_always_wrote(tmp_path: Path) -> None:
    start = StartPoint.from_dict(START)
    assert start.tables == {("shop", "a"), ("shop", "b-x"), ("shop", "new")} and start.lanes == 8
    assert start.rules == SelectionRules(("shop.*",), ("shop.tmp",))
    assert start.log == LogPosition("binlog.000003", 4711, 0) and start.scn == 1700000000123456789
    assert start.full_sync_chunks == 1 and start.backfills == ((1, "shop", "new"),)
    assert start.to_dict() == START
    state = TaskState(tmp_path)
    state.save_start(start)
    assert json.loads((tmp_path / "start.json").read_text()) == START
    assert state.load_start() == start
    bare = {"tables": [], "rules": {"match": ["d.t"], "exclude": []}, "lanes": 8}  # no log, plan nor backfills
    assert StartPoint.from_dict(bare).to_dict() == bare and StartPoint.from_dict(bare).scn is None


def test_keys_it_does_not_know_are_kept_and_a_start_point_without_rules_still_loads() -> None:
    older = {"tables": ["d.t"], "lanes": 4, "note": {"x": 1}}
    start = StartPoint.from_dict(older)
    assert start.rules is None and start.to_dict() == older


def test_transitions_record_a_changed_selection_and_number_backfills_on() -> None:
    start = StartPoint.from_dict(START)
    rules = SelectionRules(("shop.*", "other.*"))
    moved = start.with_selection(rules, [("other", "x")])
    assert moved.rules == rules and moved.tables == start.tables | {("other", "x")}
    assert start.rules == SelectionRules(("shop.*",), ("shop.tmp",))  # frozen: a new value
    more, made = moved.with_backfills([("other", "y"), ("other", "x")])
    assert made == [(2, "other", "x"), (3, "other", "y")]
    assert more.backfills == ((1, "shop", "new"), (2, "other", "x"), (3, "other", "y"))
    assert more.to_dict()["backfills"][1:] == [{"n": 2, "table": ["other", "x"]}, {"n": 3, "table": ["other", "y"]}]
    _, made = StartPoint(frozenset(), 8).with_backfills([("d", "u")])
    assert made == [(1, "d", "u")] and "backfills" not in StartPoint(frozenset(), 8).to_dict()


def test_selection_rules_of_a_task_print_as_before() -> None:
    task = parse_task({"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "k:9092"},
                       "objects": [{"match": "d.t"}, {"match": "e.*"}], "exclude": ["e.tmp"]})
    rules = selection_rules(task)
    assert rules == SelectionRules(("d.t", "e.*"), ("e.tmp",))
    assert str(rules) == str({"match": ["d.t", "e.*"], "exclude": ["e.tmp"]})  # in error messages as before


GARBLED: list[tuple[Any, str]] = [
    ([1, 2], "holds list [1, 2], not a start point"),
    ({"tables": ["d.t"], "rules": {"match": ["d.t"], "exclude": []}}, "was written by an older obsync"),
    ({**START, "lanes": "8"}, "field `lanes` is '8'"),
    ({**START, "lanes": 0}, "field `lanes` is 0"),
    ({**START, "tables": "d.t"}, "field `tables`"),
    ({**START, "tables": ["dt"]}, "field `tables`"),
    ({**START, "rules": ["d.t"]}, "field `rules` is ['d.t']"),
    ({**START, "rules": {"match": "d.t"}}, "field `rules.match` is 'd.t'"),
    ({**START, "log": ["snap", "c", []]}, "field `log`"),
    ({**START, "log": ["log", "binlog", 4, 0]}, "field `log`"),
    ({**START, "log": "binlog.000001:4"}, "field `log`"),
    ({**START, "plan": []}, "field `plan` is []"),
    ({**START, "backfills": {"n": 1}}, "field `backfills`"),
    ({**START, "backfills": [{"n": "1", "table": ["d", "t"]}]}, "field `backfills.0`"),
    ({**START, "backfills": [{"n": 1, "table": ["d"]}]}, "field `backfills.0`"),
]


@pytest.mark.parametrize(("data", "message"), GARBLED)
def test_a_start_point_it_cannot_use_is_refused_naming_the_file_field_and_what_to_do(
        tmp_path: Path, data: Any, message: str) -> None:
    (tmp_path / "start.json").write_text(json.dumps(data))
    with pytest.raises(StateError) as info:
        TaskState(tmp_path).load_start()
    text = str(info.value)
    assert text.startswith(str(tmp_path / "start.json")) and message in text
    assert "--state-dir" in text and "obsync delete" in text


def test_a_damaged_file_is_refused_and_status_shows_why_without_failing(tmp_path: Path) -> None:
    state = TaskState(tmp_path)
    state.identity("t")
    assert state.load_start() is None
    (tmp_path / "start.json").write_text('{"tables": [')
    with pytest.raises(StateError, match=r"start.json is damaged \(not JSON"):
        state.load_start()
    s = state_status(state)
    assert s["state"] == "stopped" and "is damaged" in s["start"]["error"]
    state.save_start(StartPoint.from_dict(START))
    assert state_status(state)["start"] == {"log": START["log"], "tables": 3, "full_sync_chunks": 1}

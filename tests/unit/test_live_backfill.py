"""The pure parts of live changes: backfill filtering of log changes, the backfill queue, `Live`."""

from __future__ import annotations

from obsync.connectors.mysql.binlog.backfill import Backfill, BackfillQueue, admit, key_problem
from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.task.config import parse_task
from obsync.task.live import Live, changed_fields
from obsync.task.start_point import StartPoint

T = TableSchema("d", "t", (Column("id", "int", "int"), Column("v", "varchar", "varchar(10)")), ("id",), ())


def ch(op, before=None, after=None):
    return Change(op, T, LogPosition("b.000001", 10), before, after)


def test_admit_keeps_only_keys_at_or_below_hi_and_splits_crossing_updates():
    bf = Backfill(1, "d", "t", key_columns=("id",))
    assert admit(ch(Op.INSERT, after={"id": 1, "v": "a"}), bf) == []  # nothing emitted yet: all dropped
    bf.hi = (5,)
    assert len(admit(ch(Op.INSERT, after={"id": 5, "v": "a"}), bf)) == 1
    assert admit(ch(Op.DELETE, before={"id": 6, "v": "a"}), bf) == []
    [d] = admit(ch(Op.UPDATE, before={"id": 3, "v": "a"}, after={"id": 9, "v": "a"}), bf)
    assert d.op is Op.DELETE and d.before == {"id": 3, "v": "a"} and d.after is None
    [i] = admit(ch(Op.UPDATE, before={"id": 9, "v": "a"}, after={"id": 4, "v": "a"}), bf)
    assert i.op is Op.INSERT and i.after == {"id": 4, "v": "a"}
    bf.loose = True
    assert len(admit(ch(Op.DELETE, before={"id": 60, "v": "a"}), bf)) == 1


def test_backfill_rows_move_hi_and_form_one_stream_per_run():
    bf = Backfill(2, "d", "t", attempt=36, key_columns=("id",))
    c = bf.row(T, {"id": 7, "v": "x"})
    assert c.op is Op.INSERT and bf.hi == (7,) and bf.rows == 1
    assert c.position.chunk == "backfill-2.10:d.t" and c.position.stream == "snapshot:backfill-2.10:d.t"


def test_queue_state_round_trip_and_selection():
    q = BackfillQueue(run=1)
    q.sync([(1, "d", "t"), (2, "d", "u")], lambda n: True)
    assert set(q.filtering) == {("d", "t"), ("d", "u")}
    cur = q.next()
    assert cur.n == 1
    cur.key_columns, cur.hi, cur.rows = ("id",), (5,), 5
    state = q.progress()
    q2 = BackfillQueue(state, run=2)
    assert q2.current.hi == (5,) and q2.current.attempt == 2 and q2.done == set()
    q2.sync([(1, "d", "t"), (2, "d", "u")], lambda n: n != ("d", "u"), fresh=())
    assert q2.current.loose and not q2.waiting and q2.done == {2}
    q2.finish()
    assert q2.progress().to_dict() == {"done": [1, 2], "current": None} and not q2.active


def test_key_problem_names_a_table_without_key():
    assert key_problem(T) is None
    assert "no primary key" in key_problem(TableSchema("d", "k", T.columns, (), ()))


def test_live_versions_and_requests():
    data = {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "k:9092"},
            "objects": [{"match": "d.t"}]}
    task = parse_task(data)
    live = Live(task)
    assert live.contains(("d", "t")) and not live.contains(("d", "u"))
    task2 = parse_task({**data, "objects": [{"match": "d.t"}, {"match": "d.u"}]})
    assert changed_fields(task, task2) == ["objects"]
    start, made = StartPoint(frozenset(), 8).with_backfills([("d", "u")])
    assert made == [(1, "d", "u")]
    cfg = live.apply(task2, {}, {}, start.backfills)
    assert cfg.version == 1 and live.contains(("d", "u")) and cfg.fresh == {1}

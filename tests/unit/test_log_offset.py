"""obsync.core.offsets: the log offset's transitions, its JSON form (as obsync has always written it), and
the loader's errors for state it cannot resume from."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from decimal import Decimal
from typing import Any

import pytest

from obsync.connectors.mysql.binlog.backfill import BackfillQueue
from obsync.connectors.mysql.binlog.reader import BinlogReader
from obsync.connectors.mysql.binlog.source import BinlogSource
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.errors import StateError
from obsync.core.offsets import BackfillCursor, BackfillProgress, LogOffset
from obsync.core.positions import LogPosition

F = "binlog.000003"
EP = Endpoint("127.0.0.1", 1, "u", "p")

# What obsync 0.x (before the typed offset) wrote, byte for byte: the loader must read it and write it back.
V2 = {"version": 2, "file": F, "pos": 4711, "last": ["log", F, 5120, 17],
      "backfill": {"done": [1], "current": {"n": 2, "table": ["shop", "items"], "attempt": 36,
                                            "hi": [4000, {"d": "1.50"}, {"b": "AAE="}], "rows": 4000},
                   "waiting": [{"n": -42, "table": ["shop", "renamed"], "attempt": 36, "hi": None, "rows": 0}]}}


def test_a_restart_skips_every_change_at_or_before_the_last_one_handed_out() -> None:
    start = LogOffset.starting_at(LogPosition(F, 100, 7))
    assert start == LogOffset(F, 100) and start.restart_point == LogPosition(F, 100, 0) and start.last is None
    assert not start.skips(LogPosition(F, 120, 0))
    emitted = LogOffset(F, 120, LogPosition(F, 300, 2), "0-1-9")
    assert emitted.restart_point == LogPosition(F, 120, 0)
    assert emitted.skips(LogPosition(F, 300, 2)) and emitted.skips(LogPosition(F, 200, 5))
    assert not emitted.skips(LogPosition(F, 300, 3)) and not emitted.skips(LogPosition("binlog.000004", 4, 0))
    with pytest.raises(AttributeError):
        start.pos = 5  # type: ignore[misc]  # assigning to a frozen dataclass is the point


def test_the_json_form_is_what_obsync_always_wrote() -> None:
    offset = LogOffset.from_dict(V2)
    assert offset.restart_point == LogPosition(F, 4711) and offset.last == LogPosition(F, 5120, 17)
    assert offset.gtid is None
    assert offset.backfill is not None and offset.backfill.done == (1,)
    cur = offset.backfill.current
    assert cur is not None and cur.name == ("shop", "items") and cur.hi == (4000, Decimal("1.50"), b"\x00\x01")
    assert [w.n for w in offset.backfill.waiting] == [-42]
    assert offset.to_dict() == V2
    plain = {"version": 2, "file": F, "pos": 4, "last": None, "backfill": None}
    assert LogOffset.from_dict(plain).to_dict() == plain  # no gtid key unless one is known


def test_round_trips_through_json_and_pickle_with_keys_of_every_type() -> None:
    hi = (1, "a", None, True, 1.5, Decimal("2.25"), b"\xff", dt.datetime(2024, 1, 2, 3, 4, 5, 6),
          dt.date(2024, 1, 2), dt.timedelta(days=1, seconds=2, microseconds=3))
    offset = LogOffset(F, 4711, LogPosition(F, 5120, 17), "3e11fa47-71ca-11e1-9e33-c80aa9429562:41",
                       BackfillProgress((1, 3), BackfillCursor(2, "shop", "items", 99, hi, 12),
                                        (BackfillCursor(-5, "shop", "x"),)))
    assert LogOffset.from_dict(json.loads(json.dumps(offset.to_dict()))) == offset
    snap = pickle.loads(pickle.dumps(offset.to_dict()))  # what Bytewax stores: no obsync class inside
    assert b"obsync" not in pickle.dumps(offset.to_dict()) and LogOffset.from_dict(snap) == offset


def test_version_1_states_load_as_having_no_backfill() -> None:
    old = {"version": 1, "file": F, "pos": 4, "last": ["log", F, 90, 0]}
    offset = LogOffset.from_dict(old)
    assert offset == LogOffset(F, 4, LogPosition(F, 90, 0)) and offset.backfill is None
    assert offset.to_dict() == {"version": 2, "file": F, "pos": 4, "last": ["log", F, 90, 0], "backfill": None}


def test_backfill_queue_progress_round_trips_through_the_offset() -> None:
    q = BackfillQueue(LogOffset.from_dict(V2).backfill, run=7)
    assert q.current is not None and q.current.hi == (4000, Decimal("1.50"), b"\x00\x01") and q.current.attempt == 7
    assert [b.n for b in q.waiting] == [-42] and q.done == {1}
    assert q.progress() == BackfillProgress((1,), BackfillCursor(2, "shop", "items", 7, q.current.hi, 4000),
                                            (BackfillCursor(-42, "shop", "renamed", 7),))


GARBLED: list[tuple[Any, str]] = [
    ("binlog.000003:4", "not a binlog resume state"),
    ({"file": F, "pos": 4}, "version None: it was written by an older obsync"),
    ({**V2, "version": 0}, "version 0: it was written by an older obsync"),
    ({**V2, "version": 3}, "version 3: it was written by a newer obsync"),
    ({**V2, "file": None}, "field `file` is None"),
    ({**V2, "file": "binlog"}, "field `file` binlog file name 'binlog' has no numeric suffix"),
    ({**V2, "pos": "4711"}, "field `pos` is '4711', not an integer"),
    ({**V2, "pos": -1}, "field `pos` is -1"),
    ({**V2, "pos": True}, "field `pos` is True"),
    ({**V2, "last": ["snap", "c", [1]]}, "field `last` is ['snap', 'c', [1]], not a log position"),
    ({**V2, "last": ["log", F]}, "field `last`"),
    ({**V2, "last": {"file": F}}, "field `last`"),
    ({**V2, "last": ["log", "nofile", 4, 0]}, "field `last`"),
    ({**V2, "gtid": 5}, "field `gtid` is 5, not a GTID"),
    ({**V2, "backfill": [1]}, "field `backfill` is [1]"),
    ({**V2, "backfill": {"done": [1, "2"], "current": None}}, "field `backfill.done`"),
    ({**V2, "backfill": {"done": [], "current": {"n": 1}}}, "field `backfill.current.table` is None"),
    ({**V2, "backfill": {"done": [], "current": {"n": 1, "table": ["d", "t"], "hi": 5}}},
     "field `backfill.current.hi` is 5"),
    ({**V2, "backfill": {"done": [], "current": {"n": 1, "table": ["d", "t"], "hi": [{"q": 1}]}}},
     "field `backfill.current.hi`"),
    ({**V2, "backfill": {"done": [], "current": {"n": 1, "table": ["d", "t"], "hi": [{"d": "x"}]}}},
     "field `backfill.current.hi`"),
    ({**V2, "backfill": {"done": [], "current": None, "waiting": [{"n": "a", "table": ["d", "t"]}]}},
     "field `backfill.waiting.0.n`"),
]


@pytest.mark.parametrize(("state", "message"), GARBLED)
def test_the_loader_refuses_old_or_garbled_state_naming_it_and_what_to_do(state: Any, message: str) -> None:
    with pytest.raises(StateError) as info:
        LogOffset.from_dict(state, "the saved thing")
    text = str(info.value)
    assert text.startswith("the saved thing") and message in text
    assert "--state-dir" in text and "obsync delete" in text  # what actually gets the task going again


def test_the_reader_takes_a_position_an_offset_or_json_and_hands_out_both() -> None:
    def reader(start: Any) -> BinlogReader:
        return BinlogReader(EP, server_id=1, tables=[("d", "t")], history_dir=None, start=start)

    assert reader(None).offset() is None and reader(None).resume_state() is None
    assert reader(LogPosition(F, 4, 3)).offset() == LogOffset(F, 4)
    offset = LogOffset.from_dict(V2)
    assert reader(offset).offset() is offset
    assert reader(V2).offset() == offset and reader(V2).resume_state() == V2
    with pytest.raises(StateError, match="the binlog resume state has version 9"):
        reader({**V2, "version": 9})


def test_the_log_partition_refuses_a_recovery_snapshot_it_cannot_resume_from() -> None:
    source = BinlogSource(EP, server_id=1, tables=[("d", "t")], history_dir=None, start=LogPosition(F, 4))
    with pytest.raises(StateError, match=r"resume state of the 'log' partition \(Bytewax recovery.*older obsync"):
        source.build_part("log", "log", {"version": 0, "file": F, "pos": 4})


def test_the_log_partition_snapshots_the_offset_it_resumed_from_as_plain_json() -> None:
    source = BinlogSource(EP, server_id=1, tables=[("d", "t")], history_dir=None, start=LogPosition(F, 4))
    part = source.build_part("log", "log", V2)  # the source is unreachable: the reader retries when it starts
    try:
        assert part.snapshot() == V2
    finally:
        part.close()

"""Messages Kafka acknowledged without keeping: the note kept for the resume (`GapFile`) and how the resumed lane
treats each replayed message (`Redo`): the missing written, the held skipped, a key's later messages written
again after its missing one, anything else left to the usual rule."""

from __future__ import annotations

import json

from obsync.connectors.kafka.gaps import Gap, GapFile, Redo
from obsync.connectors.kafka.records import POS_HEADER, SEQ_HEADER
from obsync.core.positions import LogPosition, SnapshotPosition


def log(pos: int) -> LogPosition:
    return LogPosition("bin.000003", pos, 0)


def held(*positions: tuple[LogPosition, int]) -> set:
    return {(p.stream, p.sort_key, seq) for p, seq in positions}


def test_a_note_applies_to_a_resume_from_its_snapshot_only(tmp_path):
    path = tmp_path / "kafka-gaps.json"
    gaps = GapFile(path)
    gap = Gap(40, ((log(500), 0, b"k1"), (SnapshotPosition("db.t/0001", (7, "x")), 2, None)))
    gaps.record("t#1", gap)
    gaps.record("t#2", Gap(10, ((log(600), 1, b"k9"),)))
    assert gaps.take("t#1", 40) == gap
    assert gaps.take("t#1", 40) == gap  # kept until a resume from another snapshot
    assert gaps.take("t#1", 55) is None  # a later snapshot: the note is stale, dropped
    assert gaps.take("t#1", 40) is None
    assert list(json.loads(path.read_text())) == ["t#2"]
    assert gaps.take("t#2", 10) is not None and gaps.take("t#2", 11) is None
    assert not path.exists()


def test_notes_of_one_snapshot_merge_and_of_another_replace(tmp_path):
    gaps = GapFile(tmp_path / "g.json")
    gaps.record("t#0", Gap(5, ((log(1), 0, b"a"),)))
    gaps.record("t#0", Gap(5, ((log(1), 0, b"a"), (log(2), 0, b"b"))))
    assert gaps.take("t#0", 5) == Gap(5, ((log(1), 0, b"a"), (log(2), 0, b"b")))
    gaps.record("t#0", Gap(9, ((log(3), 0, b"c"),)))
    assert gaps.take("t#0", 9) == Gap(9, ((log(3), 0, b"c"),))


def test_a_damaged_or_absent_note_file_is_no_note(tmp_path):
    assert GapFile(None).take("t#0", 0) is None
    path = tmp_path / "g.json"
    assert GapFile(path).take("t#0", 0) is None
    path.write_text("{not json")
    assert GapFile(path).take("t#0", 0) is None


def test_redo_writes_the_missing_skips_the_held_and_rewrites_a_keys_later_messages():
    # Kafka holds 101 (k1), 103 (k2), 104 (k1), 105 (k3) past the snapshot; it lost 102 (k1, a DELETE)
    gap = Gap(0, ((log(102), 0, b"k1"),))
    redo = Redo(gap, held((log(101), 0), (log(103), 0), (log(104), 0), (log(105), 0)))
    assert redo.verdict(log(101), 0, b"k1") is True  # before the missing one: kept as it is
    assert redo.verdict(log(102), 0, b"k1") is False  # the missing one
    assert redo.verdict(log(103), 0, b"k2") is True  # another key: held, skipped
    assert redo.verdict(log(104), 0, b"k1") is False  # the same key after its missing one: written again
    assert redo.verdict(log(105), 0, b"k3") is True
    assert redo.verdict(log(106), 0, b"k1") is False  # new, of the key: written
    assert redo.verdict(log(106), 1, b"k4") is None  # new: the usual rule
    assert redo.verdict(log(90), 0, b"k5") is None  # before the snapshot: the usual rule (it drops it)
    assert redo.rewritten == 1


def test_redo_is_pending_until_the_replay_reached_the_last_message_held_or_missing_of_each_stream():
    snap = SnapshotPosition("db.t/0002", (3,))
    redo = Redo(Gap(0, ((log(102), 0, b"k"),)), held((log(101), 0), (log(104), 2), (snap, 0)))
    assert redo.pending({})
    last = {log(1).stream: ((log(104).sort_key, 1), log(104)), snap.stream: ((snap.sort_key, 0), snap)}
    assert redo.pending(last)
    last[log(1).stream] = ((log(104).sort_key, 2), log(104))
    assert not redo.pending(last)


class _Msg:
    """A delivery report's message as librdkafka hands it over (only what `_Written.report` reads)."""

    def __init__(self, offset, pos: bytes, seq: int, key: bytes) -> None:
        self._offset, self._headers, self._key = offset, [(POS_HEADER, pos), (SEQ_HEADER, str(seq).encode())], key

    def offset(self):
        return self._offset

    def headers(self):
        return self._headers

    def key(self):
        return self._key

    def __len__(self) -> int:
        return 10


def test_acknowledgements_without_an_offset_are_recorded_for_the_check_and_others_are_not():
    import collections
    import types

    from obsync.connectors.kafka.sink import _Written
    from obsync.core.positions import position_to_header

    lane = types.SimpleNamespace(shared=types.SimpleNamespace(unfolded=collections.deque()), error=None)
    w = _Written("t", 0, lane)  # type: ignore[arg-type]
    a, b = position_to_header(log(10)), position_to_header(log(11))
    w.report(None, _Msg(7, a, 0, b"k1"))
    w.report(None, _Msg(None, b, 2, b"k2"))
    assert w.acks == 2 and w.unverified == [(b, 2, b"k2")]

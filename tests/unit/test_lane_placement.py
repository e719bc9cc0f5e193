"""Which lanes each process of a cluster lists to Bytewax (`obsync.steps.lane_placement`)."""

from __future__ import annotations

import zlib

from obsync.connectors.kafka.records import lane_names, lane_of
from obsync.steps.lane_placement import lane_weights, offered_lanes, reader_lanes
from obsync.steps.routing import TopicLayout


def layout_of(partitions: dict[str, int]) -> TopicLayout:
    return TopicLayout({("db", t): t for t in partitions}, dict(partitions))


def test_lane_weights_count_each_table_topics_partitions_per_lane():
    layout = layout_of({"orders": 3, "users": 20})
    weights = lane_weights(layout)
    assert sum(weights.values()) == 23
    start = zlib.crc32(b"orders") % 16
    for p in range(3):  # consecutive lanes from the topic's own
        assert weights[f"lane{(start + p) % 16:03d}"] >= 1
    assert set(weights) == set(lane_names(16))  # users' 20 partitions cover every lane
    expected: dict[str, int] = {}
    for topic, n in (("orders", 3), ("users", 20)):
        for p in range(n):
            expected[lane_of(topic, p, 16)] = expected.get(lane_of(topic, p, 16), 0) + 1
    assert weights == expected


def test_a_topic_of_three_partitions_leaves_the_reader_one_of_them_with_two_processes():
    layout = layout_of({"orders": 3})
    lanes = offered_lanes(layout, process=0, processes=2, log_only=True)
    assert len(lanes) == 1 and lanes[0] in {lane_of("orders", p, 16) for p in range(3)}


def test_sixteen_evenly_filled_lanes_leave_the_reader_a_quarter_with_two_processes_and_a_sixth_with_three():
    weights = {lane: 1 for lane in lane_names(16)}
    assert reader_lanes(weights, 2) == [f"lane{i:03d}" for i in range(4)]  # 16 / 2 * 0.5 = 4, ties by name
    assert len(reader_lanes(weights, 3)) == 3  # 16 / 3 * 0.5 = 2.67


def test_lighter_lanes_are_taken_first_and_only_while_they_bring_the_share_nearer():
    weights = {"lane000": 1, "lane001": 5, "lane002": 2, "lane003": 4}  # 12 partitions: the reader's share is 3
    assert reader_lanes(weights, 2) == ["lane000", "lane002"]  # 1, then 2: exactly 3; 4 and 5 would overshoot
    assert reader_lanes({"lane001": 5, "lane000": 1}, 2) == ["lane000"]  # share 1.5: 1 nears it, 1 + 5 does not
    assert reader_lanes({"lane004": 3}, 2) == []  # share 0.75: 3 is further from it than none


def test_one_partition_is_left_to_the_other_processes():
    assert offered_lanes(layout_of({"orders": 1}), process=0, processes=2, log_only=True) == []


def test_other_processes_single_processes_and_runs_with_a_full_sync_list_every_lane():
    layout = layout_of({"orders": 3})
    every = lane_names(16)
    assert offered_lanes(layout, process=1, processes=2, log_only=True) == every
    assert offered_lanes(layout, process=0, processes=1, log_only=True) == every
    assert offered_lanes(layout, process=0, processes=2, log_only=False) == every
    assert offered_lanes(layout_of({}), process=0, processes=2, log_only=True) == every  # no partition to weigh

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
    lanes = offered_lanes(layout, process=0, processes=2, reads_log=True, full_sync=False)
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
    assert offered_lanes(layout_of({"orders": 1}), process=0, processes=2, reads_log=True, full_sync=False) == []


def test_other_processes_single_processes_and_runs_with_neither_the_log_nor_a_full_sync_list_every_lane():
    layout = layout_of({"orders": 3})
    every = lane_names(16)
    assert offered_lanes(layout, process=1, processes=2, reads_log=True, full_sync=False) == every
    assert offered_lanes(layout, process=1, processes=2, reads_log=True, full_sync=True) == every
    assert offered_lanes(layout, process=0, processes=1, reads_log=True, full_sync=True) == every
    assert offered_lanes(layout, process=0, processes=2, reads_log=False, full_sync=False) == every
    no_topic = layout_of({})  # no partition to weigh
    assert offered_lanes(no_topic, process=0, processes=2, reads_log=True, full_sync=False) == every


def test_a_run_with_a_full_sync_first_leaves_the_reader_the_smaller_side_of_an_uneven_split():
    # 3 partitions over 2 processes: 1 for the reader (an even split by the names gave it 1 or 2), whatever the name
    for topic in ("orders", "t1", "t4", "Topic_bench_t4", "users"):
        lanes = offered_lanes(layout_of({topic: 3}), process=0, processes=2, reads_log=True, full_sync=True)
        assert len(lanes) == 1 and lanes[0] in {lane_of(topic, p, 16) for p in range(3)}, topic


def test_a_run_with_a_full_sync_first_keeps_an_even_split_where_there_is_one():
    weights = {lane: 1 for lane in lane_names(16)}
    assert reader_lanes(weights, 2, share=1.0, at_most=True) == [f"lane{i:03d}" for i in range(8)]  # 8 of 16
    assert len(reader_lanes(weights, 3, share=1.0, at_most=True)) == 5  # 16 / 3 = 5.33: 5, not 6
    # heaviest first, never past an even share: 12 partitions, 6 each; 5, then 4 and 2 would pass 6, then 1
    uneven = {"lane000": 1, "lane001": 5, "lane002": 2, "lane003": 4}
    assert reader_lanes(uneven, 2, share=1.0, at_most=True) == ["lane000", "lane001"]
    # one partition: the reader lists none, the other process writes it
    assert offered_lanes(layout_of({"orders": 1}), process=0, processes=2, reads_log=True, full_sync=True) == []


def test_a_full_sync_without_the_log_leaves_process_0_at_most_an_even_share_too():
    """Its chunks then follow the split (`obsync.steps.chunk_placement`)."""
    layout = layout_of({"orders": 3})
    lanes = offered_lanes(layout, process=0, processes=2, reads_log=False, full_sync=True)
    assert lanes == offered_lanes(layout, process=0, processes=2, reads_log=True, full_sync=True)
    assert len(lanes) == 1

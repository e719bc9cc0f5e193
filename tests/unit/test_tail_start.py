"""Where a read back starts when Kafka answers its offset out of range (connectors.kafka.tail.start_within)."""

from __future__ import annotations

import logging

import pytest

from obsync.connectors.kafka.tail import at_stated_end, ends_from, read_so_far, stalled_end, start_within
from obsync.core.errors import SinkError


def test_a_partition_ending_before_the_start_is_lost_data_naming_offsets_and_brokers():
    with pytest.raises(SinkError) as e:
        start_within("orders", 2, 50, 0, 3, "b1:9092", "Offset out of range")
    assert str(e.value).startswith("orders[2] ends at offset 3 on Kafka (b1:9092), before offset 50")
    assert "no longer holds messages it acknowledged" in str(e.value)
    with pytest.raises(SinkError, match="ends at offset 0"):
        start_within("orders", 0, 1, 0, 0, "b1:9092", "Offset out of range")  # emptied (the topic created again)


def test_a_partition_beginning_after_the_start_is_read_from_its_beginning_and_said(caplog):
    caplog.set_level(logging.WARNING, "obsync.connectors.kafka.tail")
    assert start_within("orders", 1, 40, 70, 90, "b1:9092", "Offset out of range") == 70
    assert start_within("orders", 1, 40, 70, 70, "b1:9092", "Offset out of range") == 70  # all deleted
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert said[0].startswith("orders[1] on Kafka (b1:9092) begins at offset 70, after offset 40")
    assert "deleted offsets 40-69" in said[0] and "reading from offset 70" in said[0]


@pytest.mark.parametrize("start", [0, 5, 10])
def test_a_start_kafka_says_it_holds_is_an_error_naming_both(start):
    with pytest.raises(SinkError) as e:
        start_within("orders", 0, start, 0, 10, "b1:9092", "Offset out of range")
    assert f"offset {start} of orders[0]" in str(e.value) and "(Offset out of range)" in str(e.value)
    assert "holds offsets 0 to 9" in str(e.value) and "nothing was written" in str(e.value)


def test_an_empty_partition_is_said_to_hold_no_messages():
    with pytest.raises(SinkError, match=r"holds no messages \(its next offset is 7\)"):
        start_within("orders", 0, 7, 7, 7, "b1:9092", "Offset out of range")


@pytest.mark.parametrize("start, low, high, expected", [
    (50, 0, 3, [3, 0]),  # said shorter: the cheap read from its answer, then the whole partition
    (50, 0, 0, [0]),  # said empty: one read, from its only offset
    (50, 0, 80, [0]),  # said longer, yet the read from 50 stalled: what it holds, from its beginning
    (50, 20, 30, [30, 20]),
    (50, 50, 80, []),  # begins at the start: nothing before it to read
    (50, 70, 90, []),  # begins after it (deleted): the out-of-range answer handles that (`start_within`)
    (50, -1, -1, []),  # unknown (an error answer)
    (50, -1, 3, [3]),
])
def test_a_stalled_read_looks_for_the_partitions_end_from_kafkas_answer_then_from_its_beginning(start, low, high,
                                                                                                expected):
    assert ends_from(start, low, high) == expected


@pytest.mark.parametrize("start, reached, high, expected", [
    (818, 946, 660, True),  # seen with tansu after a failed write: messages to 945, ListOffsets 660, reads 991
    (818, 946, 946, True),  # read to where Kafka says it ends
    (818, 946, 991, False),  # Kafka says there is more: wait for it (a slow or silent broker)
    (818, 818, 818, True),  # nothing read, and Kafka says the partition ends where the read starts
    (818, 818, 660, False),  # nothing read, said to end before the start: lost messages, not an end (judged apart)
    (818, 818, 900, False),
    (818, 946, -1, False),  # not answered
])
def test_a_stalled_read_is_at_the_end_when_kafka_says_nothing_lies_past_what_it_read(start, reached, high, expected):
    assert at_stated_end(start, reached, high) is expected


@pytest.mark.parametrize("start, reached, said", [
    (2263, 2263, ""),  # nothing read: the log line's "nothing read from ... (from offset 2263" says it all
    (2263, 2264, "; read offsets 2263 to 2263, then nothing"),
    (818, 946, "; read offsets 818 to 945, then nothing"),  # where tansu's data ended after a failed write
])
def test_a_stalled_read_says_where_its_messages_stopped(start, reached, said):
    assert read_so_far(start, reached) == said


@pytest.mark.parametrize("offset, reached, high, end", [
    (0, 905, 905, 905),  # seen with tansu: messages 0-904, ListOffsets 905, the snapshot at 994: a loss
    (0, 905, 700, 905),  # read past what ListOffsets says: the messages' end
    (0, 600, 905, None),  # not yet at the stated end: a slow read, no end known
    (905, 905, 905, None),  # nothing read: nothing known (a slow broker's read looks the same)
    (0, 905, -1, None),  # ListOffsets not answered
])
def test_a_read_for_the_end_that_stalls_at_the_stated_end_takes_it(offset, reached, high, end):
    assert stalled_end(offset, reached, high) == end

"""Which full-sync chunks each process of a cluster lists to Bytewax (`obsync.steps.chunk_placement`)."""

from __future__ import annotations

import pytest

from obsync.connectors.mysql.snapshot.plan import Chunk, SnapshotPlan
from obsync.steps.chunk_placement import WRITE_OVER_READ, chunk_owners, chunk_shares, offered_chunks
from obsync.steps.lane_placement import full_sync_lane_shares
from obsync.steps.routing import TopicLayout


def plan_of(sizes: dict[str, int]) -> SnapshotPlan:
    chunks = tuple(Chunk(cid, "db.orders", None, None, rows) for cid, rows in sizes.items())
    return SnapshotPlan("mariadb", 50_000, (), chunks)


def test_shares_balance_reading_and_writing_for_a_two_to_one_split_of_the_lanes():
    # 3 partitions over 2 processes: process 0 writes 1, process 1 writes 2
    lanes = [1 / 3, 2 / 3]
    encoded_where_read = chunk_shares(lanes, crosses_rows=False)
    ratio = WRITE_OVER_READ[False]
    assert encoded_where_read == pytest.approx([0.5 + ratio / 6, 0.5 - ratio / 6])
    # each process's cost, reading its share and writing its lanes' rows, is the same
    cost = [share + ratio * lane for share, lane in zip(encoded_where_read, lanes, strict=True)]
    assert cost[0] == pytest.approx(cost[1])
    crossing = chunk_shares(lanes, crosses_rows=True)  # the lanes encode: the lighter writer reads nearly all
    assert crossing[0] > 0.9 and sum(crossing) == pytest.approx(1.0)


def test_an_even_split_of_the_lanes_gives_even_shares_and_no_share_is_below_zero():
    assert chunk_shares([0.5, 0.5], crosses_rows=True) == pytest.approx([0.5, 0.5])
    shares = chunk_shares([0.0, 1.0], crosses_rows=True)  # one process writes everything: the other reads all
    assert shares == pytest.approx([1.0, 0.0])


def test_owners_follow_the_shares_by_estimated_rows_largest_chunks_first():
    sizes = {"c1": 50_000, "c2": 50_000, "c3": 50_000, "c4": 50_000, "c5": 50_000, "c6": 10}
    owners = chunk_owners(sizes, [2 / 3, 1 / 3])
    rows = [sum(sizes[c] for c, p in owners.items() if p == k) for k in (0, 1)]
    assert set(owners) == set(sizes)
    assert rows == [150_010, 100_000]  # 4 of the 5 large ones would overshoot process 0's two thirds least
    assert chunk_owners({"a": 0, "b": 0}, [0.5, 0.5]) == {"a": 0, "b": 1}  # empty chunks still weigh one row


def bytewax_primaries(listed: dict[int, list[str]]) -> dict[str, int]:
    """Bytewax 0.21's assignment (src/timely.rs, `calc_primaries`) with one worker per process: parts listed by
    fewer processes first, each to the candidate with the fewest parts so far."""
    known: dict[str, list[int]] = {}
    for proc, parts in listed.items():
        for part in parts:
            known.setdefault(part, []).append(proc)
    given: dict[str, int] = {}
    for part in sorted(known, key=lambda p: len(known[p])):
        given[part] = min(known[part], key=lambda w: list(given.values()).count(w))
    return given


@pytest.mark.parametrize(("sizes", "lanes", "crosses"), [
    ({f"orders:{i}": 50_000 for i in range(4)}, [1 / 3, 2 / 3], False),
    ({f"orders:{i}": 50_000 for i in range(12)}, [1 / 3, 2 / 3], False),
    ({f"orders:{i}": 50_000 for i in range(6)}, [1 / 3, 2 / 3], True),
    ({f"orders:{i}": 40_000 + i for i in range(7)}, [0.25, 0.75], False),
])
def test_bytewax_gives_each_process_the_chunks_it_owns(sizes, lanes, crosses):
    plan = plan_of(sizes)
    listed = {p: offered_chunks(plan, p, lanes, crosses_rows=crosses) for p in (0, 1)}
    assert listed[0] == plan.chunk_ids  # process 0 lists every chunk: none is left unread
    for chunks in listed.values():
        assert chunks == [c for c in plan.chunk_ids if c in chunks]  # in the plan's order
    owners = chunk_owners(sizes, chunk_shares(lanes, crosses))
    assert bytewax_primaries(listed) == owners
    assert sorted(listed[1]) == sorted(c for c, p in owners.items() if p == 1)


def test_without_known_lane_shares_every_process_offers_every_chunk():
    plan = plan_of({"a": 1, "b": 2})
    assert offered_chunks(plan, 0, None, crosses_rows=True) == ["a", "b"]
    assert offered_chunks(plan, 0, [1.0], crosses_rows=True) == ["a", "b"]


def test_lane_shares_of_a_full_sync_run_give_the_reader_at_most_an_even_share():
    layout = TopicLayout({("db", "orders"): "orders"}, {"orders": 3})
    assert full_sync_lane_shares(layout, 2) == pytest.approx([1 / 3, 2 / 3])
    assert full_sync_lane_shares(layout, 1) is None
    assert full_sync_lane_shares(TopicLayout({}, {}), 2) is None
    three = full_sync_lane_shares(TopicLayout({("db", "t"): "t"}, {"t": 16}), 3)
    assert three is not None and three[0] == pytest.approx(5 / 16) and sum(three) == pytest.approx(1.0)


def test_a_process_owning_more_chunks_than_process_0_reads_no_chunk_it_does_not_own():
    """Even lanes and chunks of unequal sizes: process 1 owns 8 of 15 chunks by rows, one more than process 0, so
    Bytewax's balancing by count gives one of them to process 0; every chunk is still read, by one process."""
    sizes = {f"t{t}:{i}": 1_000 * (t + 1) for t in range(3) for i in range(5)}
    plan = plan_of(sizes)
    owners = chunk_owners(sizes, chunk_shares([0.5, 0.5], False))
    assert [list(owners.values()).count(p) for p in (0, 1)] == [7, 8]
    listed = {p: offered_chunks(plan, p, [0.5, 0.5], crosses_rows=False) for p in (0, 1)}
    given = bytewax_primaries(listed)
    assert set(given) == set(sizes)
    assert {c for c, p in given.items() if p == 1} <= {c for c, p in owners.items() if p == 1}

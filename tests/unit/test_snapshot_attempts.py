"""The attempt rule of tables without a key on MySQL/MariaDB: every scan of an ordinal chunk numbers its rows
under an attempt greater than that of any scan before it, whatever state was saved, so that a rescan's
positions sort after every position an earlier scan may have written and the Kafka sink drops none of them."""

from __future__ import annotations

from obsync.connectors.mysql.snapshot.reader import next_attempt
from obsync.core.positions import SnapshotPosition

T0 = 1_796_000_000.0  # epoch seconds


def test_an_attempt_is_the_scan_start_in_microseconds() -> None:
    assert next_attempt(0, now=T0 + 0.25) == 1_796_000_000_250_000
    assert next_attempt(7, now=T0) == int(T0 * 1_000_000)  # an attempt of an older obsync (a small count)


def test_an_attempt_is_after_the_one_it_follows_even_if_the_clock_is_not() -> None:
    first = next_attempt(0, now=T0)
    assert next_attempt(first, now=T0) == first + 1  # two scans in one microsecond
    assert next_attempt(first, now=T0 - 3600) == first + 1  # the clock stepped back


def test_runs_killed_before_their_first_snapshot_never_share_an_attempt() -> None:
    # Every run restores the same state (none, or the last snapshot's); each scans under its own attempt,
    # after every earlier run's, because it starts later.
    for restored in (0, next_attempt(0, now=T0 - 10)):
        attempts = [next_attempt(restored, now=T0 + run * 1.5) for run in range(6)]
        assert attempts == sorted(set(attempts)) and attempts[0] > restored


def test_every_position_of_a_rescan_sorts_after_every_position_of_the_scans_before() -> None:
    chunk = "shop.heap/0000"
    earlier = next_attempt(0, now=T0)
    later = next_attempt(0, now=T0 + 2)  # a run that restored no state, started after the first
    assert SnapshotPosition(chunk, (later, 1)).sort_key > SnapshotPosition(chunk, (earlier, 10**12)).sort_key
    assert SnapshotPosition(chunk, (later, 1)).stream == SnapshotPosition(chunk, (earlier, 1)).stream

"""Which sink lanes a process offers Bytewax: the process reading the log takes a smaller share of Kafka's partitions.

Bytewax gives each sink part (a lane) to one of the workers that list it, the least loaded one first (bytewax
0.21, src/timely.rs, `calc_primaries`): when every process lists every lane, the lanes are split evenly, and
which process writes how many of a topic's partitions is left to the names of the topic and the lanes. In a
cluster, process 0 reads the log: it reads, decodes and picks the lane of every change besides encoding and
producing for the lanes it writes, and with an even split it was the one the others waited for
(docs/performance.md, "The process reading the log writes fewer lanes").

So in a cluster run that reads the log or has a full sync to do, process 0 lists only some lanes, and the other
processes list every lane: Bytewax gives them the rest first, then process 0 the lanes it listed.

- A run with only the log to read (its full sync is delivered, or it has none): lanes holding about
  `READER_SHARE` of an even share of the task's data partitions.
- A run with a full sync to do (then the log, or not): the lanes stay where they are for the log that follows in
  the same run (a task left running never restarts into the log-only placement). Process 0 takes at most an even
  share, the smaller side where the partitions cannot be split evenly: with 3 partitions over 2 processes it
  writes 1, whatever the topic's name (an even split by the names gave it 2 for some topics: docs/performance.md,
  "Lanes of a run with a full sync"). Knowing the split, the full sync's chunks follow it: the processes writing
  fewer partitions read more chunks (`obsync.steps.chunk_placement`).
- A run without the log and without a full sync to do: every lane.

Where lanes are written changes nothing a message carries: each lane's state (what it wrote to each partition)
is Bytewax's, which resumes it on whichever worker builds the lane.
"""

from __future__ import annotations

from obsync.steps.routing import TopicLayout

# process 0's share of the data partitions, as a fraction of an even share (1 / processes), in a run with only
# the log to read: measured on 2 processes, 1 of 3 partitions for the reader against 2 of 3 (docs/performance.md)
READER_SHARE = 0.5


def lane_weights(layout: TopicLayout) -> dict[str, int]:
    """How many of the tables' Kafka partitions each lane writes (lanes writing none are left out)."""
    weights: dict[str, int] = {}
    for topic in layout.table_topics():
        for partition in range(layout.partitions[topic]):
            lane = layout.lane(topic, partition)
            weights[lane] = weights.get(lane, 0) + 1
    return weights


def reader_lanes(weights: dict[str, int], processes: int, share: float = READER_SHARE,
                 at_most: bool = False) -> list[str]:
    """The lanes the process reading the log lists: lightest first (ties by name), each taken while it brings
    their partitions nearer `share` of an even share of all of them (none when one lane alone is further from it
    than none is). With `at_most`: heaviest first, each taken that keeps them within that share (which comes
    nearer it than lightest first). Sorted by name."""
    target = sum(weights.values()) / processes * share
    chosen: list[str] = []
    got = 0
    order = sorted(weights.items(), key=lambda lw: (-lw[1] if at_most else lw[1], lw[0]))
    for lane, weight in order:
        if got + weight <= target if at_most else abs(got + weight - target) < abs(got - target):
            chosen.append(lane)
            got += weight
    return sorted(chosen)


def full_sync_lanes(weights: dict[str, int], processes: int) -> list[str]:
    """The lanes process 0 lists in a run with a full sync to do: at most an even share (`reader_lanes` with
    `at_most`); `full_sync_lane_shares` weighs the chunks by the same lanes."""
    return reader_lanes(weights, processes, share=1.0, at_most=True)


def offered_lanes(layout: TopicLayout, process: int, processes: int, reads_log: bool, full_sync: bool) -> list[str]:
    """The lanes process `process` of `processes` lists to Bytewax (see the module docstring); `reads_log`: the
    run reads the log (process 0 does); `full_sync`: it has a full sync to do first."""
    weights = lane_weights(layout) if processes > 1 and process == 0 and (reads_log or full_sync) else {}
    if not weights:  # not the reader's run, or no table's topic known yet (nothing to weigh)
        return layout.parts()
    if full_sync:
        return full_sync_lanes(weights, processes)
    return reader_lanes(weights, processes)


def full_sync_lane_shares(layout: TopicLayout, processes: int) -> list[float] | None:
    """The fraction of the tables' partitions each process writes in a cluster run with a full sync to do
    (`offered_lanes`): process 0 its lanes' partitions, the others the rest in equal parts (Bytewax
    splits the lanes only process 0 does not list among them by count). None for one process, or with no table's
    topic known yet."""
    weights = lane_weights(layout) if processes > 1 else {}
    total = sum(weights.values())
    if not total:
        return None
    reader = sum(weights[lane] for lane in full_sync_lanes(weights, processes)) / total
    return [reader] + [(1 - reader) / (processes - 1)] * (processes - 1)

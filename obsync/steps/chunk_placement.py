"""Which full-sync chunks a process offers Bytewax: a process writing fewer of Kafka's partitions reads more rows.

A full-sync row costs CPU in two places: where its chunk is read (the SELECT, shaping, and either its encoding or,
for formats whose rows cross as values (`Router.crosses_rows`), picking its lane) and where its partition's sink
lane is (producing it, and encoding it when it crossed as values). When every process lists every chunk,
Bytewax splits the chunks evenly by count (bytewax 0.21, src/timely.rs, `calc_primaries`), while the lanes of a
topic with few partitions cannot split evenly: with 3 partitions over 2 processes one process writes 2 of them,
and the whole full sync waits for it (docs/performance.md, "Chunks placed by the lanes' split").

So in a cluster, whose lanes' split in a full sync is known (`obsync.steps.lane_placement` gives process 0 at
most an even share), each process lists the chunks `chunk_owners` gives it, sized so that read side plus write
side cost each process about the same:

    share_p = 1/P + ratio * (1/P - lanes_p)

where `lanes_p` is the fraction of the tables' partitions process p writes and `ratio` the write side's CPU a row
over the read side's (`WRITE_OVER_READ`, from the stages alone). Chunks go to processes by their estimated rows,
largest first, each to the process furthest below its share. Every process computes the owners from the plan
and the layout; process 0 lists every chunk and the others their own. Bytewax gives a chunk listed by one process
to it first, then each chunk listed by several to the least loaded of them by count, so process 0 gets its own
chunks and the others theirs as long as none owns more chunks than process 0 (which writes at most an even share
of the partitions, so owns at least an even share of the rows). And were the processes ever to disagree on the
owners, no chunk would be left unread: process 0 lists them all.

Where a chunk is read changes nothing a message carries: a chunk's state (how far it was read) is Bytewax's,
which resumes it on whichever worker builds it, and its rows are written by the lane of their partition wherever
they were read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from obsync.connectors.mysql.snapshot.plan import SnapshotPlan

# CPU a row on the lane's side over the reading side's, from the stages alone (`python -m bench.stages`,
# docs/performance.md): rows encoded where read (select 8 + encode 11 us against produce 10: about 0.5); rows
# crossing as values, encoded by the lane (`debezium`: select 8 + pick 1.5 against encode 13 + produce 12.5)
WRITE_OVER_READ = {False: 0.5, True: 2.7}


def chunk_shares(lane_shares: Sequence[float], crosses_rows: bool) -> list[float]:
    """Each process's share of the full sync's rows, given the fraction of the partitions each writes: the shares
    that cost every process the same (module docstring), none below 0, summing to 1."""
    processes = len(lane_shares)
    ratio = WRITE_OVER_READ[crosses_rows]
    raw = [max(0.0, 1 / processes + ratio * (1 / processes - lanes)) for lanes in lane_shares]
    total = sum(raw)
    return [r / total for r in raw] if total > 0 else [1 / processes] * processes


def chunk_owners(sizes: Mapping[str, int], shares: Sequence[float]) -> dict[str, int]:
    """The process reading each chunk (`sizes`: chunk id -> estimated rows): largest chunks first (ties by id),
    each to the process furthest below its share of all rows (ties: the lowest index)."""
    weights = {cid: max(1, rows) for cid, rows in sizes.items()}
    total = sum(weights.values())
    given = [0] * len(shares)
    owners: dict[str, int] = {}
    for cid, rows in sorted(weights.items(), key=lambda cw: (-cw[1], cw[0])):
        owner = max(range(len(shares)), key=lambda p: (shares[p] * total - given[p], -p))
        owners[cid] = owner
        given[owner] += rows
    return owners


def offered_chunks(plan: SnapshotPlan, process: int, lane_shares: Sequence[float] | None,
                   crosses_rows: bool) -> list[str]:
    """The chunks process `process` lists to Bytewax: when the processes' lane shares are known, its own
    (`chunk_owners`), or every chunk for process 0 (module docstring); else every chunk. In the plan's order."""
    if lane_shares is None or len(lane_shares) < 2 or process == 0:
        return plan.chunk_ids
    owners = chunk_owners({c.id: c.estimated_rows for c in plan.chunks}, chunk_shares(lane_shares, crosses_rows))
    return [cid for cid in plan.chunk_ids if owners[cid] == process]

"""How a source partition is paced by a rate limit, as protocols (implemented by `obsync.steps.ratelimit`).

A source is given one `Pacing` (the limit shared by all its partitions in the process, or None: no limit).
It reads at most `fetch_rows(batch_size)` rows at once, and each partition gets its own `BatchPacer`
(`pacing.pacer()`): a batch read is held by it (`hold`) and handed out in slices (`next_batches`) as the limit
allows; while it is `holding`, the partition reads nothing more, and it reads again only once `read_delay()`
is 0 (the limit is not in debt). Nothing here blocks: a partition that must wait returns no item and asks the
engine to wake it at the time given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class BatchPacer(Protocol):
    """One source partition's held batch, handed out in order as the shared limit allows."""

    @property
    def holding(self) -> bool:
        """True while part of the held batch was not handed out."""
        ...

    def hold(self, batch: list[Any]) -> None:
        """Hold a batch just read (only when not `holding`)."""

    def next_batches(self) -> tuple[list[list[Any]], datetime | None]:
        """What the partition's `next_batch` returns now (a slice, or nothing) and its `next_awake`."""
        ...

    def read_delay(self) -> float:
        """Seconds until the partition may read more from the source (0: now)."""
        ...


class Pacing(Protocol):
    """A rate limit shared by a source's partitions in this process."""

    def fetch_rows(self, batch_size: int) -> int:
        """The most rows a source should read at once: `batch_size`, or less under a low limit."""
        ...

    def pacer(self) -> BatchPacer:
        """A pacer for one partition, drawing on this limit."""
        ...

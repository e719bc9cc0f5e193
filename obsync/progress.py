"""Progress of a running task: rows and bytes written, throughput, lag and position, logged periodically."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("obsync.progress")


class Progress:
    """Counters shared by the sink parts of one process; `report()` logs a line at most every `interval` s."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.rows = 0
        self.bytes = 0
        self.dropped = 0
        self.last_position: Any = None
        self.last_commit_time: float | None = None
        self._started = self._last_report = time.monotonic()
        self._rows_at_report = 0
        self._lock = threading.Lock()

    def wrote(self, last: Any, count: int, size: int) -> None:
        """`count` messages of `size` bytes written, `last` the last of them."""
        self.rows += count
        self.bytes += size
        self.last_position = last.position
        if last.commit_time is not None:
            self.last_commit_time = last.commit_time
        self.maybe_report()

    def skipped(self, n: int) -> None:
        self.dropped += n

    def lag_seconds(self) -> float | None:
        """Seconds between now and the commit time of the last change written (log changes only)."""
        return None if self.last_commit_time is None else max(0.0, time.time() - self.last_commit_time)

    def maybe_report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < self.interval:
            return
        with self._lock:
            dt = max(now - self._last_report, 1e-9)
            rate = (self.rows - self._rows_at_report) / dt
            self._last_report, self._rows_at_report = now, self.rows
        lag = self.lag_seconds()
        log.info("wrote %d messages (%.0f/s, %.1f MB), dropped %d replayed, lag %s, position %s",
                 self.rows, rate, self.bytes / 1e6, self.dropped,
                 "-" if lag is None else f"{lag:.1f}s", self.last_position)

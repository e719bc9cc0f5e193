"""Summarising a logger's repeats: librdkafka logs each failed connection attempt (about three lines a second
per client while a broker is down), which buries everything else. `RepeatFilter` lets one line per distinct
message through every `window` seconds; the next one let through after repeats says how many were held back
("(and 87 more like it in the last 30 s)"). Lines differ only in timings ("after 0ms in state CONNECT") count
as the same. Pure apart from the clock (`clock`), tested without librdkafka."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

_TIMINGS = re.compile(r"\s*\(after \d+ms in state \w+[^)]*\)|\b\d+ms\b")


def _text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return str(record.msg)


class RepeatFilter(logging.Filter):
    """See the module docstring."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()  # librdkafka logs from its own threads
        self._seen: dict[tuple[int, str], list[float]] = {}  # key -> [when let through, repeats held since]

    def filter(self, record: logging.LogRecord) -> bool:
        text = _text(record)
        key = (record.levelno, _TIMINGS.sub("", text))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return False
            held = int(seen[1]) if seen is not None else 0
            since = now - seen[0] if seen is not None else 0.0
            self._seen[key] = [now, 0]
            if len(self._seen) > 1000:  # distinct messages are few; never grow without bound
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        if held:
            record.msg, record.args = f"{text} (and {held} more like it in the last {since:.0f} s)", None
        return True

"""How progress looks: counts, durations and sizes for people, a rate meter, and per-table bars on a terminal.

The pure parts (`format_count`, `format_duration`, `format_bytes`, `eta_seconds`, `render_bar`, `RateMeter`)
have no state beyond their arguments; `TerminalBars` redraws one bar per table in place on a terminal.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from collections.abc import Iterable
from typing import Any, TextIO

log = logging.getLogger("obsync.runtime.progress")

# -- formatting ------------------------------------------------------------------------------------------

def format_count(n: float) -> str:
    """12,345 below 100,000; then 123.4k, 12.35M, 1.235G."""
    n = float(n)
    if abs(n) < 100_000:
        return f"{n:,.0f}"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.4g}{unit}"
    return f"{n:,.0f}"  # pragma: no cover


def format_duration(seconds: float | None) -> str:
    """`45s`, `3m05s`, `2h03m`, `4d05h`; `?` when unknown."""
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def format_bytes(n: float) -> str:
    for div, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def eta_seconds(done: int, total: int, rate: float | None) -> float | None:
    """Seconds until `done` reaches `total` at `rate` per second (None if unknown, 0 when there)."""
    if done >= total:
        return 0.0
    if not rate or rate <= 0:
        return None
    return (total - done) / rate


def render_bar(label: str, done: int, total: int, rate: float | None = None, *, finished: bool = False,
               width: int = 24, label_width: int = 0, unit: str = "rows") -> str:
    """One progress line: `label [#####-----]  45.0%  12,345/27,000 rows  4,100 rows/s  ETA 4s`.

    `total` is an estimate: `done` may pass it (the bar stays full, the percentage at 100% until
    `finished`, then 100%); `finished` shows `done` instead of an ETA.
    """
    if finished:
        frac = 1.0
    elif total > 0:
        frac = min(done / total, 1.0)
        if frac >= 1.0:
            frac = 0.999  # the estimate was low: not done until the chunks say so
    else:
        frac = 0.0
    filled = int(frac * width)
    bar = "#" * filled + "-" * (width - filled)
    known = total > 0 or finished
    parts = [f"{label:<{label_width}} [{bar}] " + (f"{frac * 100:5.1f}%" if known else "    ?%"),
             (f"{format_count(done)}/{format_count(max(total, done) if finished else total)} {unit}" if known
              else f"{format_count(done)} {unit}")]
    if finished:
        parts.append("done")
    elif done == 0 and not rate:
        parts.append("waiting")
    else:
        if rate is not None:
            parts.append(f"{format_count(rate)} {unit}/s")
        parts.append(f"ETA {format_duration(eta_seconds(done, total, rate)) if known else '?'}")
    return "  ".join(parts)


class RateMeter:
    """Rate of a growing total over the last `window` seconds (samples added by the caller)."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, t: float, value: float) -> None:
        s = self._samples
        s.append((t, value))
        # keep one sample at or before the window's start, so the rate covers the whole window
        while len(s) > 2 and s[1][0] <= t - self.window:
            s.popleft()

    def rate(self) -> float | None:
        s = self._samples
        if len(s) < 2:
            return None
        (t0, v0), (t1, v1) = s[0], s[-1]
        return None if t1 <= t0 else (v1 - v0) / (t1 - t0)


# -- what the sources report ---------------------------------------------------------------------------------


def isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class TerminalBars:
    """A block of lines at the bottom of a terminal, redrawn in place; log lines print above it.

    `attach_logging()` wraps the `emit` of the root logger's handlers writing to the same stream: the
    block is erased, the record printed, the block drawn again, all under one lock.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines = 0  # lines of the block now on screen
        self._last: list[str] = []
        self.lock = threading.RLock()
        self._wrapped: list[logging.Handler] = []

    def draw(self, lines: Iterable[str]) -> None:
        lines = list(lines)
        with self.lock:
            self._write(self._erase() + "".join(line + "\n" for line in lines))
            self.lines = len(lines)
            self._last = lines

    def clear(self) -> None:
        with self.lock:
            if self.lines:
                self._write(self._erase())
                self.lines = 0

    def release(self) -> None:
        """Leave the block on screen as it is; later output goes below it."""
        with self.lock:
            self.lines = 0
            self._last = []

    def _erase(self) -> str:
        return f"\r\x1b[{self.lines}A\x1b[J" if self.lines else ""

    def _write(self, text: str) -> None:
        if text:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def attach_logging(self) -> None:
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is self.stream \
                    and "emit" not in vars(h):
                orig = h.emit

                def emit(record: logging.LogRecord, _orig: Any = orig) -> None:
                    with self.lock:
                        shown = self.lines
                        self.clear()
                        _orig(record)
                        if shown and self._last:
                            self.draw(self._last)

                h.emit = emit  # type: ignore[method-assign]  # wraps the handler's emit to redraw the status line
                self._wrapped.append(h)

    def detach_logging(self) -> None:
        for h in self._wrapped:
            vars(h).pop("emit", None)
        self._wrapped = []

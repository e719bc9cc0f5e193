"""Noticing a Kafka broker that acknowledges nothing: how long messages have waited, when to say so, when to
give up.

The sink waits for acknowledgements in short slices (a full producer queue, a flush); after each slice it asks
`AckWatch.observe(pending)`. Messages count as waiting from the first time they are seen pending after none
were, or from the last acknowledgement, whichever is later. Once they have waited `notice` seconds the broker
counts as stalled: the verdict says to log it (again every `repeat` seconds) and how long the silence lasts;
after `patience` seconds (None: never) it says to give up. The first acknowledgement (or an empty queue) ends
the wait, and the verdict says how long it lasted. Pure: the clock is given, so it is tested without a broker
(`tests/unit/test_broker_stall.py`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_MESSAGE_TIMEOUT_MS = 2**31 - 1  # librdkafka's largest `message.timeout.ms`
MESSAGE_TIMEOUT_MARGIN = 300.0  # s librdkafka's `message.timeout.ms` is set beyond the patience (its own default)
STOP_GRACE = 2.0  # s of silence after which a stop ends a wait for Kafka (the notice time, if shorter)


@dataclass(frozen=True)
class BrokerPatience:
    """How long the sink lets Kafka be silent: `notice` s before saying so, `patience` s (None: forever) before
    the task fails; `repeat`: seconds between the log lines while it lasts."""

    notice: float = 30.0
    patience: float | None = 600.0
    repeat: float = 30.0

    def message_timeout_ms(self) -> int:
        """librdkafka's `message.timeout.ms` for this patience (0: infinite): a message may wait the patience
        plus librdkafka's own default before librdkafka fails it, so that a broker silent for the whole
        patience is reported by obsync's clear error rather than by librdkafka's "Message timed out"."""
        if self.patience is None:
            return 0
        ms = int((self.patience + MESSAGE_TIMEOUT_MARGIN) * 1000)
        return 0 if ms > MAX_MESSAGE_TIMEOUT_MS else ms


@dataclass(frozen=True)
class Verdict:
    """What the sink should do after a slice of waiting."""

    silent_for: float = 0.0  # s the waiting messages have had no acknowledgement so far
    stalled: bool = False  # for `notice` s or more: the broker counts as stalled
    announce: bool = False  # log the stall now (it just began, or `repeat` s passed since the last line)
    recovered_after: float | None = None  # the stall just ended, having lasted this long
    give_up: bool = False  # the patience ran out


OK = Verdict()
DEFAULT_PATIENCE = BrokerPatience()  # the task file's defaults (target.stall_timeout 30 s, target.patience 600 s)


class AckWatch:
    """The stall state of one producer (see the module docstring). Thread-safe: `acked` is called from delivery
    reports, `observe` by any thread that waits."""

    def __init__(self, settings: BrokerPatience, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._acks = 0  # acknowledgements so far (only its changes matter)
        self._seen = 0  # `_acks` at the last observation
        self._since: float | None = None  # when the pending messages started waiting (None: nothing pending)
        self._stalled = False
        self._announced = 0.0

    def acked(self, count: int = 1) -> None:
        """Kafka acknowledged `count` messages (delivery reports without error)."""
        self._acks += count

    def observe(self, pending: int) -> Verdict:
        """`pending` messages wait for an acknowledgement now (after delivery reports were served)."""
        now = self._clock()
        s = self.settings
        with self._lock:
            acks = self._acks
            progressed = acks != self._seen
            self._seen = acks
            if pending <= 0 or progressed or self._since is None:
                since, self._since = self._since, (now if pending > 0 else None)
                if self._stalled and (pending <= 0 or progressed):
                    self._stalled = False
                    return Verdict(recovered_after=now - since if since is not None else 0.0)
                return OK
            silent = now - self._since
            if s.patience is not None and silent >= s.patience:
                return Verdict(silent_for=silent, stalled=True, give_up=True)
            if silent < s.notice:
                return Verdict(silent_for=silent)
            announce = not self._stalled or now - self._announced >= s.repeat
            self._stalled = True
            if announce:
                self._announced = now
            return Verdict(silent_for=silent, stalled=True, announce=announce)

"""An outage of the log's source, as the binlog reader's thread lives through it.

    outage = Outage(policy, endpoint, listener)
    wait = outage.failed(error, resume_at)   # the wait before the next try; raises once patience is spent
    outage.over()                           # the source answered (an event arrived): the next failure starts afresh

An outage starts at the first failure worth retrying after the source last answered and lasts until it answers
again. While it lasts, each failure is logged with what the reader waits for (the source's `host:port`, the
error, the log position it will resume from) and the wait before the next try (the log's `ReconnectPolicy`:
backoff with a cap, within the endpoint's `patience`), and a lost source (not a statement that failed while
the session lived) is told to the listener as reader "log" (status.json, `obsync status`, the metric
`obsync_source_waiting_seconds`). Once patience is spent, `failed` raises a `SourceUnavailable` naming the
source, how long it waited, the last error and the position a new start resumes from. Errors and logs carry
the source's address and the server's words, never the connection settings (so never a password).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from obsync.connectors.mysql.connection import Endpoint
from obsync.connectors.mysql.failures import Failure, ReconnectPolicy, classify, describe
from obsync.core.errors import SourceUnavailable
from obsync.core.listeners import SourceListener
from obsync.core.positions import LogPosition

log = logging.getLogger(__name__)

READER = "log"  # the name the log's wait is told to the listener under


def resume_text(at: LogPosition | None) -> str:
    """Where reading the log resumes, for messages."""
    return "the start position (fixed when the source first answers)" if at is None else f"{at.file}:{at.pos}"


class Outage:
    """The current outage of the log's source (see the module); used by one thread."""

    def __init__(self, policy: ReconnectPolicy, endpoint: Endpoint, listener: SourceListener) -> None:
        self._policy = policy
        self._source = endpoint.address
        self._listener = listener
        self._since: float | None = None  # monotonic time of the outage's first failure (None: no outage)
        self._delays: Iterator[float] | None = None
        self._told = False  # the listener was told the reader waits

    @property
    def lasting(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException, resume_at: LogPosition | None) -> float:
        """The wait before the next try after `error` (a failure worth retrying); a `SourceUnavailable`
        naming the source, the time waited, `error` and `resume_at` once the policy's patience is spent."""
        now = time.monotonic()
        if self._since is None or self._delays is None:
            self._since, self._delays = now, self._policy.delays()
        wait = next(self._delays, None)
        resume = resume_text(resume_at)
        if wait is None:
            waited = now - self._since
            self.over()
            raise SourceUnavailable(
                f"the log could not be read from the source {self._source} for {waited:.0f} s, longer than "
                f"source.patience ({self._policy.patience:g} s) allows; last error: {describe(error)}. Reading the "
                f"log stopped at {resume}; start the task again once the source is back: it resumes there, and "
                f"nothing is lost") from error
        limit = "forever" if self._policy.patience is None else f"up to source.patience, {self._policy.patience:g} s"
        log.warning("log: waiting for the source %s (%s); reconnecting in %.1f s, resuming at %s (waiting %.0f s "
                    "so far, %s)", self._source, describe(error), wait, resume, now - self._since, limit)
        if classify(error) is Failure.CONNECTION_LOST:  # not a lock wait or a deadlock: the source is away
            self._told = True
            self._listener.source_waiting(READER, self._source, describe(error))
        return wait

    def over(self) -> None:
        """The source answered (or the reader stops): no outage now, the listener is told it no longer waits."""
        self._since = self._delays = None
        if self._told:
            self._told = False
            self._listener.source_waiting(READER, self._source, None)

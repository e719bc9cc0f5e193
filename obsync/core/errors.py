"""One error hierarchy for obsync; every error says what is wrong and what to do.

`transient` errors may succeed when retried (a dropped connection); terminal ones need a person.
"""

from __future__ import annotations


class ObsyncError(Exception):
    """Base of every error obsync raises on purpose."""

    transient: bool = False


class ConfigError(ObsyncError):
    """The task file is invalid; the message names the field and the valid values."""


class SourceError(ObsyncError):
    """The source database refused or failed a request."""


class SourceUnavailable(SourceError):
    """The source could not be reached; retrying may help."""

    transient = True


class PositionLostError(SourceError):
    """The position a task must resume from is no longer on the source."""


class SchemaMismatchError(SourceError):
    """A row event does not match the schema obsync tracks for its table."""


class SinkError(ObsyncError):
    """Kafka refused or failed a write; raised, never dropped."""


class BrokerFault(SinkError):
    """Kafka failed writes in a way that a new producer recovers from: a fatal error of the idempotent producer
    (a broker answering a retried write with UNKNOWN_SERVER_ERROR, PRODUCER_FENCED, an out-of-order sequence),
    or writes acknowledged that the partition does not hold. The task's process exits with `RESTART_EXIT` and
    `obsync run` starts it again within `target.patience` (`obsync.app.supervisor`); it resumes from the last
    snapshot, so nothing is lost or written twice."""

    transient = True


RESTART_EXIT = 75  # the exit status of a task process that asks to be started again (sysexits' EX_TEMPFAIL)


class StateError(ObsyncError):
    """The task's saved state is missing, damaged or belongs to another task."""


class StopWhileWaiting(ObsyncError):
    """A stop was requested while obsync waited for a peer that does not answer (the sink for a silent Kafka,
    full sync for a source that is away): the stop, not a failure; the next start resumes from the last saved
    point."""

"""The running task's current objects, shared by the steps that apply them, and changed while it runs.

    task file ─(SIGHUP: `obsync run` re-reads it, `runtime.reload_task` checks and resolves it)─> Live
    Live ─> binlog reader (which tables it tracks, backfills of added tables)
         ─> Shaper (filters, columns, sharding columns)
         ─> TopicLayout / TopicResolver (topics)

A `Live` holds one immutable `LiveConfig`; a change replaces it whole (one attribute store, atomic under the
GIL) and bumps `version`. Each user compares the version it applied with the current one at its own safe
point (the binlog reader between transactions, the Shaper per batch, the layout per change) and rebuilds
what it derived. Only `objects`, `exclude` and `topic` may change while the task runs (`RELOADABLE`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obsync.task.config import TaskConfig
from obsync.task.selection import Selection
from obsync.task.start_point import BackfillRequest

TableName = tuple[str, str]

# Task-file fields a running task takes on SIGHUP; any other change needs a restart.
RELOADABLE = frozenset({"objects", "exclude", "topic"})


@dataclass(frozen=True)
class LiveConfig:
    version: int
    task: TaskConfig
    selection: Selection
    topics: dict[TableName, str] = field(default_factory=dict)  # the topic of each selected table now
    partitions: dict[str, int] = field(default_factory=dict)  # partition count of those topics
    backfills: tuple[BackfillRequest, ...] = ()  # every backfill requested so far (`StartPoint.backfills`)
    fresh: frozenset[int] = frozenset()  # request numbers this process made (no earlier run began them)


class Live:
    """The current `LiveConfig` of a running task (see the module docstring)."""

    def __init__(self, task: TaskConfig, topics: dict[TableName, str] | None = None,
                 partitions: dict[str, int] | None = None, backfills: tuple[BackfillRequest, ...] = (),
                 fresh: frozenset[int] = frozenset()) -> None:
        self.current = LiveConfig(0, task, task.selection(), dict(topics or {}),
                                  dict(partitions or {}), tuple(backfills), frozenset(fresh))

    @property
    def version(self) -> int:
        return self.current.version

    @property
    def task(self) -> TaskConfig:
        return self.current.task

    @property
    def selection(self) -> Selection:
        return self.current.selection

    def contains(self, name: TableName) -> bool:
        """True for a table the task selects now."""
        return name in self.current.selection

    def apply(self, task: TaskConfig, topics: dict[TableName, str], partitions: dict[str, int],
              backfills: tuple[BackfillRequest, ...]) -> LiveConfig:
        """Make `task`'s objects the current ones."""
        known = {b[0] for b in self.current.backfills}
        fresh = self.current.fresh | {b[0] for b in backfills if b[0] not in known}
        cfg = LiveConfig(self.current.version + 1, task, task.selection(), dict(topics),
                         dict(partitions), tuple(backfills), frozenset(fresh))
        self.current = cfg
        return cfg


def changed_fields(old: TaskConfig, new: TaskConfig) -> list[str]:
    """Top-level task fields that differ between two versions of a task file."""
    a: dict[str, Any] = old.model_dump()
    b: dict[str, Any] = new.model_dump()
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))

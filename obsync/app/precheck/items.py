"""What a precheck item is: its `Status` and the `Item` a check returns, and the helpers checks write them with.

A check returns an `Item` with an empty id (the runner fills in the id and whether it is skippable), or raises
`NotChecked` when it does not apply to the task or an item it needs failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from obsync.core.errors import ObsyncError

__all__ = ["Item", "NotChecked", "PrecheckFailed", "Status", "as_text", "failed", "listed", "passed", "warning"]


class Status(str, Enum):
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Item:
    """One line of the precheck: the item's id, its status, why, and what to do about it."""

    id: str
    status: Status
    reason: str
    fix: str = ""
    skippable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status.value, "reason": self.reason, "fix": self.fix,
                "skippable": self.skippable}


class PrecheckFailed(ObsyncError):
    """`obsync run` refused to start: an item of the precheck failed."""


class NotChecked(Exception):
    """A check does not apply to this task, or cannot run because an item it needs failed."""


def passed(reason: str) -> Item:
    return Item("", Status.PASSED, reason)


def warning(reason: str, fix: str) -> Item:
    return Item("", Status.WARNING, reason, fix)


def failed(reason: str, fix: str) -> Item:
    return Item("", Status.FAILED, reason, fix)


def listed(things: list[str], most: int = 8) -> str:
    shown = ", ".join(things[:most])
    return shown + (f" and {len(things) - most} more" if len(things) > most else "")


def as_text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)

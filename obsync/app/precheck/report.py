"""The precheck's `Report`: its items, whether the task may start, and how it is shown (a text table and a
summary line for `obsync precheck`, `to_dict` for `--json`)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from obsync.app.precheck.items import Item, Status

__all__ = ["Report"]


@dataclass(frozen=True)
class Report:
    task: str
    items: tuple[Item, ...]
    _by_id: dict[str, Item] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({i.id: i for i in self.items})

    def __getitem__(self, item_id: str) -> Item:
        return self._by_id[item_id]

    @property
    def ok(self) -> bool:
        """Nothing failed (warnings and skipped items allowed): the task may start."""
        return not self.failed

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.status is Status.FAILED]

    @property
    def warnings(self) -> list[Item]:
        return [i for i in self.items if i.status is Status.WARNING]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "ok": self.ok, "items": [i.to_dict() for i in self.items]}

    def summary(self) -> str:
        counts = {s: sum(i.status is s for i in self.items) for s in Status}
        text = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
        if self.ok:
            return f"precheck of task {self.task}: {text}; the task can start"
        skippable = [i.id for i in self.failed if i.skippable]
        hint = f" (skippable: {', '.join(skippable)})" if skippable else ""
        return f"precheck of task {self.task}: {text}; fix the failed items{hint}"

    def table(self, reason_width: int = 60, fix_width: int = 48) -> str:
        """The items as a text table: item, status, reason, fix (long text wrapped)."""
        rows = [("ITEM", "STATUS", "REASON", "FIX")] + [(i.id, i.status.value, i.reason, i.fix) for i in self.items]
        w_id = max(len(r[0]) for r in rows)
        lines = []
        for item_id, status, reason, fix in rows:
            rs = textwrap.wrap(reason, reason_width, break_on_hyphens=False) or [""]
            fs = textwrap.wrap(fix, fix_width, break_on_hyphens=False) or [""]
            for k in range(max(len(rs), len(fs))):
                cells = (item_id if k == 0 else "", status if k == 0 else "",
                         rs[k] if k < len(rs) else "", fs[k] if k < len(fs) else "")
                lines.append(f"{cells[0]:<{w_id}}  {cells[1]:<7}  {cells[2]:<{reason_width}}  {cells[3]}".rstrip())
        return "\n".join(lines)

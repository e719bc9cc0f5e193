"""Running the precheck: every check against the task's servers, in order, into a `Report`.

A check that raises is reported as failed (its error in the reason); it never hides the other items. Secrets
are scrubbed from every reason and fix. `--skip ITEM` turns a failed or warning item that is skippable into a
skipped one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from obsync.app.precheck.checks import CHECKS, ITEM_IDS, SKIPPABLE, Check
from obsync.app.precheck.items import Item, NotChecked, Status, failed
from obsync.app.precheck.probe import Probe
from obsync.app.precheck.report import Report
from obsync.core.errors import ConfigError
from obsync.task.config import TaskConfig

__all__ = ["run_precheck", "validate_skips"]

log = logging.getLogger("obsync.app.precheck")


def validate_skips(skip: Iterable[str]) -> frozenset[str]:
    """The `--skip` items, refused when unknown or not skippable."""
    out = frozenset(skip)
    for s in sorted(out):
        if s not in ITEM_IDS:
            raise ConfigError(f"--skip {s}: no such precheck item; items: {', '.join(ITEM_IDS)}")
        if s not in SKIPPABLE:
            raise ConfigError(f"--skip {s}: this item cannot be skipped; skippable: {', '.join(SKIPPABLE)}")
    return out


def run_precheck(task: TaskConfig, *, state_dir: Path | None = None, skip: Iterable[str] = (),
                 kafka_timeout: float = 5.0) -> Report:
    """Run every check against the task's servers and state directory."""
    skipped = validate_skips(skip)
    probe = Probe(task, task.resolved_state_dir(state_dir), kafka_timeout)
    items = []
    try:
        for check in CHECKS:
            items.append(_run_one(check, probe, skipped))
    finally:
        probe.close()
    return Report(task.name, tuple(items))


def _run_one(check: Check, probe: Probe, skipped: frozenset[str]) -> Item:
    try:
        item = check.run(probe)
    except NotChecked as e:
        item = Item("", Status.SKIPPED, str(e))
    except Exception as e:  # a check that breaks reports it; it never hides the other items
        log.debug("precheck %s raised", check.id, exc_info=True)
        item = failed(f"the check could not run: {type(e).__name__}: {e}", "see the reason; run with -v for details")
    item = replace(item, id=check.id, skippable=check.skippable, reason=probe.scrub(item.reason),
                   fix=probe.scrub(item.fix))
    if check.id in skipped and item.status in (Status.FAILED, Status.WARNING):
        item = replace(item, status=Status.SKIPPED, reason=f"skipped by request: {item.reason}")
    return item

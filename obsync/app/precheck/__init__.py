"""`obsync precheck`: what must hold before a task starts, each item passed, warning or failed, with the
reason and the fix.

Every check is a plain function over a `Probe` (lazy, cached access to the source's SQL endpoint, its binlog
endpoint, the task's tables, Kafka and the state directory) and returns one `Item`; `run_precheck` runs them
all and returns a `Report`. Nothing here imports the dataflow engine. `obsync run` runs the same precheck
and refuses to start while an item failed.

Statuses: *passed*; *warning* (never blocks the start); *failed* (blocks it); *skipped* (not needed for this
task, e.g. binlog items without incremental sync; not checked because an item it depends on failed; or
skipped by the user with `--skip ITEM`). Only the items in `SKIPPABLE` can be skipped: those where obsync's
reading of the server may be wrong or where the consequence is the user's to accept. A failure that makes
the task impossible or wrong (binlog off, statement format, a missing table, an unreachable broker, ...)
cannot be skipped.

The package: `items` (what a check returns), `rules` (the pure rules: grants, retention, names), `probe` (what is
read from the source, Kafka and the state directory), `checks` (the items in order; `checks.source`,
`checks.tables`, `checks.task`: import a single check from there), `report` (the text table, the summary,
`--json`), `run` (`run_precheck`).
"""

from obsync.app.precheck.checks import CHECKS, ITEM_IDS, SKIPPABLE, Check
from obsync.app.precheck.items import Item, NotChecked, PrecheckFailed, Status
from obsync.app.precheck.probe import Probe
from obsync.app.precheck.report import Report
from obsync.app.precheck.rules import Grants, parse_grants, replication_privileges, retention_seconds
from obsync.app.precheck.run import run_precheck, validate_skips

__all__ = [
    # running
    "CHECKS", "ITEM_IDS", "SKIPPABLE", "Check", "PrecheckFailed", "run_precheck", "validate_skips",
    # results
    "Item", "NotChecked", "Report", "Status",
    # what the checks read, and their pure rules
    "Grants", "Probe", "parse_grants", "replication_privileges", "retention_seconds",
]

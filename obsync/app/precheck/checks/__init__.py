"""Every precheck item, in the order the report lists them: its id, the check that decides it, and whether the
user may skip it (`SKIPPABLE`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from obsync.app.precheck.checks.source import (
    check_binlog_enabled,
    check_binlog_format,
    check_binlog_retention,
    check_binlog_row_image,
    check_source_privileges,
    check_source_reachable,
    check_source_standby,
)
from obsync.app.precheck.checks.tables import (
    check_tables_exist,
    check_tables_generated_columns,
    check_tables_names,
    check_tables_physical,
    check_tables_unique_key,
)
from obsync.app.precheck.checks.task import (
    check_config_coherent,
    check_kafka_reachable,
    check_kafka_topics,
    check_task_name,
)
from obsync.app.precheck.items import Item
from obsync.app.precheck.probe import Probe

__all__ = ["CHECKS", "ITEM_IDS", "SKIPPABLE", "Check"]


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    run: Callable[[Probe], Item]
    skippable: bool = False


CHECKS: tuple[Check, ...] = (
    Check("source.reachable", check_source_reachable),
    Check("source.privileges", check_source_privileges, skippable=True),
    Check("source.standby", check_source_standby),
    Check("binlog.enabled", check_binlog_enabled),
    Check("binlog.format", check_binlog_format),
    Check("binlog.row_image", check_binlog_row_image),
    Check("binlog.retention", check_binlog_retention, skippable=True),
    Check("tables.exist", check_tables_exist),
    Check("tables.physical", check_tables_physical),
    Check("tables.names", check_tables_names, skippable=True),
    Check("tables.unique_key", check_tables_unique_key, skippable=True),
    Check("tables.generated_columns", check_tables_generated_columns, skippable=True),
    Check("kafka.reachable", check_kafka_reachable),
    Check("kafka.topics", check_kafka_topics),
    Check("task.name", check_task_name),
    Check("config.coherent", check_config_coherent),
)
ITEM_IDS = tuple(c.id for c in CHECKS)
SKIPPABLE = tuple(c.id for c in CHECKS if c.skippable)

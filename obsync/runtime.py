"""Fixing a task's start point and resolving everything the dataflow needs before it is built.

"Preparing" a task: validate the objects against the source, fix (once, persisted) the log position where
incremental sync starts and the snapshot plan, create the topics, and find where `--until-caught-up` stops.
The log position is taken *before* the snapshot is planned, so every change committed while the snapshot
runs is replayed by incremental sync afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.kafka.client import base_config
from connectors.kafka.topics import ensure_topics
from connectors.mysql.catalog import load_table_schema, table_kind
from connectors.mysql.connection import Dialect, Endpoint, connect, detect_dialect
from formats import encoder_for
from formats.base import Encoder, EncoderContext
from obsync.config import ObjectConfig, TaskConfig
from obsync.errors import ConfigError, StateError
from obsync.positions import LogPosition, position_from_json
from obsync.routing import TopicLayout
from obsync.schema import TableSchema
from obsync.state import TaskState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """A prepared task: what the dataflow is built from."""

    task: TaskConfig
    state: TaskState
    task_id: str
    dialect: Dialect
    tables: dict[tuple[str, str], TableSchema]
    layout: TopicLayout
    log_start: LogPosition | None  # None without incremental sync
    plan: Any | None  # connectors.mysql.snapshot.plan.SnapshotPlan, None without full sync
    stop_at: LogPosition | None  # --until-caught-up: the source's log position when the command started
    encoder: Encoder

    @property
    def parts(self) -> list[str]:
        return self.layout.parts()

    @property
    def snapshot_streams(self) -> frozenset[str]:
        if self.plan is None:
            return frozenset()
        from obsync.positions import SnapshotPosition

        return frozenset(SnapshotPosition(c.id, ()).stream for c in self.plan.chunks)

    def full_sync_delivered(self) -> bool:
        """True once every snapshot row is in Kafka (always, without full sync)."""
        return self.plan is None or self.state.all_delivered(self.parts)


def prepare(task: TaskConfig, state_dir: Path | None = None, until_caught_up: bool = False) -> Runtime:
    """Validate against the source, fix the start point (first run only), create topics."""
    from connectors.mysql.binlog.reader import current_log_position
    from connectors.mysql.snapshot.plan import SnapshotPlan, plan_snapshot

    state = TaskState(task.resolved_state_dir(state_dir))
    sql_ep = Endpoint.sql_of(task.source)
    log_ep = Endpoint.log_of(task.source)
    with state.locked():
        ident = state.identity(task.name)
        conn = connect(sql_ep)
        try:
            dialect: Dialect = detect_dialect(conn) if task.source.kind == "auto" else task.source.kind
            tables: dict[tuple[str, str], TableSchema] = {}
            for i, obj in enumerate(task.objects):
                kind = table_kind(conn, obj.db, obj.table)
                if kind is None:
                    raise ConfigError(f"objects: table {obj.match} does not exist on the source")
                if kind != "BASE TABLE":
                    raise ConfigError(f"objects: {obj.match} is a {kind.lower()}, not a table; only tables sync")
                tables[(obj.db, obj.table)] = schema = load_table_schema(conn, obj.db, obj.table)
                check_sharding_columns(i, obj, schema)
            start = state.load_start()
            if start is None:
                start = {"tables": sorted(f"{d}.{t}" for d, t in tables)}
                if task.sync.incremental:
                    start["log"] = current_log_position(log_ep).to_json()
                    log.info("step: incremental sync will start at %s", start["log"])
                if task.sync.full:
                    log.info("step: planning full sync of %d tables", len(tables))
                    plan = plan_snapshot(conn, dialect, list(tables.values()), task.snapshot.chunk_size)
                    start["plan"] = plan.to_dict()
                    log.info("step: full sync planned in %d chunks", len(plan.chunks))
                state.save_start(start)
            elif start["tables"] != sorted(f"{d}.{t}" for d, t in tables):
                raise StateError(
                    f"the task's objects changed since it started (was {start['tables']}); "
                    f"use a new state directory (or task name) to sync the new set from scratch")
        finally:
            conn.close()
    log_start = position_from_json(start["log"]) if "log" in start else None
    plan = SnapshotPlan.from_dict(start["plan"]) if "plan" in start else None
    topic_of = {k: task.topic_for(*k) for k in tables}
    db_type = "OB_MYSQL" if dialect == "oceanbase" else "MYSQL"
    encoder = encoder_for(task.format, EncoderContext(task.name, db_type),
                          task.format_options)
    counts = ensure_topics(task.target, sorted(set(topic_of.values()) | set(encoder.extra_topics())),
                           task.topics.partitions, task.topics.replication_factor)
    check_fixed_partition(task, {t: counts[t] for t in topic_of.values()})
    stop_at = current_log_position(log_ep) if (until_caught_up and task.sync.incremental) else None
    assert log_start is None or isinstance(log_start, LogPosition)
    return Runtime(task, state, ident["id"], dialect, tables, TopicLayout(topic_of, counts), log_start, plan,
                   stop_at, encoder)


def check_sharding_columns(index: int, obj: ObjectConfig, schema: TableSchema) -> None:
    """Every sharding column of an object must be a column of its table."""
    for name in obj.sharding_columns:
        if name not in schema.column_names:
            raise ConfigError(
                f"field `objects.{index}.sharding_columns`: object {obj.match} has no column {name!r}; "
                f"its columns: {', '.join(schema.column_names)}")


def check_fixed_partition(task: TaskConfig, partitions: dict[str, int]) -> None:
    """Under the One rule, `fixed_partition` must exist in every topic of the task's tables."""
    if task.partitioning != "one":
        return
    for topic, n in sorted(partitions.items()):
        if task.fixed_partition >= n:
            raise ConfigError(
                f"field `fixed_partition`: {task.fixed_partition} is not a partition of topic {topic}, which "
                f"has {n} (partitions 0 to {n - 1}); choose a partition below {min(partitions.values())}")


def kafka_conf(task: TaskConfig) -> dict[str, Any]:
    return base_config(task.target)

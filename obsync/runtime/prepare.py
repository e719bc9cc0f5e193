"""Fixing a task's start point and resolving everything the dataflow needs before it is built.

"Preparing" a task: validate the objects against the source, fix (once, persisted) the log position where
incremental sync starts and the snapshot plan, create the topics, and find where `--until-caught-up` stops.
The log position is taken *before* the snapshot is planned, so every change committed while the snapshot
runs is replayed by incremental sync afterwards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from obsync.connectors.kafka.client import base_config
from obsync.connectors.kafka.records import DEFAULT_LANES
from obsync.connectors.kafka.topics import PRODUCER_MAX_DEFAULT, MessageLimits, ensure_topics
from obsync.connectors.mysql.binlog.backfill import key_problem
from obsync.connectors.mysql.binlog.schema_history import FileHistoryStore
from obsync.connectors.mysql.binlog.server_log import current_log_position
from obsync.connectors.mysql.binlog.start_time import position_at_time
from obsync.connectors.mysql.catalog import SqlCatalog
from obsync.connectors.mysql.connection import Dialect, Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot.plan import SnapshotPlan, plan_snapshot
from obsync.core.errors import ConfigError, StateError
from obsync.core.offsets import FRESH_STATE_HINT
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import TableSchema
from obsync.formats import encoder_for
from obsync.formats.base import Encoder, EncoderContext
from obsync.runtime.cluster import ClusterSpec, ClusterState, cluster_state, history_store
from obsync.runtime.schema_history import write_history_added, write_history_start
from obsync.runtime.settings import broker_patience, kafka_settings, log_endpoint, sql_endpoint
from obsync.steps.routing import TopicLayout
from obsync.task.config import TaskConfig
from obsync.task.live import RELOADABLE, Live, changed_fields
from obsync.task.naming import existing_topics
from obsync.task.objects import Resolution, compile_where, plan_for, resolve_objects
from obsync.task.selection import Selection
from obsync.task.start_point import START_FILE, SelectionRules, StartPoint
from obsync.task.start_time import parse_start_time
from obsync.task.state import TaskState

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
    plan: SnapshotPlan | None  # None without full sync
    stop_at: LogPosition | None  # --until-caught-up: the source's log position when the command started
    encoder: Encoder
    snapshot_filters: dict[str, str]  # db.table -> row filter SQL pushed into full sync's SELECT
    live: Live | None = None  # the task's current objects (changed by `reload_task` while it runs)
    limits: MessageLimits | None = None  # the largest message each topic accepts (`large_messages`)

    @property
    def parts(self) -> list[str]:
        return self.layout.parts()

    @property
    def snapshot_streams(self) -> frozenset[str]:
        if self.plan is None:
            return frozenset()
        return frozenset(SnapshotPosition(c.id, ()).stream for c in self.plan.chunks)

    @property
    def rescanned_streams(self) -> frozenset[str]:
        """Snapshot chunks rescanned under new positions on resume: tables without a key on MySQL/MariaDB."""
        if self.plan is None or self.plan.dialect == "oceanbase":
            return frozenset()
        return frozenset(SnapshotPosition(c.id, ()).stream for c in self.plan.chunks
                         if self.plan.table(c.table).mode == "ordinal")

    def full_sync_delivered(self) -> bool:
        """True once every snapshot row is in Kafka (always, without full sync)."""
        return self.plan is None or self.state.all_delivered(self.parts)


def prepare(task: TaskConfig, state_dir: Path | None = None, until_caught_up: bool = False,
            cluster: ClusterSpec | None = None) -> Runtime:
    """Validate against the source, fix the start point (first run only), create topics.

    In a cluster (`cluster`, `obsync.runtime.cluster`) the shared state is in the task's control topic:
    process 0 fixes the start point as a single process does, the others wait for it."""
    root = task.resolved_state_dir(state_dir)
    state = TaskState(root) if cluster is None else cluster_state(
        root, cluster, kafka_settings(task.target), task.name, task.topics.replication_factor)
    follower = cluster is not None and not cluster.leader
    sql_ep = sql_endpoint(task.source)
    log_ep = log_endpoint(task.source)
    with state.locked():
        ident = state.identity(task.name)
        start = state.load_start()  # StateError if an older obsync wrote it
        if follower and (start is None or start.rules != selection_rules(task)):
            assert isinstance(state, ClusterState)
            start = state.wait_for_start(selection_rules(task))  # process 0 fixes it (and records a new selection)
        conn = connect(sql_ep)
        try:
            dialect: Dialect = detect_dialect(conn) if task.source.kind == "auto" else task.source.kind
            # The log position comes first: a table created after it is seen in the log (CREATE TABLE), one
            # created before it is in the list read next, so none falls between the two.
            log_pos = None
            if start is None and task.sync.incremental:
                log_pos = current_log_position(log_ep)
                if task.sync.start_time is not None:
                    log_pos = log_position_at(task, log_ep, sql_ep)
            res = resolve_objects(SqlCatalog(conn), task)
            for i in res.unmatched:
                log.warning("objects.%d (%s) matches no table now; tables created later that match it will "
                            "sync", i, task.objects[i].match)
            tables = res.schemas
            if not tables and all(o.is_exact for o in task.objects):
                raise ConfigError("objects: no table to sync")
            rules = selection_rules(task)
            fresh: list[Any] = []  # backfills requested now: no earlier run began them
            if start is not None and start.rules != rules:
                before_n = {b[0] for b in start.backfills}
                start = accept_changed_selection(task, state, start, tables, lambda added: (
                    None if follower else record_added_tables(task, ident["id"], {n: tables[n] for n in added})))
                fresh = [b[0] for b in start.backfills if b[0] not in before_n]
            first_run = start is None
            if start is None:
                plan_dict = None
                if log_pos is not None:
                    log.info("step: incremental sync will start at %s", log_pos.to_json())
                if task.sync.full and tables:
                    log.info("step: planning full sync of %d tables", len(tables))
                    planned = plan_snapshot(conn, dialect, [tables[k] for k in sorted(tables)],
                                            task.snapshot.chunk_size, with_ddl=snapshot_ddl_needed(task, dialect))
                    plan_dict = planned.to_dict()
                    log.info("step: full sync planned in %d chunks", len(planned.chunks))
                start = StartPoint(frozenset(tables), DEFAULT_LANES, rules, log_pos, plan_dict)
                state.save_start(start)
        finally:
            conn.close()
    log_start = start.log
    try:
        plan = SnapshotPlan.from_dict(start.plan) if start.plan is not None else None
    except (ValueError, TypeError, KeyError) as e:
        raise StateError(f"{state.root / START_FILE}: field `plan` cannot be read ({e}); "
                         f"{FRESH_STATE_HINT}") from None
    topic_of = {k: p.topic for k, p in res.plans.items()}
    encoder = make_encoder(task, dialect)
    extra = encoder.extra_topics()
    if task.large_messages == "dead_letter":
        extra = [*extra, task.resolved_dead_letter_topic()]
    counts = ensure_task_topics(task, res, extra)
    counts.update(ensure_ddl_output_topics(task))
    if task.schema_history.enabled and not follower and log_start is not None:
        write_history_start(kafka_conf(task), task.resolved_history_topic(), task.name, ident["id"], sql_ep,
                            tables, log_start if first_run else current_log_position(log_ep))
    limits = MessageLimits(kafka_settings(task.target), producer_max_bytes(task), broker_patience(task.target))
    limits.load(sorted(set(topic_of.values()) | set(extra)))
    check_fixed_partition(task, {t: counts[t] for t in topic_of.values()})
    stop_at = current_log_position(log_ep) if (until_caught_up and task.sync.incremental) else None
    live = Live(task, topic_of, counts, start.backfills, frozenset(fresh))
    layout = TopicLayout(topic_of, counts, start.lanes, TopicResolver(live))
    layout.live = live
    return Runtime(task, state, ident["id"], dialect, tables, layout, log_start, plan, stop_at, encoder,
                   snapshot_filters(res), live, limits)


def snapshot_ddl_needed(task: TaskConfig, dialect: Dialect) -> bool:
    """Whether the full sync writes each table's CREATE TABLE (`sync.ddl` and a format that writes a snapshot's
    DDL, as Debezium's): only then does planning read SHOW CREATE TABLE of every table. (The schema history's
    start reads its own.) Fixed with the plan: a task that enables `sync.ddl` after planning gets no snapshot
    DDL for that full sync."""
    if not task.sync.ddl:
        return False
    return make_encoder(task, dialect).snapshot_ddl()


def make_encoder(task: TaskConfig, dialect: Dialect) -> Encoder:
    """The task's message encoder."""
    db_type = "OB_MYSQL" if dialect == "oceanbase" else "MYSQL"
    return encoder_for(task.format, EncoderContext(task.name, db_type, task.schema_changes.policy),
                       task.format_options)


def selected_before(start: StartPoint, state: TaskState) -> Callable[[tuple[str, str]], bool]:
    """Which tables the task synced under the selection its start point records.

    A table the old rules (`StartPoint.rules`) select was streaming already: it existed at the start, or
    the log brought it (CREATE or RENAME while the task ran, or while it was stopped: the resumed log replays
    it), so it needs no backfill; any other table is new to the task and is backfilled. (A table removed and
    then added again is new again: its rows are sent again.) A start point without rules (older obsync) falls
    back to the tables it lists plus those the schema history has seen.
    """
    rules = start.rules
    if rules is not None:
        old = Selection([SimpleNamespace(match=m) for m in rules.match], rules.exclude)  # type: ignore[misc]  # old rules need only .match
        return old.__contains__
    known = set(start.tables) | history_tables(state)
    return known.__contains__


def history_tables(state: TaskState) -> set[tuple[str, str]]:
    """Every table the schema history has a record of."""
    store = history_store(state)
    lines = (FileHistoryStore(store) if isinstance(store, Path) else store).lines()
    out: set[tuple[str, str]] = set()
    if lines:
        for line in lines:
            try:
                rec = json.loads(line)
                out.add((rec["db"], rec["table"]))
            except (ValueError, KeyError, TypeError):
                continue
    return out


def accept_changed_selection(task: TaskConfig, state: TaskState, start: StartPoint,
                             tables: dict[tuple[str, str], TableSchema],
                             on_added: Callable[[list[tuple[str, str]]], None] | None = None) -> StartPoint:
    """The task file's selection changed since the start point was fixed (while stopped): schedule a
    backfill of each added table (with full sync), tell `on_added` the added tables (before anything is
    saved) and record the new selection. Returns the start point saved."""
    if not task.sync.incremental:
        raise StateError(
            f"the task's table selection changed since it started (was {start.rules}, now "
            f"{selection_rules(task)}) and the task has no incremental sync, which backfills added tables. "
            "Use a new state directory (or task name) to sync the new selection")
    before = selected_before(start, state)
    added = sorted(n for n in tables if not before(n))
    requests: list[Any] = []
    if task.sync.full and added:
        check_backfillable(tables, added)
        start, requests = start.with_backfills(added)
    if on_added is not None and added:
        on_added(added)
    start = start.with_selection(selection_rules(task), added)
    state.save_start(start)
    log.info("step: the task's selection changed: %s", ", ".join(f"{d}.{t}" for d, t in added) + (
        " added" + (" (backfilled after the tables already synced)" if requests else " (changes from now on)")
        if added else "no table added"))
    return start


def record_added_tables(task: TaskConfig, task_id: str, added: dict[tuple[str, str], TableSchema]) -> None:
    """(schema_history) The CREATE record of each table added to the selection, at the source's log position now
    (`write_history_added`); called before the new selection is saved, so a crash between the two writes them
    on the next attempt."""
    if not (task.schema_history.enabled and task.sync.incremental and added):
        return
    ensure_ddl_output_topics(task)
    write_history_added(kafka_conf(task), task.resolved_history_topic(), task.name, task_id,
                        sql_endpoint(task.source), added, current_log_position(log_endpoint(task.source)))


def check_backfillable(tables: dict[tuple[str, str], TableSchema], added: Sequence[tuple[str, str]]) -> None:
    """A table added to a running task with full sync is read in key order: it needs a usable key."""
    for name in added:
        problem = key_problem(tables[name])
        if problem is not None:
            raise ConfigError(f"table {name[0]}.{name[1]} cannot be added to the running task with full sync: "
                              f"{problem}; its existing rows could not be read exactly. Exclude it, give it a "
                              "primary key, or sync it with a new task")


def reload_task(rt: Runtime, task: TaskConfig) -> str:
    """Apply a changed task file to the running task (SIGHUP): objects, exclude and topic. Resolves the new
    objects against the source (errors raised, the running settings kept), creates the new topics, records
    the new selection and the backfills of added tables in the start point, then makes them current
    (`Live.apply`). Returns a one-line summary."""
    live = rt.live
    assert live is not None
    old = live.task
    fixed = [f for f in changed_fields(old, task) if f not in RELOADABLE]
    if fixed:
        raise ConfigError(f"field(s) {', '.join(f'`{f}`' for f in fixed)} cannot change while the task runs "
                          f"(only {', '.join(sorted(RELOADABLE))} can); restart the task to change them")
    conn = connect(sql_endpoint(task.source))
    try:
        res = resolve_objects(SqlCatalog(conn), task)
    finally:
        conn.close()
    before = live.selection
    added = sorted(n for n in res.schemas if n not in before)
    removed = sorted(n for n in live.current.topics if n not in res.schemas)
    if task.sync.full and task.sync.incremental and added:
        check_backfillable(res.schemas, added)
    counts = ensure_task_topics(task, res, rt.encoder.extra_topics())
    topic_of = {k: p.topic for k, p in res.plans.items()}
    check_fixed_partition(task, {t: counts[t] for t in topic_of.values()})
    if added and not (isinstance(rt.state, ClusterState) and not rt.state.spec.leader):
        record_added_tables(task, rt.task_id, {n: res.schemas[n] for n in added})
    with rt.state.locked():
        start = rt.state.load_start()
        if start is None:
            raise StateError(f"{rt.state.root / START_FILE} is gone: the running task's start point cannot "
                             "record the change; restart the task")
        if task.sync.full and added:
            start, _ = start.with_backfills(added)
        start = start.with_selection(selection_rules(task), added)
        rt.state.save_start(start)
    live.apply(task, topic_of, counts, start.backfills)
    names = lambda ts: ", ".join(f"{d}.{t}" for d, t in ts) or "none"  # noqa: E731 - a one-line local helper
    return (f"added: {names(added)}{' (backfilled)' if task.sync.full and added else ''}; "
            f"removed: {names(removed)}; {len(res.schemas)} tables selected")


def log_position_at(task: TaskConfig, log_ep: Endpoint, sql_ep: Endpoint) -> LogPosition:
    """Where incremental sync starts for `sync.start_time`: the first transaction committed at or after it."""
    assert task.sync.start_time is not None
    when = parse_start_time(task.sync.start_time)
    log.info("step: looking for the first transaction committed at or after %s in the binlog", when.isoformat())
    pos = position_at_time(log_ep, when, server_id=task.source.server_id, sql_endpoint=sql_ep)
    log.info("step: sync.start_time %s is at %s", when.isoformat(), pos)
    return pos


def selection_rules(task: TaskConfig) -> SelectionRules:
    """What decides which tables a task syncs (kept in the start point to notice a change)."""
    return SelectionRules(tuple(o.match for o in task.objects), tuple(task.exclude))


def snapshot_filters(res: Resolution) -> dict[str, str]:
    """Each filtered table's row filter (by `db.table`) as SQL for the snapshot's SELECT, regenerated from
    its parse."""
    out = {}
    for name, p in res.plans.items():
        rf = compile_where(p, res.schemas[name])
        if rf is not None:
            out[f"{name[0]}.{name[1]}"] = rf.sql
    return out


def ensure_task_topics(task: TaskConfig, res: Resolution, extra: Sequence[str]) -> dict[str, int]:
    """Check that the existing topics the objects name exist, create the others; each one's partition count."""
    why = existing_topics(task.objects)
    existing = sorted(why)
    kafka = kafka_settings(task.target)
    counts = ensure_topics(kafka, existing, task.topics.partitions, task.topics.replication_factor,
                           broker_patience(task.target), create=False, why=why)
    created = sorted(({p.topic for p in res.plans.values()} | set(extra)) - set(existing))
    counts.update(ensure_topics(kafka, created, task.topics.partitions, task.topics.replication_factor,
                                broker_patience(task.target)))
    return counts


def ensure_ddl_output_topics(task: TaskConfig) -> dict[str, int]:
    """Create the DDL topic (`ddl_messages.to: ddl_topic`: one partition, or `topics.partitions` by table) and
    the schema-history topic (one partition) when the task has them; their partition counts."""
    kafka, rf = kafka_settings(task.target), task.topics.replication_factor
    counts: dict[str, int] = {}
    d = task.ddl_messages
    if task.sync.ddl and d.to == "ddl_topic":
        n = task.topics.partitions if d.partitioning == "table" else 1
        counts.update(ensure_topics(kafka, [task.resolved_ddl_topic()], n, rf, broker_patience(task.target)))
    if task.schema_history.enabled:
        topic = task.resolved_history_topic()
        # as Debezium's schema history topic: never compacted nor expired, or a replay loses its start
        n = ensure_topics(kafka, [topic], 1, rf, broker_patience(task.target), config=HISTORY_TOPIC_CONFIG)[topic]
        if n != 1:
            raise ConfigError(f"field `schema_history.topic`: topic {topic} has {n} partitions; the schema history "
                              "needs a topic of one partition (one order for every record): name another topic, "
                              "or delete this one and let obsync create it")
        counts[topic] = n
    return counts


HISTORY_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


class TopicResolver:
    """The topic of a table first seen while the task runs (created if the mapping says so), under the
    task's current objects (a `Live`, or a fixed task)."""

    def __init__(self, task: TaskConfig | Live) -> None:
        self.live = task if isinstance(task, Live) else Live(task)

    @property
    def task(self) -> TaskConfig:
        return self.live.task

    def __call__(self, db: str, table: str) -> tuple[str, int] | None:
        p = plan_for(self.task, self.live.selection, db, table)
        if p is None:
            return None
        counts = ensure_topics(kafka_settings(self.task.target), [p.topic], self.task.topics.partitions,
                               self.task.topics.replication_factor, broker_patience(self.task.target),
                               create=p.topic_kind != "existing",
                               why={p.topic: f"field `objects.{p.index}.existing_topic` (for {db}.{table})"})
        n = counts[p.topic]
        if self.task.partitioning == "one" and self.task.fixed_partition >= n:
            raise ConfigError(f"field `fixed_partition`: {self.task.fixed_partition} is not a partition of topic "
                              f"{p.topic} (of new table {db}.{table}), which has {n}")
        log.info("new table %s.%s syncs to topic %s (%d partitions)", db, table, p.topic, n)
        return p.topic, n


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
    return base_config(kafka_settings(task.target))


def producer_max_bytes(task: TaskConfig) -> int:
    """The producer's `message.max.bytes` (target.properties, else librdkafka's default)."""
    value = kafka_conf(task).get("message.max.bytes", PRODUCER_MAX_DEFAULT)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"field `target.properties.message.max.bytes`: {value!r} is not a number of bytes") from None

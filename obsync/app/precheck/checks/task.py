"""The checks of the target and of the task itself: `kafka.*` (reachable, topics), `task.name` and
`config.coherent`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from obsync.app.precheck.items import Item, NotChecked, failed, listed, passed, warning
from obsync.app.precheck.probe import Probe
from obsync.core.errors import ConfigError, StateError
from obsync.runtime.prepare import check_fixed_partition, selection_rules
from obsync.runtime.validate import task_problems
from obsync.task.naming import existing_topics, topic_problem
from obsync.task.objects import check_table
from obsync.task.selection import Selected
from obsync.task.state import TaskState

__all__ = ["check_config_coherent", "check_kafka_reachable", "check_kafka_topics", "check_task_name"]


def check_kafka_reachable(p: Probe) -> Item:
    _, meta, error = p.kafka()
    servers = p.task.target.bootstrap_servers
    if meta is None:
        return failed(f"cannot reach Kafka at {servers} within {p.kafka_timeout:g} s: {error}",
                      "check target.bootstrap_servers, the network, and the SASL/SSL settings in "
                      "target.properties")
    return passed(f"{len(meta.brokers)} broker(s) at {servers}, {len(meta.topics)} topics visible")


def check_kafka_topics(p: Probe) -> Item:
    topics = p.topics()
    bad = [f"{t!r} ({why}; for {', '.join(topics[t])})" for t in topics if (why := topic_problem(t))]
    fix_names = "change `topic` (a fixed name or a template whose values give a valid name)"
    if bad:
        return failed("invalid topic names: " + listed(bad), fix_names)
    admin, meta, _ = p.kafka()
    if meta is None:
        raise NotChecked("not checked: Kafka is not reachable (see kafka.reachable)")
    cfg = p.task.topics
    problems = [f"topic {t!r}: {meta.topics[t].error.str()}" for t in topics
                if t in meta.topics and meta.topics[t].error is not None]  # e.g. not authorized to describe it
    existing = {t: len(meta.topics[t].partitions) for t in topics if t in meta.topics}
    must_exist = set(existing_topics(p.task.objects))
    for t in sorted(must_exist - set(existing)):
        problems.append(f"topic {t!r} (an existing_topic, for {', '.join(topics.get(t, ['no table yet']))}) does "
                        "not exist; obsync never creates an existing_topic")
    missing = sorted(set(topics) - set(existing) - must_exist)
    if missing and cfg.replication_factor > len(meta.brokers):
        problems.append(f"topics.replication_factor {cfg.replication_factor} exceeds the {len(meta.brokers)} "
                        f"broker(s) for the topics to create: {listed(missing)}")
    elif missing:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=cfg.partitions, replication_factor=cfg.replication_factor)
             for t in missing], validate_only=True, request_timeout=p.kafka_timeout,
            operation_timeout=p.kafka_timeout)
        for t, fut in sorted(futures.items()):
            try:
                fut.result()
            except KafkaException as e:
                if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: created meanwhile
                    problems.append(f"topic {t!r} cannot be created: {e.args[0].str()}")
    try:
        check_fixed_partition(p.task, {**{t: cfg.partitions for t in missing}, **existing})
    except ConfigError as e:
        problems.append(str(e))
    if problems:
        return failed("; ".join(problems), "create the topics yourself, or fix target.properties (ACLs) and the "
                      "topics settings; under the `one` rule fixed_partition must exist in every topic")
    parts = [f"{len(existing)} exist: {listed([f'{t} ({n} partitions)' for t, n in sorted(existing.items())], 4)}"
             ] if existing else []
    if missing:
        parts.append(f"{len(missing)} can be created with {cfg.partitions} partitions: {listed(missing, 4)}")
    return passed("; ".join(parts))


def check_task_name(p: Probe) -> Item:
    name, state = p.task.name, p.state_dir
    if len(name) > 64 or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return failed(f"task name {name!r} is not 1-64 letters, digits, '.', '-', '_'", "rename the task")
    own = state / "task.json"
    if own.exists():
        owner = _state_owner(own)
        if owner != name:
            return failed(f"state directory {state} belongs to task {owner!r}, not {name!r}",
                          "choose another state directory (state_dir or --state-dir)")
    others = sorted(str(d) for d in _sibling_states(state) if _state_owner(d / "task.json") == name)
    if others:
        return failed(f"task name {name!r} is already used by the task in {', '.join(others)}; two tasks "
                      "with one name write messages that cannot be told apart",
                      "rename this task, or run it from that state directory")
    return passed(f"task name {name!r} is valid and unique in {state.parent}")


def _sibling_states(state: Path) -> Iterator[Path]:
    try:
        children = list(state.parent.iterdir())
    except OSError:
        return
    for d in children:
        if d.resolve() != state.resolve() and (d / "task.json").is_file():
            yield d


def _state_owner(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def check_config_coherent(p: Probe) -> Item:
    task = p.task
    warnings: list[str] = []
    problems: list[str] = task_problems(task)  # what `obsync check` finds: the same function
    if p.connect_error("sql") is None:
        tables = p.tables()
        selection = p.selection()
        try:
            selection.check_names(Selected(*name.split("."), t.index) for name, t in tables.items()
                                  if t.kind == "BASE TABLE")
        except ConfigError as e:
            problems.append(str(e))
        for name, plan in p.plans().items():
            schema = tables[name].schema
            assert schema is not None
            try:
                check_table(plan, schema)
            except ConfigError as e:
                problems.append(str(e))
    try:
        start = TaskState(p.state_dir).load_start()
    except StateError as e:  # an older obsync's start point: `obsync run` would refuse it
        problems.append(str(e))
        start = None
    if start is not None and start.rules != selection_rules(task) and not task.sync.incremental:
        # with incremental sync a changed selection is a live change: added tables are backfilled
        problems.append(f"the task's table selection changed since it started (was {start.rules}) and "
                        "the task has no incremental sync, which backfills added tables; use a new state "
                        "directory (or task name) to sync the new selection from scratch")
    if task.sync.ddl and not task.sync.incremental:
        warnings.append("sync.ddl is true but incremental sync is off: DDL comes from the log, none will be sent")
    if problems:
        return failed("; ".join(problems), "correct the task file")
    if warnings:
        return warning("; ".join(warnings), "turn on sync.incremental or turn off sync.ddl")
    return passed("the settings agree with each other")

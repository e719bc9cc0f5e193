"""Everything a task file can be checked for without connecting: the model (`obsync.task.config`), then what
needs the formats and the Kafka client (format options, librdkafka properties) and settings that only make
sense together. `obsync check`, `run`, `precheck`, `save`, a reload and the Bytewax entry point all call
`load_checked_task`, so a file `check` calls valid is one `run` accepts up to what needs the servers.
"""

from __future__ import annotations

from pathlib import Path

from obsync.connectors.kafka.client import config_problem
from obsync.core.errors import ConfigError
from obsync.formats import encoder_for
from obsync.formats.base import EncoderContext
from obsync.runtime.settings import kafka_settings
from obsync.task.config import TaskConfig, load_task

__all__ = ["load_checked_task", "task_problems", "validate_task"]


def task_problems(task: TaskConfig) -> list[str]:
    """What is wrong with a valid-looking task before any server is asked, each naming its field."""
    problems: list[str] = []
    if not (task.sync.full or task.sync.incremental):
        problems.append("sync.full and sync.incremental are both false: the task would copy nothing")
    if task.partitioning == "one" and task.fixed_partition >= task.topics.partitions:
        problems.append(f"field `fixed_partition`: {task.fixed_partition} is not a partition of the topics obsync "
                        f"creates (topics.partitions {task.topics.partitions}: partitions 0 to "
                        f"{task.topics.partitions - 1})")
    matches = [o.match for o in task.objects]
    dup = sorted({m for m in matches if matches.count(m) > 1})
    if dup:
        problems.append(f"objects listed twice: {', '.join(dup)}")
    problems.extend(ddl_output_problems(task))
    db_type = "OB_MYSQL" if task.source.kind == "oceanbase" else "MYSQL"
    try:
        encoder_for(task.format, EncoderContext(task.name, db_type), task.format_options)
    except ConfigError as e:
        problems.append(str(e))
    target = task.target
    if target.patience != "forever" and target.stall_timeout >= target.patience:
        problems.append(
            f"fields `target.stall_timeout` ({target.stall_timeout:g} s) and `target.patience` "
            f"({target.patience:g} s): both count from the oldest message Kafka has not acknowledged, so the task "
            "would give up on a silent Kafka without ever reporting it as stalled; make target.stall_timeout "
            "less than target.patience (or target.patience `forever`)")
    if (why := config_problem(kafka_settings(target))) is not None:
        problems.append(f"field `target.properties`: librdkafka refuses the settings: {why}")
    return problems


def ddl_output_problems(task: TaskConfig) -> list[str]:
    """`ddl_messages` and `schema_history` against the rest of the task."""
    out = []
    if task.ddl_messages.to != "data_topics" and not task.sync.ddl:
        out.append(f"field `ddl_messages.to`: {task.ddl_messages.to} applies to DDL messages, which the task sends "
                   "only with `sync.ddl: true`; set sync.ddl: true, or leave ddl_messages out")
    if task.ddl_messages.to != "ddl_topic" and (task.ddl_messages.topic is not None
                                               or task.ddl_messages.partitioning != "one"):
        out.append("field `ddl_messages.topic`/`ddl_messages.partitioning`: only used with `ddl_messages.to: "
                   f"ddl_topic` (it is {task.ddl_messages.to})")
    if task.schema_history.enabled and not task.sync.incremental:
        out.append("field `schema_history.enabled`: the schema history follows the log's schema changes and needs "
                   "`sync.incremental: true`")
    own = {"the control topic": f"obsync.control.{task.name}", "the dead-letter topic":
           task.resolved_dead_letter_topic() if task.large_messages == "dead_letter" else None}
    if task.ddl_messages.to == "ddl_topic":
        own["the schema-history topic"] = task.resolved_history_topic() if task.schema_history.enabled else None
        for what, name in own.items():
            if name == task.resolved_ddl_topic():
                out.append(f"field `ddl_messages.topic`: {name} is also {what}; choose another name")
    if task.schema_history.enabled:
        own.pop("the schema-history topic", None)
        for what, name in own.items():
            if name == task.resolved_history_topic():
                out.append(f"field `schema_history.topic`: {name} is also {what}; choose another name")
    return out


def validate_task(task: TaskConfig, origin: str = "task file") -> TaskConfig:
    """The task, or a ConfigError listing every problem `task_problems` finds."""
    problems = task_problems(task)
    if problems:
        raise ConfigError(f"{origin} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    return task


def load_checked_task(path: str | Path) -> TaskConfig:
    """Read a task file and check everything that can be checked without connecting."""
    return validate_task(load_task(path), origin=f"task file {Path(path)}")

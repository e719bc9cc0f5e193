"""The task file: a YAML document validated into a frozen model before anything starts.

Errors name the field at fault and, for enumerated options, the valid values. `${NAME}` is replaced by the
environment variable NAME only in the fields of `ENV_FIELDS` (credentials, hosts, ports, users, Kafka
properties, the state directory), so passwords need not be written in the file; anywhere else a `${NAME}` is an
error naming the field (topic templates keep `${database}` / `${table}`). Secrets are `SecretStr` and never
printed. The file is read with limits (`MAX_FILE_BYTES`, `MAX_NODES`, `MAX_DEPTH`, aliases counted as the
nodes they stand for), and a YAML syntax error is reported by line and column without the text of the line.
"""

from __future__ import annotations

import os
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from obsync.core.errors import ConfigError
from obsync.sql.filters.syntax import parse_clause
from obsync.task.format_names import FormatName
from obsync.task.naming import TEMPLATE_VARS, check_existing_topic, check_topic_template, topic_for
from obsync.task.selection import Selection, check_pattern, is_pattern
from obsync.task.sizes import parse_bytes
from obsync.task.start_time import parse_start_time

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The only fields where `${NAME}` takes the environment variable NAME (patterns over the dotted path).
ENV_FIELDS = ("source.host", "source.port", "source.user", "source.password", "source.sql_host", "source.sql_port",
              "target.bootstrap_servers", "target.properties.*", "format_options.schema_registry",
              "format_options.schema_registry.url", "format_options.schema_registry.user",
              "format_options.schema_registry.password", "state_dir")
MAX_FILE_BYTES = 4 * 2**20  # a task file larger than this is refused unread
MAX_NODES = 100_000  # values in the document, an alias counting as every value it stands for
MAX_DEPTH = 64  # nesting of mappings and lists
_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """Where changes come from: an OceanBase MySQL tenant (via OBProxy / Binlog Service), MySQL or MariaDB."""

    host: str = "127.0.0.1"
    port: int = Field(2883, ge=1, le=65535)
    user: str
    password: SecretStr = SecretStr("")
    server_id: int = Field(5401, ge=1, le=2**32 - 1, description="replica server id for the binlog stream")
    kind: Literal["auto", "oceanbase", "mysql", "mariadb"] = "auto"
    # A separate endpoint for SQL (snapshot and schema) when the binlog service is elsewhere, as with
    # OceanBase: the tenant is read through OBProxy while the log comes from OceanBase Binlog Service.
    sql_host: str | None = None
    sql_port: int | None = Field(None, ge=1, le=65535)
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection and get the server's "
                                                          "greeting")
    read_timeout: float = Field(60.0, gt=0, description="seconds a SQL session or the binlog stream waits for the "
                                                       "server to send anything before it counts as lost")
    write_timeout: float = Field(60.0, gt=0, description="seconds a SQL session waits to send a request")
    patience: float | Literal["forever"] = Field(
        600.0, description="seconds full sync and the binlog stream keep reconnecting to a source that is down or "
                           "silent before the task fails, or `forever`; counted from the moment the source is "
                           "found lost (a refused connection, or read_timeout without an answer)")

    @field_validator("patience", mode="before")
    @classmethod
    def _patience(cls, v: Any) -> Any:
        return _seconds_or_forever(v)


def _seconds_or_forever(v: Any) -> Any:
    """A patience: a number of seconds (0 or more) or `forever`."""
    if v == "forever":
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
        raise ValueError(f"{v!r} is not a number of seconds (0 or more) nor `forever`")
    return v


class TargetConfig(_Model):
    """The Kafka cluster; `properties` are passed to librdkafka unchanged (SASL, SSL, ...)."""

    bootstrap_servers: str
    properties: dict[str, str | int | float | bool] = Field(default_factory=dict)
    stall_timeout: float = Field(30.0, gt=0, description="seconds messages may wait with no acknowledgement "
                                                        "from Kafka before the broker counts as stalled "
                                                        "(logged, shown in status and the metrics)")
    patience: float | Literal["forever"] = Field(
        600.0, description="seconds the sink waits for a Kafka that acknowledges nothing before the task "
                           "fails, or `forever`; counted, like stall_timeout, from the oldest message not "
                           "acknowledged, so it must be longer than stall_timeout")

    @field_validator("patience", mode="before")
    @classmethod
    def _patience(cls, v: Any) -> Any:
        return _seconds_or_forever(v)


DmlOp = Literal["insert", "update", "delete"]
DML_OPS: tuple[DmlOp, ...] = ("insert", "update", "delete")


class SyncConfig(_Model):
    """Which kinds of sync the task does, and which row operations it sends."""

    full: bool = True
    incremental: bool = True
    ddl: bool = Field(False, description="send DDL statements as messages (they always update the schema)")
    dml: tuple[DmlOp, ...] = Field(
        DML_OPS, min_length=1, description="row operations sent (after row filters turn updates into "
                                           "inserts or deletes)")
    start_time: str | float | None = Field(
        None, description="without full sync: start incremental sync at the first transaction committed at "
                          "or after this time (ISO-8601, UTC unless an offset is given, or epoch seconds); "
                          "default: now")

    @field_validator("start_time")
    @classmethod
    def _start_time(cls, v: str | float | None) -> str | float | None:
        if v is not None:
            parse_start_time(v)
        return v

    @model_validator(mode="after")
    def _start_time_needs_log_only(self) -> SyncConfig:
        if self.start_time is not None and self.full:
            raise ValueError("start_time applies only without full sync (with full sync the log starts where "
                             "the snapshot is taken); set full: false or remove start_time")
        if self.start_time is not None and not self.incremental:
            raise ValueError("start_time needs incremental: true")
        return self

    @field_validator("dml")
    @classmethod
    def _distinct_ops(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        dup = sorted({o for o in v if v.count(o) > 1})
        if dup:
            raise ValueError(f"operation {dup[0]!r} is listed twice")
        return v


class ObjectConfig(_Model):
    """One selection rule: which tables (`match`), and what is sent of them, and where.

    `match` is an exact `database.table` name or a pattern of the two (`*` any run, `?` one character,
    `[abc]`, `[!abc]`; case-sensitive; see `obsync.task.selection`). A table matched by several entries takes
    the settings of the first. `topic` is a fixed topic name or a template with `${database}` and
    `${table}` (default: the task's `topic`), created when missing; `existing_topic` names a topic that
    must already exist and is never created. `where` is a SQL WHERE clause over the table's columns
    (`obsync.sql.filters`), `columns` the columns sent (key columns always are). `sharding_columns`: the
    columns of the Kafka message key and of the Hash rule (OMS's "sharding columns"), in place of the
    primary key; every change with the same values lands in one partition in commit order.
    Columns are checked against each table when the task starts.
    """

    match: str
    topic: str | None = None
    existing_topic: str | None = None
    where: str | None = None
    columns: tuple[str, ...] | None = None
    sharding_columns: tuple[str, ...] = ()

    @field_validator("match")
    @classmethod
    def _pattern(cls, v: str) -> str:
        check_pattern(v)
        return v

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        return None if v is None else check_topic_template(v)

    @field_validator("existing_topic")
    @classmethod
    def _existing(cls, v: str | None) -> str | None:
        return None if v is None else check_existing_topic(v)

    @field_validator("where")
    @classmethod
    def _where(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("an empty row filter; leave `where` out to sync every row")
        if v is not None:  # its syntax and size here; its columns when the task starts (`obsync.task.objects`)
            try:
                parse_clause(v, "the row filter")
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("columns", "sharding_columns")
    @classmethod
    def _distinct_names(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if any(not c for c in v):
            raise ValueError("column names must not be empty")
        dup = sorted({c for c in v if v.count(c) > 1})
        if dup:
            raise ValueError(f"column {dup[0]!r} is named twice")
        return v

    @model_validator(mode="after")
    def _one_topic_kind(self) -> ObjectConfig:
        if self.topic is not None and self.existing_topic is not None:
            raise ValueError("set `topic` (created when missing) or `existing_topic` (must exist), not both")
        if self.columns is not None and not self.columns:
            raise ValueError("`columns` is empty; leave it out to sync every column")
        return self

    @property
    def is_exact(self) -> bool:
        """True when `match` names one table rather than a pattern."""
        return not is_pattern(self.match)

    @property
    def db(self) -> str:
        return self.match.split(".")[0]

    @property
    def table(self) -> str:
        return self.match.split(".")[1]


class TopicsConfig(_Model):
    """How obsync creates topics that do not exist."""

    partitions: int = Field(3, ge=1, le=10000)
    replication_factor: int = Field(1, ge=1, le=32)


class SnapshotConfig(_Model):
    """Full-sync tuning."""

    chunk_size: int = Field(50_000, ge=1, description="rows per chunk (the unit of parallelism and resume)")
    batch_size: int = Field(2_000, ge=1, le=100_000, description="rows per fetch and per dataflow item")


class RateLimit(_Model):
    """A cap on what one kind of sync takes from the source (`obsync.steps.ratelimit`); unset: no cap.

    `rps`: rows per second; `bps`: bytes per second of row data (estimated from the values, see
    `obsync.steps.ratelimit`), a number or a string with a unit (`obsync.task.sizes`): "10MB", "1.5 MB/s"
    (x1000), "512KiB" (x1024).
    """

    rps: float | None = Field(None, gt=0, description="rows per second")
    bps: float | None = Field(None, gt=0, description="bytes per second: a number, or e.g. '10MB', '512KiB'")

    @field_validator("bps", mode="before")
    @classmethod
    def _byte_rate(cls, v: Any) -> Any:
        return parse_bytes(v) if isinstance(v, str) else v


class LimitsConfig(_Model):
    """Rate limits of full sync (shared by the snapshot chunks a process reads, divided among processes)
    and of incremental sync (the log)."""

    full: RateLimit = RateLimit()
    incremental: RateLimit = RateLimit()


class FullResources(_Model):
    """What full sync may use (`obsync.task.resources`): chunks read at once, Kafka requests in flight per
    broker, and the memory its buffers are sized to (a number of bytes or e.g. "1GiB")."""

    read_concurrency: int = Field(1, ge=1, le=256)
    write_concurrency: int = Field(5, ge=1, le=5, description="in-flight requests per broker (idempotence: <= 5)")
    memory: float = Field(512 * 2**20, gt=0)

    @field_validator("memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_bytes(v) if isinstance(v, str) else v


class IncrementalResources(_Model):
    """What incremental sync may use: memory for the log reader's read-ahead, Kafka requests in flight."""

    log_memory: float = Field(128 * 2**20, gt=0)
    write_concurrency: int = Field(5, ge=1, le=5)

    @field_validator("log_memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_bytes(v) if isinstance(v, str) else v


PRESETS = ("small", "medium", "large")


class ResourcesConfig(_Model):
    """`full` and `incremental` resources: a preset name or explicit settings (`obsync.task.resources`)."""

    full: Literal["small", "medium", "large"] | FullResources | None = None
    incremental: Literal["small", "medium", "large"] | IncrementalResources | None = None


class HeartbeatConfig(_Model):
    """Heartbeat messages to the task's topics, and an optional heartbeat row written on the source."""

    interval: float = Field(0.0, ge=0, le=3600, description="seconds between heartbeat messages (0: none)")
    table: str | None = Field(None, description="`db.table` on the source obsync upserts (task, time) into "
                                                "every interval, creating it if missing; never synced")

    @field_validator("table")
    @classmethod
    def _table(cls, v: str | None) -> str | None:
        if v is not None:
            check_pattern(v)
            if is_pattern(v):
                raise ValueError("must be an exact 'database.table' name, not a pattern")
        return v

    @model_validator(mode="after")
    def _table_needs_interval(self) -> HeartbeatConfig:
        if self.table is not None and self.interval <= 0:
            raise ValueError("heartbeat.table needs heartbeat.interval > 0 (how often to write it)")
        return self


class DdlMessagesConfig(_Model):
    """Where DDL messages go when `sync.ddl` is on (docs/formats/README.md, "Where DDL messages go").

    `to`: `data_topics` (each statement in the topics of the tables it names, as before), `ddl_topic` (a topic
    of their own, `topic`, default obsync.ddl.<task name>; the data topics then hold row messages only, byte
    for byte as without DDL), or `none` (no DDL message at all; a format's own schema-change topic, such as
    Debezium's, is still written). `partitioning` of the DDL topic: `one` (a single partition, one order for
    every statement) or `table` (`topics.partitions` partitions, each statement in the partition of the hash of
    each `db.table` it names, so each table's statements stay in order).
    """

    to: Literal["data_topics", "ddl_topic", "none"] = "data_topics"
    topic: str | None = Field(None, description="the DDL topic (default obsync.ddl.<task name>)")
    partitioning: Literal["one", "table"] = "one"

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        return None if v is None else check_existing_topic(v)


class SchemaHistoryConfig(_Model):
    """A schema-history topic a consumer replays to rebuild every synced table at any position, as Debezium's
    schema history (`obsync.formats.schema_history`): one partition; first each table's CREATE TABLE at the start,
    then one record per schema change with its position, statement and the tables' structure after it."""

    enabled: bool = False
    topic: str | None = Field(None, description="the history topic (default obsync.schema_history.<task name>)")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        return None if v is None else check_existing_topic(v)


SchemaChangePolicy = Literal["evolve", "ignore", "stop", "compatible"]


class SchemaChangesConfig(_Model):
    """What a schema change the log meets (ALTER, RENAME, DROP of a table the task syncs) does to its messages
    (`obsync.connectors.mysql.binlog.schema_policy`, docs/schema-changes.md). The source's DDL always updates
    obsync's own schema (rows are decoded with the table's real shape); the policy decides the shape sent."""

    policy: SchemaChangePolicy = Field(
        "evolve", description="evolve: messages follow the new shape (default); ignore: messages keep the shape "
                              "the table had (new columns left out, dropped ones sent as their default or null, "
                              "renamed ones under the old name); stop: the task stops before the first change "
                              "after the DDL, naming it, its position and how to go on; compatible (format avro "
                              "with a schema registry): the new value schema is checked with the registry and, "
                              "if the subject's level refuses it, the smallest compatible shape is sent instead")


class TaskConfig(_Model):
    """A whole task file."""

    name: str
    source: SourceConfig
    target: TargetConfig
    sync: SyncConfig = SyncConfig()
    objects: list[ObjectConfig] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list, description="patterns of tables never synced")
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    resources: ResourcesConfig = ResourcesConfig()
    topic: str = "Topic_${database}_${table}"
    topics: TopicsConfig = TopicsConfig()
    format: FormatName = "default"
    format_options: dict[str, Any] = Field(default_factory=dict, description="checked by the format")
    partitioning: Literal["hash", "table", "one"] = "hash"
    fixed_partition: int = Field(0, ge=0, description="the partition of the `one` rule (< every topic's count)")
    state_dir: Path | None = None
    workers: int = Field(1, ge=1, le=64, description="Bytewax workers in this process")
    snapshot: SnapshotConfig = SnapshotConfig()
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus endpoint port (0: off)")
    progress_interval: float = Field(10.0, gt=0, le=3600, description="seconds between progress lines")
    epoch_seconds: float = Field(2.0, gt=0, le=600, description="how often state is snapshotted")
    limits: LimitsConfig = LimitsConfig()
    large_messages: Literal["fail", "key_only", "truncate", "dead_letter"] = Field(
        "fail", description="a row message larger than its topic accepts: stop, send key only, cut columns, "
                            "or split it into the dead-letter topic (obsync.steps.large_messages)")
    dead_letter_topic: str | None = Field(None, description="the `dead_letter` policy's topic (created if missing; "
                                                            "default `<name>.dead_letter`)")
    ddl_messages: DdlMessagesConfig = DdlMessagesConfig()
    schema_history: SchemaHistoryConfig = SchemaHistoryConfig()
    schema_changes: SchemaChangesConfig = SchemaChangesConfig()

    @field_validator("schema_changes")
    @classmethod
    def _compatible_needs_registry(cls, v: SchemaChangesConfig, info: ValidationInfo) -> SchemaChangesConfig:
        if v.policy == "compatible":
            fmt = info.data.get("format")
            registry = (info.data.get("format_options") or {}).get("schema_registry")
            url = registry.get("url") if isinstance(registry, dict) else registry
            if fmt != "avro" or not url:
                raise ValueError("policy compatible asks a schema registry whether a new schema is compatible, so "
                                 "it needs format avro with format_options.schema_registry.url; this task has "
                                 f"format {fmt}{' without a schema registry' if fmt == 'avro' else ''}. Use "
                                 "evolve, ignore or stop")
        return v

    @field_validator("dead_letter_topic")
    @classmethod
    def _dead_letter_topic(cls, v: str | None) -> str | None:
        return None if v is None else check_existing_topic(v)

    @field_validator("large_messages")
    @classmethod
    def _large_messages(cls, v: str, info: ValidationInfo) -> str:
        if v in ("key_only", "dead_letter") and info.data.get("format") == "avro":
            raise ValueError(f"{v} needs a JSON format: an Avro message has no room for the marker field and a "
                             "key-only value breaks its registered schema; use truncate or fail with format avro")
        return v

    def resolved_dead_letter_topic(self) -> str:
        return self.dead_letter_topic or f"{self.name}.dead_letter"

    def resolved_ddl_topic(self) -> str:
        return self.ddl_messages.topic or f"obsync.ddl.{self.name}"

    def resolved_history_topic(self) -> str:
        return self.schema_history.topic or f"obsync.schema_history.{self.name}"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TASK_NAME.match(v):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '-', '_' (no spaces)")
        return v

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return check_topic_template(v)

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        for p in v:
            check_pattern(p)
        return v

    def selection(self) -> Selection[ObjectConfig]:
        """The task's include rules and exclude patterns (the heartbeat table is always excluded)."""
        extra = [self.heartbeat.table] if self.heartbeat.table is not None else []
        return Selection(self.objects, [*self.exclude, *extra])

    def topic_for(self, db: str, table: str, obj: ObjectConfig | None = None) -> str:
        """The Kafka topic of a table selected by `obj` (the object's topic, else the task's template)."""
        return topic_for(self.topic, db, table, obj)

    def resolved_state_dir(self, override: Path | None = None) -> Path:
        return Path(override or self.state_dir or Path("state") / self.name)


def _expand_env(value: Any, path: str) -> Any:
    """Replace `${NAME}` with the environment variable NAME in the strings of the `ENV_FIELDS`; refuse it
    elsewhere (keeping the `${database}` / `${table}` of topic templates)."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}.{i}") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    expands = any(fnmatchcase(path, f) for f in ENV_FIELDS)

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in TEMPLATE_VARS and not expands:
            return m.group(0)
        if not expands:
            raise ConfigError(f"field `{path}`: `${{{name}}}`: environment variables are expanded only in "
                              "source.host, .port, .user, .password, .sql_host, .sql_port, target.bootstrap_servers, "
                              "target.properties, format_options.schema_registry (.url, .user, .password) and "
                              "state_dir; write the value itself here"
                              + (" (a topic template takes ${database} and ${table})" if path.endswith("topic")
                                 else ""))
        if name not in os.environ:
            raise ConfigError(f"field `{path}`: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def parse_task(data: Any, origin: str = "task file") -> TaskConfig:
    """Validate a task document (already parsed from YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of settings, got {type(data).__name__}")
    try:
        data = _expand_env(data, "")
    except ConfigError as e:
        raise ConfigError(f"{origin} is invalid:\n  {e}") from None
    try:
        return TaskConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors(include_url=False, include_input=False):
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            lines.append(f"  field `{field}`: {msg}")
        raise ConfigError(f"{origin} is invalid:\n" + "\n".join(lines)) from None


def read_task_document(path: str | Path) -> Any:
    """The YAML document of a task file, read within `MAX_FILE_BYTES`, `MAX_NODES` and `MAX_DEPTH`; a syntax
    error names the line, the column and the problem, never the text of the line (it may hold a password)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"task file {p} is {size} bytes, more than the {MAX_FILE_BYTES} a task file may have")
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read task file {p}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"task file {p} is not UTF-8 text (byte {e.start})") from None
    try:
        _check_shape(text, p)
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"task file {p} is not valid YAML: {_yaml_problem(e, text)}") from None


def _check_shape(text: str, p: Path) -> None:
    """Refuse a document of more than `MAX_NODES` values or nested deeper than `MAX_DEPTH`, counting each alias
    as the values of its anchor (a "billion laughs" document is refused after reading `MAX_NODES` of them)."""
    loader = yaml.SafeLoader(text)
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, nesting) of what it names
    open_: list[list[Any]] = []  # per open mapping/list: [anchor, values before it, its deepest child nesting]
    count = 0
    try:
        while loader.check_event():
            ev = loader.get_event()
            if isinstance(ev, (yaml.AliasEvent, yaml.ScalarEvent, yaml.CollectionStartEvent)):
                n, h = sizes.get(ev.anchor or "", (1, 0)) if isinstance(ev, yaml.AliasEvent) else (1, 0)
                count += n
                if isinstance(ev, yaml.ScalarEvent) and ev.anchor:
                    sizes[ev.anchor] = (1, 0)
                if isinstance(ev, yaml.CollectionStartEvent):
                    open_.append([ev.anchor, count - 1, 0])
                    h = 0
                elif open_:
                    open_[-1][2] = max(open_[-1][2], h)
                depth = len(open_) + h
                if count > MAX_NODES:
                    raise ConfigError(f"task file {p} has more than {MAX_NODES} values (aliases count as the "
                                      "values they repeat); a task file is limited to that many")
                if depth > MAX_DEPTH:
                    line = ev.start_mark.line + 1 if ev.start_mark is not None else "?"
                    raise ConfigError(f"task file {p} nests mappings and lists more than {MAX_DEPTH} deep (line "
                                      f"{line}); a task file is limited to that depth")
            elif isinstance(ev, yaml.CollectionEndEvent):
                anchor, before, child = open_.pop()
                if anchor:
                    sizes[anchor] = (count - before, child + 1)
                if open_:
                    open_[-1][2] = max(open_[-1][2], child + 1)
    finally:
        loader.dispose()


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_TOKEN_NAME = re.compile(r"'<[a-z ]+>'")


def _masked(text: str) -> str:
    """PyYAML's problem text with what it quotes from the file masked (an alias, a tag or a token may be part
    of a password), except YAML's own token names and a single punctuation or space character."""
    def mask(m: re.Match[str]) -> str:
        q = m.group(0)
        inner = q[1:-1].encode().decode("unicode_escape", "replace") if "\\" in q else q[1:-1]
        if _TOKEN_NAME.fullmatch(q) or (len(inner) == 1 and not inner.isalnum()):
            return q
        return "'***'"
    return _QUOTED.sub(mask, text)


def _field_names() -> set[str]:
    names: set[str] = set()
    todo: list[type[BaseModel]] = [TaskConfig]
    while todo:
        model = todo.pop()
        for name, info in model.model_fields.items():
            names.add(name)
            for arg in [info.annotation, *getattr(info.annotation, "__args__", ())]:
                if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in todo:
                    todo.append(arg)
    return names


_LINE_KEY = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*:")


def _yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """Where and what the YAML error is: line, column, the setting the line starts (when it is one of the task
    file's own keys) and PyYAML's problem, masked; never the line itself."""
    if isinstance(e, yaml.reader.ReaderError):
        code = e.character if isinstance(e.character, int) else ord(e.character)
        return f"{e.reason} (character #x{code:04x}) at offset {e.position}"
    if not isinstance(e, yaml.MarkedYAMLError):
        return type(e).__name__
    mark = e.problem_mark or e.context_mark
    where = ""
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        lines = text.splitlines()
        key = _LINE_KEY.match(lines[mark.line]) if mark.line < len(lines) else None
        if key and key.group(1) in _field_names():
            where += f" (setting `{key.group(1)}`)"
        where += ": "
    what = _masked(e.problem or "") or "invalid YAML"
    if e.context and e.problem:
        what += f" ({_masked(e.context)})"
    return where + what


def load_task(path: str | Path) -> TaskConfig:
    """Read and validate a task file."""
    return parse_task(read_task_document(path), origin=f"task file {Path(path)}")

"""The `format_options` of the Debezium formats, validated into one frozen settings object.

Every option maps to the Debezium MySQL connector property (or JsonConverter / ExtractNewRecordState setting)
of the same meaning; the defaults are Debezium's defaults:

| option                          | Debezium setting                      | default                           |
|---------------------------------|---------------------------------------|-----------------------------------|
| `topic_prefix`                  | `topic.prefix`                        | the task name                     |
| `decimal_handling_mode`         | `decimal.handling.mode`               | `precise`                         |
| `bigint_unsigned_handling_mode` | `bigint.unsigned.handling.mode`       | `long`                            |
| `tombstones_on_delete`          | `tombstones.on.delete`                | `true`                            |
| `include_schema_changes`        | `include.schema.changes`              | `true`                            |
| `truncate_events`               | `skipped.operations` without `t`      | `false` (not in debezium_smt)     |
| `truncate_schema_changes`       | (Debezium up to 3.1 wrote one)        | `false`                           |
| `schemas_enable`                | JsonConverter `schemas.enable`        | `true`; smt `false`; not in flatten |
| `delete_handling` (smt only)    | ExtractNewRecordState's `delete.tombstone.handling.mode` | `rewrite`       |

`truncate_schema_changes` writes a schema-change event (with `tableChanges` []) for TRUNCATE TABLE: Debezium 3.1
did, Debezium 3.2 and later do not (DBZ-9085), and neither does obsync by default.

`topic_prefix` names the schema-change topic and prefixes every Connect schema name
(`<prefix>.<db>.<table>.Key`, `.Value`, `.Envelope`); it must be a valid Kafka topic name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from obsync.core.errors import ConfigError
from obsync.task.naming import topic_problem

DecimalMode = Literal["precise", "string", "double"]
BigintMode = Literal["long", "precise"]
DeleteHandling = Literal["rewrite", "tombstone", "drop"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "decimal_handling_mode": ("precise", "string", "double"),
    "bigint_unsigned_handling_mode": ("long", "precise"),
    "delete_handling": ("rewrite", "tombstone", "drop"),
}
_BOOLEANS = ("tombstones_on_delete", "include_schema_changes", "truncate_events", "schemas_enable",
             "truncate_schema_changes")
COMMON_OPTIONS = ("topic_prefix", "decimal_handling_mode", "bigint_unsigned_handling_mode", "tombstones_on_delete",
                  "include_schema_changes", "truncate_schema_changes")


@dataclass(frozen=True, slots=True)
class DebeziumConfig:
    """Settings shared by the envelope, the Connect schemas and the encoders."""

    topic_prefix: str
    decimal_handling_mode: DecimalMode = "precise"
    bigint_unsigned_handling_mode: BigintMode = "long"
    tombstones_on_delete: bool = True
    include_schema_changes: bool = True
    truncate_events: bool = False
    schemas_enable: bool = True
    delete_handling: DeleteHandling = "rewrite"
    truncate_schema_changes: bool = False


def parse_options(fmt: str, task_name: str, options: dict[str, Any], allowed: tuple[str, ...],
                  **defaults: Any) -> DebeziumConfig:
    """Validate `format_options` of format `fmt`; only the `allowed` option names are accepted.

    Raises `ConfigError` naming `format_options.<key>` and, for enumerated options, the valid values.
    """
    for key in sorted(options):
        if key not in allowed:
            raise ConfigError(f"field `format_options.{key}`: unknown option of format {fmt}; "
                              f"valid: {', '.join(allowed)}")
    values: dict[str, Any] = {"topic_prefix": task_name, **defaults}
    for key, value in options.items():
        if key in _CHOICES:
            if value not in _CHOICES[key]:
                raise ConfigError(f"field `format_options.{key}`: {value!r} is not valid; "
                                  f"valid: {', '.join(_CHOICES[key])}")
        elif key in _BOOLEANS:
            if not isinstance(value, bool):
                raise ConfigError(f"field `format_options.{key}`: must be true or false, got {value!r}")
        elif key == "topic_prefix":
            if not isinstance(value, str) or topic_problem(value) is not None:
                raise ConfigError(f"field `format_options.topic_prefix`: {value!r} is not a valid Kafka topic "
                                  "name (1-249 letters, digits, '.', '_', '-'); it names the schema-change topic")
        values[key] = value
    return DebeziumConfig(**values)

"""The `debezium_smt` format: Debezium change events after the `ExtractNewRecordState` transform, configured
`add.fields=op,table,db,source.ts_ms` and `delete.tombstone.handling.mode` from `delete_handling`.

The value is the row image as a flat struct, then, in `rewrite` mode, `__deleted` ("false", or "true" on deletes),
then `__op`, `__table`, `__db`, `__source_ts_ms` (from the envelope's `op` and its `source` block): the order the
real transform gives (its rewrite strategy adds `__deleted` before `add.fields` are appended). The key is the
`debezium` format's key struct. `schemas_enable` (default false) wraps key and value in `{schema, payload}`.

| `delete_handling` | a delete becomes                                        | Debezium mode                |
|-------------------|---------------------------------------------------------|------------------------------|
| `rewrite`         | the before image with `"__deleted": "true"`, then a     | `rewrite-with-tombstone`     |
|                   | tombstone (none with `tombstones_on_delete: false`)     | (`rewrite` without)          |
| `tombstone`       | one tombstone (same key, null value)                    | `delete-to-tombstone`        |
| `drop`            | nothing                                                 | `drop`                       |

Truncate events are dropped by the transform, so the format offers no `truncate_events`; schema-change events
are not envelopes and pass through unchanged, as the transform leaves them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from obsync.core.changes import Change
from obsync.formats.base import Encoder, EncoderContext, KafkaRecord
from obsync.formats.debezium.config import COMMON_OPTIONS, DebeziumConfig, parse_options
from obsync.formats.debezium.envelope import Event, Struct
from obsync.formats.debezium.json_format import DebeziumDecoder, DebeziumEncoder, _dumps
from obsync.formats.decoding import SKIP, Decoded
from obsync.formats.registry import register, register_decoder


def flatten(envelope: Struct, rewrite: bool) -> Struct:
    """ExtractNewRecordState's value for an envelope: the after image (before image for a delete), then
    `__deleted` in rewrite mode, then the added fields."""
    src = envelope["source"]
    op = envelope["op"]
    row = envelope["before"] if op == "d" else envelope["after"]
    out = dict(row)
    if rewrite:  # the rewrite strategy adds `__deleted` to the row before `add.fields` appends the others
        out["__deleted"] = "true" if op == "d" else "false"
    out["__op"] = op
    out["__table"] = src["table"]
    out["__db"] = src["db"]
    out["__source_ts_ms"] = src["ts_ms"]
    return out


class DebeziumSmtEncoder(DebeziumEncoder):
    name = "debezium_smt"
    row_fragments = False  # `flatten` reads the rows

    def __init__(self, cfg: DebeziumConfig, *, clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(cfg, clock=clock)
        self.rewrite = cfg.delete_handling == "rewrite"

    def encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        out = []
        handling = self.cfg.delete_handling
        for e in self.builder.encode(change, topic):
            if e.kind == "schema_change":
                out.append(self.record(e, topic))
            elif e.kind == "tombstone":
                if handling == "rewrite":
                    out.append(self.record(e, topic))
            elif e.kind == "change":
                assert e.value is not None and e.plan is not None
                if e.value["op"] == "d" and handling != "rewrite":
                    if handling == "tombstone":
                        out.append(self.record(Event("tombstone", e.plan, e.key, None), topic))
                    continue
                key = None if e.key is None else self.wrap(e.plan.schema_json("key", _dumps), e.key)
                value = self.wrap(e.plan.schema_json("smt", _dumps), flatten(e.value, self.rewrite))
                out.append(KafkaRecord(topic, key, value))
            # truncate events: dropped, as the transform drops them
        return out


@register("debezium_smt")
def _build(ctx: EncoderContext, **options: Any) -> DebeziumSmtEncoder:
    """`format_options`: those of `debezium` except `truncate_events`, plus `delete_handling` (rewrite,
    tombstone, drop); `schemas_enable` defaults to false."""
    cfg = parse_options("debezium_smt", ctx.task_name, options,
                        COMMON_OPTIONS + ("schemas_enable", "delete_handling"), schemas_enable=False)
    return DebeziumSmtEncoder(cfg)


_ADDED = ("__op", "__table", "__db", "__source_ts_ms", "__deleted")
_SMT_OPS = {"c": "insert", "r": "insert", "u": "insert", "d": "delete"}


class DebeziumSmtDecoder(DebeziumDecoder):
    """Reads flattened rows: `__op` c/r/u give the row (an update replaces its key's row), `d` (`__deleted`
    "true") removes it; a tombstone removes its key's row; schema-change events are skipped."""

    def rows(self, key: Any, value: Any) -> list[Decoded]:
        if value is None:
            return [Decoded("delete", None, dict(key), None)] if isinstance(key, dict) else [SKIP]
        if not isinstance(value, dict) or "__op" not in value:
            return [SKIP]
        op = _SMT_OPS.get(value["__op"])
        if op is None:
            return [SKIP]
        row = {k: v for k, v in value.items() if k not in _ADDED}
        table = (value.get("__db"), value.get("__table"))
        return [Decoded("delete", table, row, None) if op == "delete" else Decoded("insert", table, None, row)]


@register_decoder("debezium_smt")
def _decoder(encoder: Encoder) -> DebeziumSmtDecoder:
    return DebeziumSmtDecoder(encoder)

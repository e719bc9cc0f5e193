"""The `debezium_flatten` format: the `debezium` format with the JsonConverter's `schemas.enable=false`.

Key and value are the bare payloads: `{"id": 42}` and `{"before":..., "after":..., "source":..., "transaction":
null, "op": "c", "ts_ms":..., "ts_us":..., "ts_ns":...}`, as Flink's `debezium-json` reader expects by default.
"""

from __future__ import annotations

from typing import Any

from obsync.formats.base import Encoder, EncoderContext
from obsync.formats.debezium.config import COMMON_OPTIONS, parse_options
from obsync.formats.debezium.json_format import DebeziumDecoder, DebeziumEncoder
from obsync.formats.registry import register, register_decoder


class DebeziumFlattenEncoder(DebeziumEncoder):
    name = "debezium_flatten"


@register("debezium_flatten")
def _build(ctx: EncoderContext, **options: Any) -> DebeziumFlattenEncoder:
    """`format_options`: those of `debezium` except `schemas_enable` (always false here)."""
    cfg = parse_options("debezium_flatten", ctx.task_name, options, COMMON_OPTIONS + ("truncate_events",),
                        schemas_enable=False)
    return DebeziumFlattenEncoder(cfg)


@register_decoder("debezium_flatten")
def _decoder(encoder: Encoder) -> DebeziumDecoder:
    return DebeziumDecoder(encoder)

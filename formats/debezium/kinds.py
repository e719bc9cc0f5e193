"""How the Debezium MySQL connector represents each column: one kind per column, from its declared type and the
options (`decimal_handling_mode`, `bigint_unsigned_handling_mode`).

The kind is what both the Connect schema (`obsync.formats.debezium.connect_schema`) and the value converters
(`obsync.formats.debezium.values`) are chosen by, so the two always agree; it imports neither.
"""

from __future__ import annotations

from obsync.core.schema import BINARY_TYPES, INTEGER_TYPES, TEXT_TYPES, Column
from obsync.formats.debezium.config import DebeziumConfig

SPATIAL_TYPES = frozenset({"geometry", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                           "geometrycollection", "geomcollection"})


def _float_has_scale(column: Column) -> bool:
    ct = column.column_type
    return "(" in ct and "," in ct[ct.index("("):]


def column_kind(column: Column, cfg: DebeziumConfig) -> str:
    """How Debezium represents `column`: one of the kinds `obsync.formats.debezium.connect_schema` and
    `obsync.formats.debezium.values` know."""
    t = column.data_type
    if t in INTEGER_TYPES:
        if t in ("tinyint", "smallint"):
            return "int32" if (t == "smallint" and column.unsigned) else "int16"
        if t in ("mediumint",) or (t in ("int", "integer") and not column.unsigned):
            return "int32"
        if t == "bigint" and column.unsigned:
            return "uint64_precise" if cfg.bigint_unsigned_handling_mode == "precise" else "uint64_long"
        return "int64"
    if t in ("decimal", "numeric"):
        return f"decimal_{cfg.decimal_handling_mode}"
    if t == "float":
        return "float64" if _float_has_scale(column) else "float32"
    if t in ("double", "real", "double precision"):
        return "float64"
    if t == "bit":
        return "bool_bit" if column.bit_width <= 1 else "bits"
    if t == "binary" or (t == "char" and column.charset == "binary"):
        return "binary_fixed"
    if t in BINARY_TYPES or column.is_binary:
        return "bytes"
    if t in TEXT_TYPES:
        return "string"
    if t == "json":
        return "json"
    if t == "enum":
        return "enum"
    if t == "set":
        return "set"
    if t == "date":
        return "date"
    if t == "time":
        return "time"
    if t == "datetime":
        return "datetime_ms" if column.fsp <= 3 else "datetime_us"
    if t == "timestamp":
        return "timestamp"
    if t == "year":
        return "year"
    if t == "point":
        return "point"
    if t in SPATIAL_TYPES:
        return "geometry"
    return "other"

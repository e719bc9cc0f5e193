"""Kafka Connect schemas of the Debezium MySQL connector, as plain dicts in the JsonConverter's schema format.

A schema is a dict whose members appear in the order the JsonConverter writes them: `type`, then `items`
(arrays) or `fields` (structs), `optional`, `name`, `version`, `doc`, `parameters`, `default`; a struct's field
is its schema plus a last member `field` (the field name). Connect type names are the JsonConverter's:
`int16`, `int32`, `int64`, `float` (FLOAT32), `double` (FLOAT64), `boolean`, `string`, `bytes`, `array`,
`struct`. The same dicts describe the Avro format's content (its helper converts them to Avro schemas).

Column types map as Debezium's `BinlogValueConverters` / `JdbcValueConverters` do with default settings
(`time.precision.mode=adaptive_time_microseconds`, `binary.handling.mode=bytes`, `decimal.handling.mode` and
`bigint.unsigned.handling.mode` from the options), with the column types of its MySQL DDL parser:

| MySQL type                        | Connect type | logical name (parameters)                                 |
|-----------------------------------|--------------|-----------------------------------------------------------|
| TINYINT, SMALLINT, TINYINT UNSIGNED | int16      |                                                           |
| MEDIUMINT (±UNSIGNED), INT, SMALLINT UNSIGNED | int32 |                                                   |
| BIGINT, INT UNSIGNED              | int64        |                                                           |
| BIGINT UNSIGNED                   | int64        | (`long` mode); `precise`: Decimal, scale 0, precision 20  |
| FLOAT (no scale, precision <= 24) | float        |                                                           |
| FLOAT(M,D), DOUBLE                | double       |                                                           |
| DECIMAL(M,D)                      | bytes        | org.apache.kafka.connect.data.Decimal (scale,             |
|                                   |              | connect.decimal.precision); string / double by option     |
| BIT(1) / BIT(n)                   | boolean / bytes | io.debezium.data.Bits (length)                         |
| BINARY, VARBINARY, BLOB kinds     | bytes        |                                                           |
| CHAR, VARCHAR, TEXT kinds         | string       |                                                           |
| JSON                              | string       | io.debezium.data.Json                                     |
| ENUM / SET                        | string       | io.debezium.data.Enum / io.debezium.data.EnumSet (allowed) |
| DATE                              | int32        | io.debezium.time.Date                                     |
| TIME(n)                           | int64        | io.debezium.time.MicroTime                                |
| DATETIME(0-3) / DATETIME(4-6)     | int64        | io.debezium.time.Timestamp / io.debezium.time.MicroTimestamp |
| TIMESTAMP(n)                      | string       | io.debezium.time.ZonedTimestamp                           |
| YEAR                              | int32        | io.debezium.time.Year                                     |
| GEOMETRY kinds / POINT            | struct       | io.debezium.data.geometry.Geometry / .Point               |

Schema names are not adjusted (`schema.name.adjustment.mode=none`, Debezium's default since 2.0); the
`<prefix>.<db>.<table>` part has characters that are invalid in a topic name replaced by `_`, as Debezium's
default topic naming strategy does.

A column with a literal default (`Column.default`, see `obsync.core.defaults`) has it as the `default` of its field
schema, in the key, the `.Value` struct (`before`/`after`) and the flattened value alike, optional columns
included, as Debezium's `TableSchemaBuilder` adds it: the default converted as the column's values are (the
JsonConverter's form, so a DECIMAL default is Base64 of its unscaled value, `obsync.formats.debezium.values`). A
default that converts to null (a zero date in a nullable column) is left out. As Debezium does, a NOT NULL
TIMESTAMP that defaults to CURRENT_TIMESTAMP has the epoch as its default; other expression defaults have
none (no `default` member). A column's COMMENT is its field's `doc`, as Debezium's `TableSchemaBuilder` sets it
(key, `.Value` and flattened value alike; the Avro format writes it as the Avro field's `doc`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from obsync.core.defaults import default_value
from obsync.core.schema import Column, TableSchema
from obsync.formats.debezium.config import DebeziumConfig
from obsync.formats.debezium.kinds import column_kind
from obsync.formats.debezium.values import converters
from obsync.task.naming import topic_safe

Schema = dict[str, Any]

DEBEZIUM_VERSION = "3.1.0.Final"  # the release whose message format obsync reproduces (source.version)
CONNECTOR = "mysql"
SNAPSHOT_VALUES = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"


def schema(type_: str, optional: bool = False, name: str | None = None, version: int | None = None,
           parameters: dict[str, str] | None = None, doc: str | None = None) -> Schema:
    """A primitive (or logical) schema, members in the JsonConverter's order."""
    s: Schema = {"type": type_, "optional": optional}
    if name is not None:
        s["name"] = name
    if version is not None:
        s["version"] = version
    if doc is not None:
        s["doc"] = doc
    if parameters is not None:
        s["parameters"] = parameters
    return s


def struct(fields: list[Schema], optional: bool = False, name: str | None = None, version: int | None = None,
           doc: str | None = None) -> Schema:
    s: Schema = {"type": "struct", "fields": fields, "optional": optional}
    if name is not None:
        s["name"] = name
    if version is not None:
        s["version"] = version
    if doc is not None:
        s["doc"] = doc
    return s


def field(name: str, s: Schema) -> Schema:
    """`s` as the field `name` of a struct."""
    return {**s, "field": name}


def array(items: Schema, optional: bool = False) -> Schema:
    return {"type": "array", "items": items, "optional": optional}


# ------------------------------------------------------------------------------------------- columns


def allowed_values(column: Column) -> str:
    """ENUM/SET members as Debezium lists them in `allowed`: comma-joined, a comma inside a member escaped."""
    return ",".join(m.replace(",", "\\,") for m in column.values)


def _decimal(scale: int, precision: int, optional: bool) -> Schema:
    return schema("bytes", optional, "org.apache.kafka.connect.data.Decimal", 1,
                  {"scale": str(scale), "connect.decimal.precision": str(precision)})


def connect_schema_of(column: Column, cfg: DebeziumConfig, optional: bool | None = None) -> Schema:
    """The Connect schema of `column`'s values (optional when the column is nullable, unless `optional` says),
    with the column's default as `default` when it has a literal one."""
    s = _connect_schema_of(column, cfg, column.nullable if optional is None else optional)
    if column.comment is not None:  # as TableSchemaBuilder does: the comment is the field's doc
        s = _with_doc(s, column.comment)
    if column.default is not None:
        default = json_default(column, cfg)
        if default is not None:
            s["default"] = default
    return s


def _with_doc(s: Schema, doc: str) -> Schema:
    """`s` with `doc`, in the JsonConverter's member order (before `parameters` and `default`)."""
    out: Schema = {}
    for k, v in s.items():
        if k in ("parameters", "default") and "doc" not in out:
            out["doc"] = doc
        if k != "doc":
            out[k] = v
    out.setdefault("doc", doc)
    return out


def json_default(column: Column, cfg: DebeziumConfig) -> Any:
    """`column`'s default as the JsonConverter writes it (None: no default, or it converts to null)."""
    value = default_value(column)
    if value is None:
        return None
    convert = converters(column, cfg)[1]
    return value if convert is None else convert(value)


def _connect_schema_of(column: Column, cfg: DebeziumConfig, opt: bool) -> Schema:
    kind = column_kind(column, cfg)
    simple = _SIMPLE.get(kind)
    if simple is not None:
        return schema(simple[0], opt, *simple[1:])
    if kind == "uint64_precise":
        return _decimal(0, 20, opt)
    if kind == "decimal_precise":
        scale = column.scale if column.scale is not None else 0
        return _decimal(scale, column.precision if column.precision is not None else 10, opt)
    if kind == "bits":
        return schema("bytes", opt, "io.debezium.data.Bits", 1, {"length": str(column.bit_width)})
    if kind == "enum":
        return schema("string", opt, "io.debezium.data.Enum", 1, {"allowed": allowed_values(column)})
    if kind == "set":
        return schema("string", opt, "io.debezium.data.EnumSet", 1, {"allowed": allowed_values(column)})
    if kind == "geometry":
        return struct([field("wkb", schema("bytes")), field("srid", schema("int32", True))], opt,
                      "io.debezium.data.geometry.Geometry", 1, "Geometry")
    if kind == "point":
        return struct([field("x", schema("double")), field("y", schema("double")),
                       field("wkb", schema("bytes", True)), field("srid", schema("int32", True))], opt,
                      "io.debezium.data.geometry.Point", 1, "Geometry (POINT)")
    raise AssertionError(kind)


_SIMPLE: dict[str, tuple[Any, ...]] = {
    "int16": ("int16",), "int32": ("int32",), "int64": ("int64",), "uint64_long": ("int64",),
    "float32": ("float",), "float64": ("double",), "decimal_string": ("string",), "decimal_double": ("double",),
    "bool_bit": ("boolean",), "bytes": ("bytes",), "binary_fixed": ("bytes",), "string": ("string",),
    "other": ("string",),
    "json": ("string", "io.debezium.data.Json", 1),
    "date": ("int32", "io.debezium.time.Date", 1),
    "time": ("int64", "io.debezium.time.MicroTime", 1),
    "datetime_ms": ("int64", "io.debezium.time.Timestamp", 1),
    "datetime_us": ("int64", "io.debezium.time.MicroTimestamp", 1),
    "timestamp": ("string", "io.debezium.time.ZonedTimestamp", 1),
    "year": ("int32", "io.debezium.time.Year", 1),
}


# ------------------------------------------------------------------------------------------- tables


def schema_prefix(topic_prefix: str, db: str, table: str) -> str:
    """`<prefix>.<db>.<table>`, the start of a table's schema names (Debezium's default topic name)."""
    return ".".join(topic_safe(p) for p in (topic_prefix, db, table))


def value_schema(table: TableSchema, cfg: DebeziumConfig) -> Schema:
    """`<prefix>.<db>.<table>.Value`: every column, in table order (optional: it is `before`/`after`)."""
    return struct([field(c.name, connect_schema_of(c, cfg)) for c in table.columns], True,
                  schema_prefix(cfg.topic_prefix, table.db, table.name) + ".Value")


def key_schema(table: TableSchema, cfg: DebeziumConfig) -> Schema | None:
    """`<prefix>.<db>.<table>.Key`: the message key columns (None when the table has none: null keys)."""
    cols = table.message_key_columns
    if not cols:
        return None
    return struct([field(n, connect_schema_of(table.column(n), cfg)) for n in cols], False,
                  schema_prefix(cfg.topic_prefix, table.db, table.name) + ".Key")


@lru_cache(maxsize=1)
def source_schema() -> Schema:
    """`io.debezium.connector.mysql.Source` (the `source` block; versioned since Debezium 3.1)."""
    return struct([
        field("version", schema("string")),
        field("connector", schema("string")),
        field("name", schema("string")),
        field("ts_ms", schema("int64")),
        field("snapshot", {**schema("string", True, "io.debezium.data.Enum", 1, {"allowed": SNAPSHOT_VALUES}),
                           "default": "false"}),
        field("db", schema("string")),
        field("sequence", schema("string", True)),
        field("ts_us", schema("int64", True)),
        field("ts_ns", schema("int64", True)),
        field("table", schema("string", True)),
        field("server_id", schema("int64")),
        field("gtid", schema("string", True)),
        field("file", schema("string")),
        field("pos", schema("int64")),
        field("row", schema("int32")),
        field("thread", schema("int64", True)),
        field("query", schema("string", True)),
    ], False, "io.debezium.connector.mysql.Source", 1)


@lru_cache(maxsize=1)
def transaction_schema() -> Schema:
    """`event.block`: the `transaction` block (always null: `provide.transaction.metadata` is off)."""
    return struct([field("id", schema("string")), field("total_order", schema("int64")),
                   field("data_collection_order", schema("int64"))], True, "event.block", 1)


def envelope_schema(table: TableSchema, cfg: DebeziumConfig) -> Schema:
    """`<prefix>.<db>.<table>.Envelope` (version 2): before, after, source, transaction, op, ts_ms/us/ns."""
    value = value_schema(table, cfg)
    return struct([
        field("before", value),
        field("after", value),
        field("source", source_schema()),
        field("transaction", transaction_schema()),
        field("op", schema("string")),
        field("ts_ms", schema("int64", True)),
        field("ts_us", schema("int64", True)),
        field("ts_ns", schema("int64", True)),
    ], False, schema_prefix(cfg.topic_prefix, table.db, table.name) + ".Envelope", 2)


SMT_FIELDS = (("__op", "string"), ("__table", "string"), ("__db", "string"), ("__source_ts_ms", "int64"))


def smt_value_schema(table: TableSchema, cfg: DebeziumConfig) -> Schema:
    """ExtractNewRecordState's value (`add.fields=op,table,db,source.ts_ms`): the row's fields, `__deleted` in
    `rewrite` mode, then the added fields (optional copies of the envelope's); the struct is required
    (InsertField copies only the name of the row schema)."""
    fields = [field(c.name, connect_schema_of(c, cfg)) for c in table.columns]
    if cfg.delete_handling == "rewrite":
        fields.append(field("__deleted", schema("string", True)))
    fields += [field(n, schema(t, True)) for n, t in SMT_FIELDS]
    return struct(fields, False, schema_prefix(cfg.topic_prefix, table.db, table.name) + ".Value")


# ------------------------------------------------------------------------------------------- schema changes


@lru_cache(maxsize=1)
def schema_change_key_schema() -> Schema:
    return struct([field("databaseName", schema("string"))], False,
                  "io.debezium.connector.mysql.SchemaChangeKey", 1)


@lru_cache(maxsize=1)
def schema_change_value_schema() -> Schema:
    """`io.debezium.connector.mysql.SchemaChangeValue` with the `tableChanges` item schema of Debezium 3.x."""
    column = struct([
        field("name", schema("string")),
        field("jdbcType", schema("int32")),
        field("nativeType", schema("int32", True)),
        field("typeName", schema("string")),
        field("typeExpression", schema("string", True)),
        field("charsetName", schema("string", True)),
        field("length", schema("int32", True)),
        field("scale", schema("int32", True)),
        field("position", schema("int32")),
        field("optional", schema("boolean", True)),
        field("autoIncremented", schema("boolean", True)),
        field("generated", schema("boolean", True)),
        field("comment", schema("string", True)),
        field("defaultValueExpression", schema("string", True)),
        field("enumValues", array(schema("string"), True)),
    ], False, "io.debezium.connector.schema.Column", 1)
    table = struct([
        field("defaultCharsetName", schema("string", True)),
        field("primaryKeyColumnNames", array(schema("string"), True)),
        field("columns", array(column)),
        field("comment", schema("string", True)),
    ], True, "io.debezium.connector.schema.Table", 1)
    change = struct([field("type", schema("string")), field("id", schema("string")), field("table", table)],
                    False, "io.debezium.connector.schema.Change", 1)
    return struct([
        field("source", source_schema()),
        field("ts_ms", schema("int64")),
        field("databaseName", schema("string", True)),
        field("schemaName", schema("string", True)),
        field("ddl", schema("string", True)),
        field("tableChanges", array(change)),
    ], False, "io.debezium.connector.mysql.SchemaChangeValue", 1)

"""The Debezium formats: `debezium`, `debezium_flatten` and `debezium_smt` (docs/formats/README.md, "Debezium").

- `config`: the `format_options` and their validation.
- `kinds`: how Debezium represents each column (the kind both schemas and values are chosen by).
- `connect_schema`: Kafka Connect schemas per column type and per table, as JsonConverter schema dicts.
- `values`: column values as Debezium renders them (Connect values and JSON values).
- `envelope`: the change events (key struct, `{before, after, source, transaction, op, ts_ms, ...}`), tombstones
  and schema-change events; `connect_records()` gives them with their schemas (used by the Avro format).
- `schema_changes`: which schema-change events a DDL statement gives; `table_changes`: their `tableChanges`
  items (a table's whole structure, as Debezium's MySQL DDL parser describes it).
- `json_format`, `flatten`, `smt`: the three encoders, registered by importing them here (the registry imports
  every module and package under `formats/`).
"""

from obsync.formats.debezium import flatten, json_format, smt  # noqa: F401 - imported to register the formats

"""OMS's DefaultExtendColumnType (`DEFAULT_WITH_SCHEMA`): the Default format plus column types
(docs/formats/README.md, "DefaultExtendColumnType").

Every message is the Default format's (`obsync.formats.default`), byte for byte, except that a `postStruct` holding a
row (INSERT, UPDATE, and ROW for full sync) ends with one more member:

    "__light_type": {"<column>": {"schemaType": "DECIMAL", "columnType": "decimal(12,2)"}, ...}

for every column of the table, in column order: `schemaType` is the declared type's name in upper case
(`VARCHAR`, `INT`, `TIMESTAMP`; signedness is in `columnType`), `columnType` the full declaration as the
source prints it (`int(10) unsigned`, `enum('a','b')`). Messages without a row in `postStruct` (DELETE, DDL,
HEARTBEAT) are the Default format's unchanged. (A table column named `__light_type` would precede the
member of the same name; JSON readers keep the last one.)
Options are the Default format's: `source_identity`, `tenant`.
"""

from __future__ import annotations

from typing import Any

from orjson import dumps

from obsync.core.changes import Change
from obsync.core.schema import TableSchema
from obsync.formats.base import Encoder, EncoderContext, TableCache, reject_unknown_options
from obsync.formats.default import DefaultDecoder, DefaultEncoder
from obsync.formats.registry import register, register_decoder
from obsync.formats.values import TableRenderer, table_renderer

LIGHT_TYPE = "__light_type"
_AFTER_POST = b',"allMetaData":'


def light_types(tr: TableRenderer) -> dict[str, dict[str, str]]:
    """Column -> {"schemaType", "columnType"} for every column of the table."""
    return {c.name: {"schemaType": c.data_type.upper(), "columnType": c.column_type} for c in tr.schema.columns}


class DefaultExtendColumnTypeEncoder(DefaultEncoder):
    """The Default encoder whose row messages carry `postStruct.__light_type` (see the module docstring).

    The types are spliced into the Default message's bytes, which is stateless (one encoder may serve several
    worker threads) and costs no second encoding: in a Default message `postStruct` is always followed by
    `,"allMetaData":`, which cannot occur inside a JSON string (its quotes would be escaped), and the last
    occurrence is the top-level one (a column may be named `allMetaData`).
    """

    name = "default_extend_column_type"

    def __init__(self, task_name: str, **options: Any) -> None:
        super().__init__(task_name, **options)
        self._types: TableCache[bytes] = TableCache(self._light_types_member)

    def _row(self, change: Change, tr: TableRenderer, record_type: str, before: dict[str, Any] | None,
             after: dict[str, Any] | None) -> tuple[bytes | None, bytes]:
        key, value = super()._row(change, tr, record_type, before, after)
        if after is None:
            return key, value
        types = self._types.get(tr.schema)
        end = value.rindex(_AFTER_POST) - 1  # the closing brace of postStruct
        sep = b"" if value[end - 1 : end] == b"{" else b","
        return key, value[:end] + sep + types + value[end:]

    @staticmethod
    def _light_types_member(schema: TableSchema) -> bytes:
        """`"__light_type":{...}` of a table, serialized once."""
        return b'"' + LIGHT_TYPE.encode() + b'":' + dumps(light_types(table_renderer(schema)))


@register("default_extend_column_type")
def _build(ctx: EncoderContext, **options: Any) -> DefaultExtendColumnTypeEncoder:
    """`format_options`: the Default format's, `source_identity` and `tenant`."""
    reject_unknown_options("default_extend_column_type", options, ("source_identity", "tenant"))
    return DefaultExtendColumnTypeEncoder(ctx.task_name, db_type=ctx.db_type, **options)


@register_decoder("default_extend_column_type")
def _decoder(encoder: Encoder) -> DefaultDecoder:
    """The Default decoder, without `postStruct.__light_type` in the after image."""
    return DefaultDecoder(encoder, drop=LIGHT_TYPE)

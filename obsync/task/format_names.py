"""The message formats a task file may name (`format:`): the one list of format names.

A task file is validated before any format is loaded, and the task sits below the formats in the layers, so the
names live here, where the task file's model reads them; each format registers its encoder under one of them
(`obsync.formats.registry.register` refuses any other name), and a test checks that every name has an encoder.
"""

from __future__ import annotations

from typing import Literal, get_args

FormatName = Literal[
    "default",
    "default_extend_column_type",
    "canal",
    "dataworks",
    "shareplex",
    "debezium",
    "debezium_flatten",
    "debezium_smt",
    "avro",
]
FORMAT_NAMES: tuple[str, ...] = get_args(FormatName)

"""Print the README's "Message formats" examples: one insert, update and delete per format, as encoded.

    python docs/format_examples.py > /tmp/examples.md

The clock is fixed so processing-time fields are stable; everything else is exactly what the encoders write.
tests/unit/test_readme_examples.py checks that README.md holds this output.
"""

from __future__ import annotations

import io
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

FIXED = 1714550400.25
time.time = lambda: FIXED  # before the encoders bind their default clocks
time.time_ns = lambda: int(FIXED * 1e9)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastavro import schemaless_reader  # noqa: E402 - after pinning the clock

from obsync.core.changes import Change, Op  # noqa: E402 - after pinning the clock
from obsync.core.positions import LogPosition  # noqa: E402 - after pinning the clock
from obsync.core.schema import Column, TableSchema  # noqa: E402 - after pinning the clock
from obsync.formats.base import EncoderContext  # noqa: E402 - after pinning the clock
from obsync.formats.registry import encoder_for  # noqa: E402 - after pinning the clock
from obsync.task.format_names import FORMAT_NAMES  # noqa: E402 - after pinning the clock

ORDERS = TableSchema("shop", "orders", (
    Column("id", "bigint", "bigint(20)", nullable=False),
    Column("customer", "varchar", "varchar(64)", charset="utf8mb4", precision=64),
    Column("amount", "decimal", "decimal(12,2)", precision=12, scale=2),
), primary_key=("id",))
GTID = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1842"
ROW = {"id": 1001, "customer": "Zoë", "amount": Decimal("49.90")}
ROW2 = {**ROW, "amount": Decimal("44.91")}
CHANGES = [
    ("Insert", "INSERT INTO shop.orders VALUES (1001, 'Zoë', 49.90)",
     Change(Op.INSERT, ORDERS, LogPosition("mysql-bin.000017", 48213, 0), after=ROW, commit_time=1714550395,
            txn=GTID, server_id=1)),
    ("Update", "UPDATE shop.orders SET amount = 44.91 WHERE id = 1001",
     Change(Op.UPDATE, ORDERS, LogPosition("mysql-bin.000017", 48544, 0), before=ROW, after=ROW2,
            commit_time=1714550398, txn=GTID.replace("1842", "1843"), server_id=1)),
    ("Delete", "DELETE FROM shop.orders WHERE id = 1001",
     Change(Op.DELETE, ORDERS, LogPosition("mysql-bin.000017", 48871, 0), before=ROW2, commit_time=1714550401,
            txn=GTID.replace("1842", "1844"), server_id=1)),
]
TOPIC = "Topic_shop_orders"
FORMATS = FORMAT_NAMES  # every format, in the order the task file's reference lists them


SCHEMAS: dict[bytes, dict] = {}  # avro registry-less mode: fingerprint -> schema, from the schema topic


def _show(value: bytes | None, fmt: str) -> str:
    if value is None:
        return "null (tombstone)"
    if fmt == "avro":
        return _avro(value)
    doc = json.loads(value)
    if fmt == "debezium" and isinstance(doc, dict) and "schema" in doc:
        return json.dumps({"schema": "… (the Connect schema; see docs/formats/debezium.md)",
                           "payload": doc["payload"]}, ensure_ascii=False, separators=(",", ":"))
    return value.decode()


def _avro(value: bytes) -> str:
    """Single-object encoding (registry-less mode): the 10-byte header, then the record decoded with the schema
    the encoder wrote to the schema topic under that fingerprint."""
    record = schemaless_reader(io.BytesIO(value[10:]), SCHEMAS[value[2:10]])
    text = json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":"))
    return f"bytes {value[:10].hex()} + Avro binary of {text}"


def main() -> None:
    ctx = EncoderContext("shop-to-kafka", "OB_MYSQL")
    out = []
    for fmt in FORMATS:
        encoder = encoder_for(fmt, ctx, {})
        out.append(f"#### `{fmt}`\n")
        for title, sql, change in CHANGES:
            recs = []
            for r in encoder.encode(change, TOPIC):
                if r.topic == TOPIC:
                    recs.append(r)
                else:  # avro's schema topic: key = fingerprint in hex, value = the schema
                    SCHEMAS[bytes.fromhex(r.key.decode())] = json.loads(r.value)
            out.append(f"{title} (`{sql}`):\n")
            out.append("```")
            for r in recs:
                key = "null" if r.key is None else (r.key.hex() if fmt == "avro" else r.key.decode())
                out.append(f"key:   {key}")
                out.append(f"value: {_show(r.value, fmt)}")
            out.append("```\n")
    print("\n".join(out).rstrip())


if __name__ == "__main__":
    main()

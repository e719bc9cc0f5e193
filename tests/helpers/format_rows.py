"""The table and rows the format tests share: one `shop.orders` row before and after an update."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema

UTC = dt.UTC
GTID = "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"
POS = LogPosition("mysql-bin.000042", 1234567)
ORDERS = TableSchema(
    "shop",
    "orders",
    (
        Column("id", "bigint", "bigint(20)", nullable=False),
        Column("name", "varchar", "varchar(32)", charset="utf8mb4", precision=32),
        Column("amount", "decimal", "decimal(12,2)", precision=12, scale=2),
        Column("paid_at", "timestamp", "timestamp(3)", fsp=3),
    ),
    primary_key=("id",),
)
ROW1 = {"id": 42, "name": "咖啡 ☕", "amount": Decimal("12.50"),
        "paid_at": dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)}
ROW2 = {**ROW1, "amount": Decimal("13.00"), "paid_at": None}

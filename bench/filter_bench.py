"""Row-filter cost per change: `python -m bench.filter_bench` prints microseconds per row for typical clauses
(`obsync.sql.filters` compiled to closures; nothing delegated to the source here)."""

from __future__ import annotations

import timeit
from decimal import Decimal

from obsync.core.schema import Column, TableSchema
from obsync.sql.filters import compile_filter

SCHEMA = TableSchema("shop", "orders", (
    Column("id", "int", "int"),
    Column("amount", "decimal", "decimal(10,2)", precision=10, scale=2),
    Column("status", "varchar", "varchar(10)", charset="utf8mb4", collation="utf8mb4_general_ci"),
    Column("created", "datetime", "datetime"),
), ("id",))
CLAUSES = [
    "amount >= 10",
    "status = 'active' AND amount BETWEEN 5 AND 100",
    "status IN ('a', 'b') OR amount IS NULL",
    "status LIKE 'act%'",
    "created >= '2024-01-01' AND NOT (amount * 2 > 500)",
]


def main(rows: int = 200_000) -> None:
    import datetime as dt

    row = {"id": 1, "amount": Decimal("12.50"), "status": "active", "created": dt.datetime(2024, 5, 1, 12)}
    for clause in CLAUSES:
        rf = compile_filter(clause, SCHEMA, origin="bench")
        seconds = timeit.timeit(lambda rf=rf: rf.matches(row), number=rows)
        print(f"{seconds / rows * 1e6:6.2f} us/row  {clause}")


if __name__ == "__main__":
    main()

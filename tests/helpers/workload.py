"""A keyed `orders` table, a writer that changes it concurrently, and the checks that its topic replays to it.

Used by the crash, stop and state-directory fault tests: the topic (Default format, hash rule) replayed per key
must equal the table, every key in its hash partition, no position written twice, positions rising per key.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator

from obsync.connectors.kafka.partitioner import partition_for
from obsync.core.positions import position_from_header

TABLE = """CREATE TABLE {t} (
  id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4 NOT NULL, qty INT NOT NULL,
  price DECIMAL(12,2) NULL, note TEXT NULL)"""


def source_rows(conn, table: str) -> dict[str, dict[str, str | None]]:
    """The table as the Default format renders it: key JSON -> column -> string."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, name, qty, price, note FROM {table}")
        return {json.dumps([i]): {"id": str(i), "name": n, "qty": str(q),
                                       "price": None if p is None else str(p), "note": note}
                for i, n, q, p, note in cur.fetchall()}


def replay(messages) -> dict[str, dict]:
    """Apply the Default-format stream per key, in partition order."""
    state: dict[str, dict] = {}
    for m in messages:
        v = json.loads(m.value)
        if v["recordType"] in ("ROW", "INSERT", "UPDATE"):
            state[m.key.decode()] = v["postStruct"]
        elif v["recordType"] == "DELETE":
            state.pop(m.key.decode(), None)
    return state


def check_stream(messages, partitions: int) -> None:
    """Keys in their hash partition; positions unique and increasing per key."""
    seen = set()
    last_by_key: dict[bytes, tuple] = {}
    for m in messages:
        assert m.partition == partition_for(m.key, partitions), f"key {m.key!r} in wrong partition"
        pos = position_from_header(m.headers["obsync.pos"])
        ident = (m.headers["obsync.pos"], m.headers["obsync.seq"])
        assert ident not in seen, f"duplicate position {ident}"
        seen.add(ident)
        key = (pos.sort_key, int(m.headers["obsync.seq"]))
        if m.key in last_by_key:
            assert key > last_by_key[m.key], f"key {m.key!r} out of order at {pos}"
        last_by_key[m.key] = key


def write_concurrently(conn, db: str, stop: threading.Event, seed: int, ids: Iterator[int] | None = None,
                       pause: float = 0.01) -> None:
    """Inserts (transactions of 1-30 rows), updates of 1/97 of the rows, deletes and key changes of `db.orders`,
    `pause` seconds apart, until `stop`; new rows take their ids from `ids` (default: from 1,000,000 on)."""
    rnd = random.Random(seed)
    ids = itertools.count(1_000_000) if ids is None else ids
    with conn.cursor() as cur:
        while not stop.is_set():
            r = rnd.random()
            if r < 0.4:
                cur.execute("BEGIN")
                for _ in range(rnd.randint(1, 30)):
                    cur.execute(f"INSERT INTO {db}.orders VALUES (%s, 'w', 0, 1.50, NULL)", (next(ids),))
                cur.execute("COMMIT")
            elif r < 0.8:
                cur.execute(f"UPDATE {db}.orders SET qty = qty + 1, note = %s WHERE id %% 97 = %s",
                            (str(rnd.random()), rnd.randrange(97)))
            elif r < 0.9:
                cur.execute(f"DELETE FROM {db}.orders WHERE id %% 89 = %s LIMIT 5", (rnd.randrange(89),))
            else:
                old = rnd.randrange(1, 20_000)
                cur.execute(f"UPDATE IGNORE {db}.orders SET id = id + 500000 WHERE id = %s", (old,))
            time.sleep(pause)

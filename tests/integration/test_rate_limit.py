"""`limits.full` / `limits.incremental` against the real servers: every 10-second window of what lands in
Kafka (by the messages' CreateTime, set by the producer when obsync hands a row to Kafka) stays within 10%
of the cap, under a load that would otherwise go much faster (unlimited, these syncs take a second or two).
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task

WINDOW_MS = 10_000
TOLERANCE = 1.10


def timestamped(bootstrap: str, topic: str, timeout: float = 60) -> list[tuple[int, dict]]:
    """(CreateTime in ms, decoded value) of every message of `topic`, by time."""
    return sorted(((m.timestamp, json.loads(m.value)) for m in read_topic(bootstrap, topic, timeout)),
                  key=lambda x: x[0])


def max_window(events: list[tuple[int, float]]) -> float:
    """The largest total of (ms, amount) events within any 10-second window [t, t + 10 s)."""
    times = [t for t, _ in events]
    cum = [0.0]
    for _, a in events:
        cum.append(cum[-1] + a)
    return max(cum[bisect_right(times, t + WINDOW_MS - 1)] - cum[i] for i, t in enumerate(times))


def insert_rows(conn, table: str, n: int, payload: int = 8) -> None:
    with conn.cursor() as cur:
        for lo in range(0, n, 2000):
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                            [(i, "x" * payload) for i in range(lo + 1, min(n, lo + 2000) + 1)])


def make_table(mariadb, payload: int = 8):
    db = unique("rl")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR({payload}) NOT NULL)")
    return db, conn


def report(name: str, events: list[tuple[int, float]], cap: float, took: float, unit: str) -> float:
    worst = max_window(events)
    span = (events[-1][0] - events[0][0]) / 1000
    print(f"\n{name}: {sum(a for _, a in events):.0f} {unit} in {span:.1f} s of Kafka timestamps "
          f"(obsync run {took:.1f} s); cap {cap:.0f} {unit}/s; busiest 10 s window {worst:.0f} {unit} = "
          f"{worst / (cap * 10):.3f} x the cap")
    return worst


def test_full_sync_rps(tmp_path, mariadb, kafka):
    db, conn = make_table(mariadb)
    insert_rows(conn, f"{db}.t", 30_000)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                      sync={"full": True, "incremental": False},
                      snapshot={"chunk_size": 10_000, "batch_size": 2000},
                      limits={"full": {"rps": 2000}})
    t0 = time.monotonic()
    run_obsync("run", str(task), "--until-caught-up", timeout=120)
    took = time.monotonic() - t0
    msgs = timestamped(kafka.bootstrap_servers, f"Topic_{db}_t")
    assert len(msgs) == 30_000 and {m["recordType"] for _, m in msgs} == {"ROW"}
    events = [(ts, 1) for ts, _ in msgs]
    worst = report("full sync, rps 2000", events, 2000, took, "rows")
    assert worst <= 2000 * 10 * TOLERANCE
    assert (events[-1][0] - events[0][0]) / 1000 >= (30_000 - 2000) / 2000 * 0.95  # took as long as it must
    conn.close()


def test_incremental_rps(tmp_path, mariadb, kafka):
    db, conn = make_table(mariadb)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                      limits={"incremental": {"rps": 2000}})
    run_obsync("run", str(task), "--until-caught-up", timeout=120)  # empty table: fixes the log position
    insert_rows(conn, f"{db}.t", 24_000)  # in a second or two, in the binlog before the next run
    t0 = time.monotonic()
    run_obsync("run", str(task), "--until-caught-up", timeout=120)
    took = time.monotonic() - t0
    msgs = timestamped(kafka.bootstrap_servers, f"Topic_{db}_t")
    assert len(msgs) == 24_000 and {m["recordType"] for _, m in msgs} == {"INSERT"}
    events = [(ts, 1) for ts, _ in msgs]
    worst = report("incremental sync, rps 2000", events, 2000, took, "rows")
    assert worst <= 2000 * 10 * TOLERANCE
    assert (events[-1][0] - events[0][0]) / 1000 >= (24_000 - 2000) / 2000 * 0.95
    conn.close()


def test_full_sync_bps(tmp_path, mariadb, kafka):
    payload = 1992  # a row counts 8 (INT) + 1992 (ASCII text) = 2000 bytes
    db, conn = make_table(mariadb, payload)
    insert_rows(conn, f"{db}.t", 5500, payload)
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t"],
                      sync={"full": True, "incremental": False},
                      limits={"full": {"bps": "1MB"}})
    t0 = time.monotonic()
    run_obsync("run", str(task), "--until-caught-up", timeout=120)
    took = time.monotonic() - t0
    msgs = timestamped(kafka.bootstrap_servers, f"Topic_{db}_t")
    assert len(msgs) == 5500
    events = [(ts, 8 + len(m["postStruct"]["v"])) for ts, m in msgs]
    worst = report("full sync, bps 1MB", events, 1_000_000, took, "bytes")
    assert worst <= 1_000_000 * 10 * TOLERANCE
    assert (events[-1][0] - events[0][0]) / 1000 >= (11_000_000 - 1_000_000) / 1_000_000 * 0.95
    conn.close()

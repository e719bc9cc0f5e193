"""Reading a task's schema-history topic and the source's binlog position in tests."""

from __future__ import annotations

import json
import time
from typing import Any

from obsync.core.positions import LogPosition
from tests.helpers.kafka import Msg, read_partition


def binlog_position(cur: Any) -> LogPosition:
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    return LogPosition(row[0], int(row[1]))


def history(kafka: Any, topic: str) -> list[Msg]:
    return read_partition(kafka.bootstrap_servers, topic, 0)


def wait_for_records(kafka: Any, topic: str, n: int, timeout: float = 90) -> None:
    """Until the topic holds `n` records that are not start records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in history(kafka, topic) if not json.loads(m.value)["position"].get("snapshot")]
        if len(got) >= n:
            return
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} schema-change records in {topic} after {timeout} s")

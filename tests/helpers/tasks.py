"""Writing task files and running `obsync` as a user would: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_task(path: Path, *, db_server: Any, kafka: Any, tables: list[str], name: str | None = None,
               **over: Any) -> Path:
    """A task file for `tables` ("db.table") on the test servers; `over` replaces top-level keys."""
    task: dict[str, Any] = {
        "name": name or unique("task"),
        "source": {"host": db_server.host, "port": db_server.port, "user": db_server.user,
                   "password": db_server.password, "server_id": 7000 + (os.getpid() % 1000)},
        "target": {"bootstrap_servers": kafka.bootstrap_servers},
        "sync": {"full": True, "incremental": True},
        "objects": [{"match": t} for t in tables],
        "topics": {"partitions": 3, "replication_factor": 1},
        "format": "default",
        "partitioning": "hash",
        "state_dir": str(path.parent / "state"),
        "epoch_seconds": 0.5,
    }
    task.update(over)
    path.write_text(yaml.safe_dump(task))
    return path


def obsync_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "obsync", *args]


def run_obsync(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the obsync CLI to completion, returning its output; fails the test with the log on error."""
    proc = subprocess.run(obsync_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[2])
    if check and proc.returncode != 0:
        raise AssertionError(f"obsync {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-5000:]}")
    return proc

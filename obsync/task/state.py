"""A task's state directory: everything a restart needs, in one place.

    <state_dir>/
      task.json            identity of the task instance (its id tags every Kafka message it writes)
      start.json           where the task starts: log position and snapshot plan, fixed on first start
                           (`obsync.task.start_point.StartPoint`, read and written only here)
      recovery/            Bytewax recovery partitions (source and sink snapshots)
      schema_history/      the binlog reader's schema history
      delivered/<part>     one file per Kafka partition once every snapshot row has reached it

This is the layout of a task run by one process. The processes of a cluster have a directory each and keep
what they share in the task's Kafka control topic instead (`obsync.runtime.cluster`: `ClusterState` overrides
the identity, start point and delivered marks here); each directory then holds its process's part of the
recovery store (`obsync.runtime.recovery`), task.json, status and locks.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from obsync.core.errors import StateError
from obsync.core.offsets import FRESH_STATE_HINT
from obsync.task.start_point import START_FILE, StartPoint

MIN_FREE_BYTES = 16 * 1024 * 1024  # free space the recovery store needs to write its next snapshots safely
_CHOOSE = "choose a writable directory with free space (state_dir in the task file, or --state-dir)"


def _cause(e: OSError) -> str:
    name = errno.errorcode.get(e.errno or 0)
    return f"{e.strerror or e}" + (f" ({name})" if name else "")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class TaskState:
    """Paths and small records of one task's state directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def recovery_dir(self) -> Path:
        return self.root / "recovery"

    @property
    def schema_history_dir(self) -> Path:
        return self.root / "schema_history"

    @property
    def delivered_dir(self) -> Path:
        return self.root / "delivered"

    def exists(self) -> bool:
        return (self.root / "task.json").exists()

    def make(self) -> None:
        """Create the directory; `StateError` naming it and the cause when it cannot be (a file is in the
        way, a parent is missing or read-only, /proc...)."""
        if self.root.exists() and not self.root.is_dir():
            raise StateError(f"state directory {self.root} is not a directory (a file of that name is in the way); "
                             f"{_CHOOSE}, or move the file")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StateError(f"cannot create state directory {self.root}: {_cause(e)}; {_CHOOSE}") from None

    def check_usable(self, min_free: int = MIN_FREE_BYTES) -> None:
        """The directory exists (made if needed), takes a write and has `min_free` bytes free, or `StateError`
        naming it and the cause. Checked before a run and every second while it runs (`obsync.app.stopping`)."""
        self.make()
        probe = self.root / f".probe.{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
            st = os.statvfs(self.root)
        except OSError as e:
            raise StateError(f"state directory {self.root} cannot be written: {_cause(e)}; make it writable "
                             f"(the next start resumes from the last saved point), or {_CHOOSE}") from None
        free = st.f_bavail * st.f_frsize
        if free < min_free:
            raise StateError(f"state directory {self.root}: its filesystem has {free / 2**20:.1f} MiB free, less "
                             f"than the {min_free / 2**20:.0f} MiB the recovery store needs; free some space (the "
                             "next start resumes from the last saved point)")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock across the processes of a task while the start point is fixed."""
        self.make()
        with open(self.root / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextmanager
    def running(self, pid: int | None = None) -> Iterator[None]:
        """Held while `obsync run` runs the task: a second run on the same state is refused, not raced. The lock
        names `pid` (default this process): the process to signal to stop the task."""
        self.make()
        with open(self.root / ".run.lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                raise StateError(f"the task is already running (process {f.read().strip() or '?'}) on state "
                                 f"directory {self.root}; stop it first") from None
            f.seek(0)
            f.truncate()
            f.write(str(pid or os.getpid()))
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def identity(self, task_name: str) -> dict[str, Any]:
        """The task instance's identity, created on first use."""
        path = self.root / "task.json"
        if path.exists():
            ident = json.loads(path.read_text())
            if ident.get("name") != task_name:
                raise StateError(
                    f"state directory {self.root} belongs to task {ident.get('name')!r}, not {task_name!r}; "
                    "choose another state directory")
            return ident
        self.make()
        ident = {"name": task_name, "id": uuid.uuid4().hex, "created": time.time()}
        write_json_atomic(path, ident)
        return ident

    def load_start(self) -> StartPoint | None:
        """The task's start point, None before it was fixed; `StateError` when it cannot be used."""
        path = self.root / START_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            raise StateError(f"{path} is damaged (not JSON: {e}); {FRESH_STATE_HINT}") from None
        return StartPoint.from_dict(data, path)

    def save_start(self, start: StartPoint) -> None:
        write_json_atomic(self.root / START_FILE, start.to_dict())

    def mark_delivered(self, part: str) -> None:
        """Record that every snapshot row for Kafka partition `part` is in Kafka."""
        self.delivered_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.delivered_dir / part, {"at": time.time()})

    def all_delivered(self, parts: list[str]) -> bool:
        d = self.delivered_dir
        return all((d / p).exists() for p in parts)

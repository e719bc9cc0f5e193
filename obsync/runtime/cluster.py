"""A task run by several Bytewax processes, each with a state directory of its own (no shared disk).

    process 0 ──┐                          ┌── obsync.control.<task>  (Kafka, 1 partition, compacted)
    process 1 ──┼── each: <state_dir>/     │     identity            the task instance's id (tags every message)
    ...         │     recovery/part-K      │     start               the start point (log position, snapshot plan)
    process N-1─┘     status.json, locks   │     delivered/<lane>    a lane wrote every snapshot row
                                           │     schema/<digest>     one binlog schema history entry each
                                           └     recovery, recovery/<K>   the recovery store's layout (`recovery`)

What every process must see is in the task's control topic (`obsync.connectors.kafka.control`), never in a
file: process 0 fixes the task's identity and start point there (the others wait until it has, and until it
records their task file's table selection); the sink lane that finishes its share of the full sync records
it there, and the process that reads the log asks there before the log starts; the binlog schema history,
written by whichever process reads the log, is kept there, so a log partition Bytewax moves to another
process after a restart knows the schema at its position. Each process keeps only its own part of Bytewax's
recovery store (`obsync.runtime.recovery`) and its status in its state directory.

A run is a cluster when it has 2 or more processes (`-a`/`--addresses`, `BYTEWAX_ADDRESSES`,
`OBSYNC_PROCESSES`; `obsync run --processes N`); one process keeps all of its state in its directory, as
always.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsync.connectors.kafka.client import KafkaSettings
from obsync.connectors.kafka.control import ControlTopic, control_topic_name
from obsync.core.errors import StateError
from obsync.task.start_point import START_FILE, SelectionRules, StartPoint
from obsync.task.state import TaskState, write_json_atomic

log = logging.getLogger(__name__)

WAIT_FOR_LEADER = 600.0  # s a process waits for process 0 to publish the task's identity and start point
_POLL = 0.5


@dataclass(frozen=True)
class ClusterSpec:
    """This process's place in a Bytewax cluster: its index and every process's address."""

    process: int
    addresses: tuple[str, ...]

    @property
    def processes(self) -> int:
        return len(self.addresses)

    @property
    def leader(self) -> bool:
        return self.process == 0


def cluster_spec(process_id: int | None, addresses: str | Sequence[str] | None) -> ClusterSpec | None:
    """The cluster of `-i`/`-a` (None for a single process); errors name the option."""
    if process_id is None and not addresses:
        return None
    if isinstance(addresses, str):
        addresses = [a.strip() for a in addresses.split(";") if a.strip()]
    if not addresses:
        raise StateError("a process id (-i/--process-id) was given without the processes' addresses "
                         "(-a/--addresses \"host0:port;host1:port;...\")")
    if process_id is None:
        raise StateError("the processes' addresses (-a/--addresses) were given without this process's id "
                         "(-i/--process-id, 0 to N-1)")
    if not 0 <= process_id < len(addresses):
        raise StateError(f"process id {process_id} (-i) is not one of the {len(addresses)} processes of "
                         f"-a/--addresses ({'; '.join(addresses)}): give 0 to {len(addresses) - 1}")
    if len(addresses) == 1:
        return None
    return ClusterSpec(process_id, tuple(addresses))


def bytewax_run_spec(argv: Sequence[str], env: dict[str, str] | os._Environ[str]) -> ClusterSpec | None:
    """The cluster of `python -m bytewax.run ... -i K -a "..."` (or `BYTEWAX_PROCESS_ID`/`BYTEWAX_ADDRESSES`,
    `BYTEWAX_POD_NAME` in a StatefulSet, `BYTEWAX_HOSTFILE_PATH`), as Bytewax reads them."""
    pid: str | None = env.get("BYTEWAX_PROCESS_ID")
    addrs: str | None = env.get("BYTEWAX_ADDRESSES")
    for i, a in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if a in ("-i", "--process-id") and nxt is not None:
            pid = nxt
        elif a.startswith("--process-id="):
            pid = a.split("=", 1)[1]
        elif a in ("-a", "--addresses") and nxt is not None:
            addrs = nxt
        elif a.startswith("--addresses="):
            addrs = a.split("=", 1)[1]
    if pid is None and env.get("BYTEWAX_POD_NAME") and env.get("BYTEWAX_STATEFULSET_NAME"):
        pid = env["BYTEWAX_POD_NAME"].replace(env["BYTEWAX_STATEFULSET_NAME"] + "-", "")
    if pid is not None and addrs is None and env.get("BYTEWAX_HOSTFILE_PATH"):
        with open(env["BYTEWAX_HOSTFILE_PATH"]) as f:
            addrs = ";".join(line.strip() for line in f if line.strip())
    try:
        return cluster_spec(None if pid is None else int(pid), addrs)
    except ValueError:
        raise StateError(f"process id {pid!r} (-i/BYTEWAX_PROCESS_ID) is not a number") from None


class ControlHistoryStore:
    """The binlog schema history's lines in the control topic (`schema/<digest of the line>`: every entry is
    kept, in the order written; the same line written twice is one entry)."""

    PREFIX = "schema/"

    def __init__(self, control: ControlTopic, prefix: str = PREFIX) -> None:
        self.control = control
        self.prefix = prefix

    def lines(self) -> list[str]:
        self.control.refresh()
        return [v["line"] for _, v in self.control.items(self.prefix)]

    def append(self, line: str) -> None:
        digest = hashlib.sha256(line.encode()).hexdigest()[:32]
        self.control.write({f"{self.prefix}{digest}": {"line": line}})

    def sibling(self, name: str) -> ControlHistoryStore:
        """Another store of lines in the same control topic, records `<name>/...` (the `ignore` policy's shapes)."""
        return ControlHistoryStore(self.control, f"{name}/")

    def __str__(self) -> str:
        return f"in control topic {self.control.topic}"


class ClusterState(TaskState):
    """A task's state for one process of a cluster: its own directory (recovery store, status, locks) plus
    what all processes share, in the control topic (see the module docstring)."""

    def __init__(self, root: Path, spec: ClusterSpec, control: ControlTopic,
                 wait: float = WAIT_FOR_LEADER) -> None:
        super().__init__(root)
        self.spec = spec
        self.control = control
        self.wait = wait
        self.history = ControlHistoryStore(control)

    @property
    def where(self) -> str:
        return f"control topic {self.control.topic}"

    def identity(self, task_name: str) -> dict[str, Any]:
        """The task instance's identity: process 0 creates it in the control topic when the topic has none (a
        new task, or one whose control topic was deleted: it starts over, as a single process does with a new
        state directory); the others take it from there. Kept in each directory's task.json too (for
        `obsync status`)."""
        path = self.root / "task.json"
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("name") != task_name:
                raise StateError(f"state directory {self.root} belongs to task {old.get('name')!r}, not "
                                 f"{task_name!r}; choose another state directory")
        ident = self.control.refresh().get("identity")
        if ident is None and self.spec.leader:
            if (self.root / START_FILE).exists():
                raise StateError(
                    f"state directory {self.root} holds the state of a single-process run of task {task_name} "
                    f"({START_FILE}), which a cluster cannot take over: its processes keep what they share in "
                    f"{self.where}. Give every process of the cluster a new, empty state directory (the task "
                    "then starts over: full sync again with sync.full), or run it as one process")
            ident = {"name": task_name, "id": uuid.uuid4().hex, "created": time.time()}
            self.control.write({"identity": ident})
        if ident is None:
            ident = self.wait_for("identity", lambda v: v is not None, "the task's identity")
        if ident.get("name") != task_name:
            raise StateError(f"{self.where} belongs to task {ident.get('name')!r}, not {task_name!r}")
        if not path.exists() or json.loads(path.read_text()).get("id") != ident["id"]:
            self.make()
            write_json_atomic(path, ident)
        return dict(ident)

    def load_start(self) -> StartPoint | None:
        data = self.control.refresh().get("start")
        return None if data is None else StartPoint.from_dict(data, f"{self.where} (record 'start')")

    def save_start(self, start: StartPoint) -> None:
        if not self.spec.leader:
            raise StateError(f"process {self.spec.process} cannot change the task's start point; process 0 fixes "
                             "it (restart all processes with the same task file)")
        self.control.write({"start": start.to_dict()})

    def wait_for_start(self, rules: SelectionRules) -> StartPoint:
        """(Processes other than 0.) The start point once process 0 has fixed it for `rules` (the table
        selection of this process's task file)."""
        data = self.wait_for("start", lambda v: v is not None and StartPoint.from_dict(v).rules == rules,
                              f"the start point for the selection {rules}")
        return StartPoint.from_dict(data, f"{self.where} (record 'start')")

    def mark_delivered(self, part: str) -> None:
        """Record that lane `part` wrote every snapshot row, unless the control topic (as this process last read
        it) says so already: the sink marks every such lane again at each start, and a process's first write
        waits about 0.5 s for its new idempotent producer's id (librdkafka asks for one again half a second
        after its first try, made before any broker is connected), which held up each restart of a cluster."""
        key = f"delivered/{part}"
        if self.control.get(key) is None:
            self.control.write({key: {"at": time.time(), "process": self.spec.process}})

    def all_delivered(self, parts: list[str]) -> bool:
        records = self.control.refresh()
        return all(f"delivered/{p}" in records for p in parts)

    def wait_for(self, key: str, ready: Callable[[Any], bool], what: str) -> Any:
        """The value of `key` once `ready(value)`, waiting for process 0 to write it (at most `wait` s)."""
        deadline = time.monotonic() + self.wait
        said = 0.0
        while True:
            value = self.control.refresh().get(key)
            if ready(value):
                return value
            now = time.monotonic()
            if now > deadline:
                raise StateError(
                    f"process {self.spec.process}: process 0 has not published {what} in {self.where} within "
                    f"{self.wait:.0f} s. Start process 0 (-i 0) with the same task file; every process must run "
                    "the same task file")
            if now - said >= 10:
                log.info("process %d: waiting for process 0 to publish %s in %s", self.spec.process, what,
                         self.where)
                said = now
            time.sleep(_POLL)


def cluster_state(root: Path, spec: ClusterSpec, settings: KafkaSettings, task_name: str,
                  replication_factor: int) -> ClusterState:
    """The state of process `spec.process`, its control topic created if missing."""
    control = ControlTopic(settings, control_topic_name(task_name), replication_factor=replication_factor)
    control.ensure()
    return ClusterState(root, spec, control)


def history_store(state: TaskState) -> Any:
    """Where the binlog schema history of `state` is kept: the control topic in a cluster, else its directory."""
    return state.history if isinstance(state, ClusterState) else state.schema_history_dir

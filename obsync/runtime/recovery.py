"""Where Bytewax's recovery store lives, for one process or for each process of a cluster.

Bytewax 0.21 (src/recovery.rs, src/timely.rs) keeps its recovery store as N sqlite *partitions*
(`part-<i>.sqlite3`, each recording its index i and the count N). Each process opens the partitions it finds
in its own recovery directory and tells the cluster which ones it has; worker 0 picks one worker per
partition to write it, and snapshots travel between processes to the worker that holds their partition
(by a hash of step and state key). On resume every process reads the progress and snapshots of its own
partitions and the cluster computes one resume epoch from all of them: every partition 0..N-1 must be found
on some process (else `MissingPartitionsError`: "Missing recovery partitions ...; can't resume"), all with the
same N, none newer than the others by more than the backup interval. No partition has to be on a shared disk.

So, for a cluster of N processes obsync creates N partitions and gives process K exactly `part-K` of N, in
`<its state_dir>/recovery/`, with `cluster.json` beside it naming the task instance, K, N and the recovery
*generation*. The task's control topic (`obsync.runtime.cluster`) holds the generation in use (record
`recovery`: `{"generation", "processes"}`) and, per process, the generation its partition was created for
(`recovery/<K>`). At start, process K:

- resumes from its partition when it holds the current generation's `part-K` of N of this task instance
  (a partition of another instance, left from before the control topic was recreated, is discarded);
- discards a partition of an older generation (after `obsync reset-recovery`) and creates a new one;
- creates its partition when it has none and none was created for the generation (a first start);
- refuses to start when it has none but one was created for the generation: its directory was emptied or
  replaced (a pod rescheduled onto a new volume). The other processes hold their partitions of the same
  run, which Bytewax cannot resume without this one; the error says how to go on (`LOST_PARTITION`).

`obsync reset-recovery <task>` (every process stopped) starts a new generation: each process then starts its
partition afresh. Nothing is lost or written twice by that, because what Bytewax's store held can be rebuilt
from Kafka: the start point, full-sync marks and schema history are in the control topic; a full sync
already delivered is not read again; the log is read again from the task's start position and the Kafka
sink, whose lanes start without state, reads every partition it writes from its beginning and drops what
is already there (`obsync.connectors.kafka.sink`). It costs that reading (and needs the binlog since the
start position on the source). Changing the number of processes needs the same reset.

One process (no cluster): one partition, `recovery/part-0.sqlite3`, as `python -m bytewax.recovery DIR 1`
makes it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from obsync.connectors.kafka.control import ControlTopic
from obsync.core.errors import StateError
from obsync.runtime.cluster import ClusterState
from obsync.task.state import TaskState, write_json_atomic

log = logging.getLogger(__name__)

LOCAL_FILE = "cluster.json"
RECOVERY_KEY = "recovery"


def part_file(index: int) -> str:
    return f"part-{index}.sqlite3"


def place_single(state: TaskState) -> Path:
    """One process: its recovery directory with one partition (created on first use)."""
    from bytewax.recovery import init_db_dir  # the engine, loaded only by a run

    recovery = state.recovery_dir
    if not recovery.exists():
        recovery.mkdir(parents=True)
        init_db_dir(recovery, 1)
    return recovery


def place_cluster(state: ClusterState, task_id: str) -> Path:
    """Process K of a cluster: its recovery directory holding `part-K` of N for the current generation
    (see the module docstring); `StateError` saying what to do when it cannot be."""
    spec, control = state.spec, state.control
    current = _current_generation(state)
    generation = int(current["generation"])
    recovery = state.recovery_dir
    local = _read_local(recovery)
    if local is not None and local.get("task_id") != task_id:
        log.info("process %d: discarding the recovery partition in %s: it belongs to another instance of the task "
                 "(its control topic was recreated since)", spec.process, recovery)
        local = None
    if local is not None:
        if int(local.get("generation", -1)) == generation:
            if (local.get("process"), local.get("processes")) != (spec.process, spec.processes):
                raise StateError(
                    f"state directory {state.root} is process {local.get('process')}'s of {local.get('processes')} "
                    f"(its recovery store holds partition {local.get('process')}), not process {spec.process}'s "
                    f"of {spec.processes}: give each process its own state directory, the same one every time")
            if (recovery / part_file(spec.process)).exists():
                log.info("process %d: resuming from recovery partition %d of %d (generation %d) in %s",
                         spec.process, spec.process, spec.processes, generation, recovery)
                return recovery
        else:
            log.info("process %d: discarding recovery partition of generation %s in %s (the task's recovery "
                     "was reset to generation %d)", spec.process, local.get("generation"), recovery, generation)
        local = None
    if local is None and any(recovery.glob("*.sqlite3")):
        log.info("process %d: removing recovery files obsync did not finish placing in %s", spec.process, recovery)
    created = control.get(f"{RECOVERY_KEY}/{spec.process}")
    if created is not None and int(created.get("generation", -1)) == generation:
        raise StateError(LOST_PARTITION.format(
            process=spec.process, processes=spec.processes, others=spec.processes - 1, root=state.root,
            topic=control.topic,
            created=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(created.get("at", 0)))),
            generation=generation))
    _create_partition(recovery, spec.process, spec.processes)
    write_json_atomic(recovery / LOCAL_FILE, {"task_id": task_id, "generation": generation,
                                              "process": spec.process, "processes": spec.processes})
    control.write({f"{RECOVERY_KEY}/{spec.process}": {"generation": generation, "at": time.time()}})
    log.info("process %d: created recovery partition %d of %d (generation %d) in %s", spec.process,
             spec.process, spec.processes, generation, recovery)
    return recovery


LOST_PARTITION = (
    "process {process}'s recovery partition is missing from state directory {root} (recovery/part-{process}"
    ".sqlite3), but it was created there at {created} UTC for the cluster's current run (generation "
    "{generation} in control topic {topic}): the directory was emptied or replaced (a new volume?). The other "
    "{others} of the {processes} processes hold their partitions of that run, and Bytewax cannot resume without "
    "this one. Either restore this directory from a backup and start again, or stop every process of the task, "
    "run `obsync reset-recovery <task file>` once, and start all of them again: each then starts its recovery "
    "afresh and the task resumes from what Kafka holds, losing and duplicating nothing (the log is read again "
    "from the task's start position, so the source must still have that binlog)")


def reset(control: ControlTopic) -> int:
    """Start a new recovery generation (`obsync reset-recovery`); the new generation number."""
    current = control.refresh().get(RECOVERY_KEY) or {"generation": 0}
    generation = int(current["generation"]) + 1
    control.write({RECOVERY_KEY: {"generation": generation, "processes": None}})
    return generation


def _current_generation(state: ClusterState) -> dict[str, Any]:
    """The control topic's `recovery` record, set by process 0 (it waits for none); checked against the
    number of processes."""
    spec = state.spec
    if spec.leader:
        current = state.control.refresh().get(RECOVERY_KEY)
        if current is None or current.get("processes") is None:
            current = {"generation": int((current or {}).get("generation", 1)), "processes": spec.processes}
            state.control.write({RECOVERY_KEY: current})
    else:
        current = state.wait_for(RECOVERY_KEY, lambda v: v is not None and v.get("processes") is not None,
                                  "the recovery store's layout")
    if int(current["processes"]) != spec.processes:
        raise StateError(
            f"the task's recovery store is spread over {current['processes']} processes (control topic "
            f"{state.control.topic}), and this cluster has {spec.processes}: Bytewax cannot resume it with another "
            "number of processes. Start the same number of processes, or stop every process, run `obsync "
            "reset-recovery <task file>` once and start the new number of processes (they resume from what Kafka "
            "holds, nothing lost or written twice; the log is read again from the task's start position)")
    return current


def _read_local(recovery: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((recovery / LOCAL_FILE).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("%s is damaged; treating the recovery directory as empty", recovery / LOCAL_FILE)
        return None
    return data if isinstance(data, dict) else None


def _create_partition(recovery: Path, index: int, count: int) -> None:
    """`recovery` holding only `part-<index>` of `count` (the others are created and dropped: Bytewax makes
    partitions only in sets)."""
    from bytewax.recovery import init_db_dir

    if recovery.exists():
        shutil.rmtree(recovery)
    recovery.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=recovery.parent, prefix=".recovery-init-") as tmp:
        init_db_dir(Path(tmp), count)
        (Path(tmp) / part_file(index)).replace(recovery / part_file(index))

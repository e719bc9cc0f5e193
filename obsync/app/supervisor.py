"""`obsync run` as two processes: this one watches, a child runs the task (`OBSYNC_RUN_CHILD=1`).

Restarts, as Kafka Connect restarts a failed task: a child that fails with a `BrokerFault` (a write that a new
Kafka producer would make: librdkafka's fatal idempotent-producer errors, a fenced producer, a broker's
UNKNOWN_SERVER_ERROR, or messages Kafka acknowledged without keeping; `obsync.connectors.kafka.faults`) exits
with `RESTART_EXIT`, and this process starts it again after a backoff (1 s, doubling, at most 30 s), logging
why and counting the restarts in status.json (`restarts`, state `restarting` while it waits) and in the
metrics (`obsync_task_restarts`, from `OBSYNC_RESTARTS`; during the backoff this process serves the endpoint
itself: `serve_restarting`), for as long as `target.patience` allows from the
first failure in a row (a child that ran a minute had recovered); in a cluster on this host (`obsync run
--processes N`) every process is started again together (`local_cluster`). A new process rather than a new
dataflow in the same one: librdkafka's fatal state, its threads and Bytewax's workers all go with the process, and
resuming (the recovery snapshot, the sink reading Kafka past its snapshot offset) is the path every start
already takes and the tests cover, so the restart loses and duplicates nothing. A stop during the backoff
ends the run at once, rc 0.

Bytewax's recovery store (sqlite) writes through memory-mapped files: when its state directory stops taking
writes under it (made read-only, immutable, or its disk vanishing) the process dies of SIGBUS at once, before
any check or handler can report it. The watching process outlives that: when the child dies of a signal it
says so with the state directory's fault (`TaskState.check_usable`), marks the task failed in status.json
where it can, and exits 2. Otherwise it exits with the child's status. Stop signals (SIGTERM, SIGINT) and
SIGHUP are passed on to the child, which holds the run lock (so `obsync stop`/`reload` signal it directly);
the child dies with its parent (PR_SET_PDEATHSIG), so killing `obsync run` kills the task as before.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from obsync.core.errors import RESTART_EXIT, StateError
from obsync.core.wording import counted
from obsync.task.state import TaskState, write_json_atomic

log = logging.getLogger(__name__)

CHILD_ENV = "OBSYNC_RUN_CHILD"
RESTARTS_ENV = "OBSYNC_RESTARTS"  # restarts before this child (status.json, metrics)
RESTART_REASON_ENV = "OBSYNC_RESTART_REASON"  # why the last restart was
RECOVERED_AFTER = 60.0  # s a child ran before failing after which its failure starts a new streak of restarts
_PR_SET_PDEATHSIG = 1


def is_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


_STOPS = {signal.SIGTERM, signal.SIGINT}


def die_with_parent() -> None:
    """(Runs in a task process between fork and exec.) Its stop signals held until it can take them, and its
    death when this process dies."""
    # Stop signals wait (pending) until the child's handlers are in place (`Stopper.install` unblocks them).
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def supervise(argv: list[str], state: TaskState, patience: float | None = 600.0,
              backoff: Backoff | None = None, program: list[str] | None = None,
              metrics_at: MetricsAt | None = None) -> int:
    """Run `obsync <argv>` (a `run`; `program`: what runs instead of `python -m obsync`, for tests) as a child
    and wait for it, starting it again after a `BrokerFault` (`RESTART_EXIT`) for as long as `patience` allows;
    see the module docstring. `metrics_at`: the child's Prometheus endpoint, which this process serves during a
    backoff (`serve_restarting`)."""
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []
    stop: list[int] = []  # a stop signal came (no restart after it)

    def forward(signum: int, frame: object) -> None:
        if signum in _STOPS:
            stop.append(signum)
        if not started:
            pending.append(signum)
        elif started[-1].poll() is None:
            started[-1].send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    restarts = Restarts(patience, backoff or Backoff())
    before = int(os.environ.get(RESTARTS_ENV) or 0)  # restarts of a cluster on this host before this process began
    while True:
        env = {**os.environ, CHILD_ENV: "1", **restarts.child_env(before)}
        began = time.monotonic()
        proc = subprocess.Popen([*(program or [sys.executable, "-m", "obsync"]), *argv], env=env,
                                process_group=0, preexec_fn=die_with_parent)  # Ctrl-C reaches it once, through us
        started.append(proc)
        for signum in pending:
            proc.send_signal(signum)
        pending.clear()
        rc = proc.wait()
        if rc != RESTART_EXIT or stop:
            break
        reason = child_error(state)
        delay = restarts.failed(time.monotonic() - began, reason)
        if delay is None:
            log.error("the task failed %s in %.0f s with faults of Kafka's that a restart clears; target.patience "
                      "(%g s) ran out: not restarting it. Last error: %s", counted(restarts.streak, "time"),
                      restarts.streak_for(), patience or 0, reason)
            _write_status(state, {"state": "failed", "phase": "failed", "error": reason, "restarts": restarts.count})
            return 2
        log.warning("the task failed with a fault of Kafka's that a restart clears (%s); starting it again in "
                    "%.0f s (restart %d; it resumes from the last snapshot: nothing is lost or written twice)",
                    reason, delay, restarts.count)
        _write_status(state, {"state": "restarting", "phase": "restarting", "last_restart_reason": reason,
                              "pid": os.getpid(),
                              "restarts": restarts.count, "restart_in_seconds": round(delay, 1)})
        server = serve_restarting(metrics_at, before + restarts.count) if metrics_at is not None else None
        try:
            with state.running(pid=os.getpid()):  # meanwhile `obsync stop` finds this process to signal
                wait_out(delay, stop)
        finally:
            if server is not None:  # the port is the child's again
                server.shutdown()
                server.server_close()
        if stop:
            log.info("stopped (%s) while waiting to restart the task; the next run resumes from the last snapshot",
                     signal.Signals(stop[0]).name)
            _write_status(state, {"state": "stopped", "phase": "stopped", "restarts": restarts.count})
            return 0
    if rc == RESTART_EXIT:  # a stop came as the task failed: not restarted; the next start resumes as after a stop
        log.info("stopped (%s) as the task failed with a fault a restart clears (%s); the next run resumes from the "
                 "last snapshot", signal.Signals(stop[0]).name, child_error(state))
        _write_status(state, {"state": "stopped", "phase": "stopped", "restarts": restarts.count})
        return 0
    if rc >= 0:
        return rc
    raise killed_child(state, -rc)


def killed_child(state: TaskState, signum: int, who: str = "the task's process") -> StateError:
    """The error of a task process that died of `signum`, its state directory `state` marked failed: the
    directory's fault when it has one (a directory that stopped taking writes kills the process with SIGBUS,
    the module docstring), else the signal."""
    name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
    try:
        state.check_usable()
        fault = None
    except StateError as e:
        fault = e
    msg = (f"{fault} ({who} died of {name} writing to it)" if fault is not None else
           f"{who} died of {name}; the next start resumes from the last saved point")
    _write_status(state, {"state": "failed", "phase": "failed", "error": msg})
    return StateError(msg)


def _write_status(state: TaskState, report: dict[str, object]) -> None:
    try:
        if state.exists():
            write_json_atomic(state.root / "status.json", {**report, "updated": time.time()})
    except OSError:
        pass  # the directory is the fault: `status` tells a run that never reported its end as failed


class MetricsAt(NamedTuple):
    """Where a task's Prometheus endpoint listens (`obsync run --metrics-port`, the task's `metrics_port`)."""

    task: str
    host: str
    port: int


def serve_restarting(at: MetricsAt, restarts: int) -> Any:
    """The endpoint while the task's process is gone, between a failure and its restart: `obsync_up` 0,
    `obsync_phase` `restarting`, `obsync_task_restarts` (counters, which the process's next run starts again from
    0, are left out), so that a scrape finds a task restarting rather than nothing. None when the port cannot be
    had (logged; the restart goes on)."""
    from obsync.runtime import metrics

    metrics.configure(at.task)
    metrics.set_up(False)
    metrics.set_phase("restarting")
    metrics.set_restarts(restarts)
    try:
        return metrics.start_metrics_server(at.port, at.host)
    except OSError as e:
        log.warning("metrics port %d on %s: cannot listen while the task restarts: %s", at.port, at.host,
                    e.strerror or e)
        return None


def wait_out(delay: float, stop: list[int]) -> None:
    """Sleep `delay` s, or until a stop signal is in `stop` (checked every 0.2 s)."""
    deadline = time.monotonic() + delay
    while not stop and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def child_error(state: TaskState) -> str:
    """The error the child recorded in status.json as it failed (`cli._run`)."""
    try:
        report = json.loads((state.root / "status.json").read_text())
    except (OSError, ValueError):
        report = {}
    return str(report.get("error") or "a fault of Kafka's (the task's log says which)")


@dataclass(frozen=True)
class Backoff:
    """Seconds before the n-th restart in a row (n from 1): `first`, doubling, at most `most`."""

    first: float = 1.0
    most: float = 30.0

    def delay(self, n: int) -> float:
        return min(self.most, self.first * 2 ** (n - 1))


class Restarts:
    """When to start a failed task again. Failures in a row (a streak) are retried while the time since the
    first of them is within `patience` (None: forever), after a backoff (`Backoff`); a child that ran
    `RECOVERED_AFTER` s or more before failing had recovered, so its failure starts a new streak. Pure apart
    from the clock (`clock`), tested without processes."""

    def __init__(self, patience: float | None, backoff: Backoff,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.patience = patience
        self.backoff = backoff
        self._clock = clock
        self.count = 0  # restarts so far (since `obsync run` started)
        self.streak = 0  # failures in a row
        self._streak_began = 0.0
        self.last_reason: str | None = None

    def streak_for(self) -> float:
        return self._clock() - self._streak_began

    def child_env(self, before: int = 0) -> dict[str, str]:
        """What a started child is told of the restarts before it (`before`: those before this `obsync run`)
        and of why the last one was (status.json, metrics)."""
        env = {RESTARTS_ENV: str(before + self.count)}
        if self.last_reason:
            env[RESTART_REASON_ENV] = self.last_reason
        return env

    def failed(self, ran_for: float, reason: str) -> float | None:
        """A child failed after running `ran_for` s: the delay before starting it again, None to give up."""
        now = self._clock()
        if self.streak == 0 or ran_for >= RECOVERED_AFTER:
            self.streak, self._streak_began = 0, now
        self.streak += 1
        spent = now - self._streak_began
        if self.patience is not None and spent >= self.patience:
            return None
        delay = self.backoff.delay(self.streak)
        if self.patience is not None:
            delay = min(delay, self.patience - spent)
        self.count += 1
        self.last_reason = reason
        return delay

"""`obsync run` as two processes: this one watches, a child runs the task (`OBSYNC_RUN_CHILD=1`).

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
import os
import signal
import subprocess
import sys
import time

from obsync.core.errors import StateError
from obsync.task.state import TaskState, write_json_atomic

CHILD_ENV = "OBSYNC_RUN_CHILD"
_PR_SET_PDEATHSIG = 1


def is_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


_STOPS = {signal.SIGTERM, signal.SIGINT}


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # Stop signals wait (pending) until the child's handlers are in place (`Stopper.install` unblocks them).
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def supervise(argv: list[str], state: TaskState) -> int:
    """Run `obsync <argv>` (a `run`) as a child and wait for it; see the module docstring."""
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if not started:
            pending.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    proc = subprocess.Popen([sys.executable, "-m", "obsync", *argv], env={**os.environ, CHILD_ENV: "1"},
                            process_group=0, preexec_fn=_die_with_parent)  # Ctrl-C reaches it once, through us
    started.append(proc)
    for signum in pending:
        proc.send_signal(signum)
    rc = proc.wait()
    if rc >= 0:
        return rc
    name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else f"signal {-rc}"
    try:
        state.check_usable()
        fault = None
    except StateError as e:
        fault = e
    msg = (f"{fault} (the task's process died of {name} writing to it)" if fault is not None else
           f"the task's process died of {name}; the next start resumes from the last saved point")
    try:
        if state.exists():
            write_json_atomic(state.root / "status.json", {"state": "failed", "phase": "failed", "error": msg,
                                                           "updated": time.time()})
    except OSError:
        pass  # the directory is the fault: `status` tells a run that never reported its end as failed
    raise StateError(msg)

"""`obsync run --processes N`: the task as a cluster of N processes on this host.

Each process is an `obsync run <task> -i K -a "127.0.0.1:P0;...;127.0.0.1:PN-1"` of its own, with state
directory `<state dir>/process-K`, exactly as N hosts would run it (`obsync.runtime.cluster`): nothing but
Kafka is shared between them. This process holds the task's run lock (so `obsync stop` and `pause` signal
it), passes SIGTERM, SIGINT and SIGHUP on to every process, and exits with the first failure's status (a
process that fails makes Bytewax stop the others), else 0. The precheck ran once, here, before.

The processes are task processes (`supervisor.CHILD_ENV`) watched from here as `obsync run` watches its one
(`supervisor`): their stop signals wait until they can take them, they die with this process, and one that dies
of a signal is reported with its state directory's fault (`supervisor.killed_child`). No `obsync run` stands
between: one would cost each start an interpreter and its imports (about 0.5 s on a 2-core machine).

A Bytewax cluster stops whole, and a process started again alone would wait for peers that are gone. So when a
process's task fails with a fault of Kafka's that a restart clears (README.md, "Operating a task"), that
process ends with `RESTART_EXIT` and this one stops the others and starts every process again, with the same
backoff and `target.patience` as one process's restarts (`supervisor.Restarts`), telling each how many restarts
came before (status.json, `obsync_task_restarts`). Each resumes from the last snapshot.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from obsync.app.supervisor import CHILD_ENV, Backoff, Restarts, child_error, die_with_parent, killed_child, wait_out
from obsync.core.errors import RESTART_EXIT, StateError
from obsync.core.wording import counted
from obsync.task.state import TaskState

log = logging.getLogger(__name__)

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_POLL = 0.05  # s between looks at the processes (an exit is seen within it)


def process_dir(root: Path, k: int) -> Path:
    return root / f"process-{k}"


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def child_argv(args: argparse.Namespace, root: Path, k: int, addresses: str) -> list[str]:
    """The `obsync run` command line of process `k`."""
    argv = ["run", str(Path(args.task).resolve()), "--state-dir", str(process_dir(root, k)),
            "--process-id", str(k), "--addresses", addresses, "--stop-timeout", str(args.stop_timeout)]
    if args.until_caught_up:
        argv.append("--until-caught-up")
    if args.workers:
        argv += ["--workers", str(args.workers)]
    if args.metrics_port:
        argv += ["--metrics-port", str(args.metrics_port + k), "--metrics-host", args.metrics_host]
    if args.verbose:
        argv.insert(0, "-v")
    return argv


def run_local_cluster(args: argparse.Namespace, state: TaskState, patience: float | None = 600.0,
                      backoff: Backoff | None = None, program: list[str] | None = None) -> int:
    """Run `args.processes` processes of the task and wait for them, starting them all again after a fault a
    restart clears for as long as `patience` allows (see the module docstring); `program`: what runs instead of
    `python -m obsync`, for tests."""
    n = int(args.processes)
    if args.process_id is not None or args.addresses:
        raise StateError("--processes runs every process of the cluster on this host: it takes no "
                         "-i/--process-id or -a/--addresses")
    for k in range(n):  # refused before anything runs, as `obsync run` refuses its own (`cli.cmd_run`)
        TaskState(process_dir(state.root, k)).check_usable()
    procs: list[subprocess.Popen[bytes]] = []
    stop: list[int] = []  # a stop signal came (no restart after it)

    def forward(signum: int, frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            stop.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    restarts = Restarts(patience, backoff or Backoff())
    with state.running():
        for s in _FORWARDED:
            signal.signal(s, forward)
        while True:
            env = {**os.environ, CHILD_ENV: "1", **restarts.child_env()}
            env.pop("BYTEWAX_PROCESS_ID", None)
            env.pop("BYTEWAX_ADDRESSES", None)
            began = time.monotonic()
            addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(n))
            procs[:] = [subprocess.Popen([*(program or [sys.executable, "-m", "obsync"]),
                                          *child_argv(args, state.root, k, addresses)], env=env, process_group=0,
                                         preexec_fn=die_with_parent)
                        for k in range(n)]
            codes, first = _wait_all(procs)
            faulted = [k for k, rc in enumerate(codes) if rc == RESTART_EXIT]
            if not faulted or stop:
                break
            k = faulted[0]
            reason = child_error(TaskState(process_dir(state.root, k)))
            delay = restarts.failed(time.monotonic() - began, reason)
            if delay is None:
                log.error("process %d of the cluster failed %s in %.0f s with faults of Kafka's that a restart "
                          "clears; target.patience (%g s) ran out: not starting the cluster again. Last error: %s",
                          k, counted(restarts.streak, "time"), restarts.streak_for(), patience or 0, reason)
                return 2
            log.warning("process %d of the cluster failed with a fault of Kafka's that a restart clears (%s); the "
                        "others stopped with it: starting every process again in %.0f s (restart %d; they resume "
                        "from the last snapshot: nothing is lost or written twice)", k, reason, delay,
                        restarts.count)
            wait_out(delay, stop)
            if stop:
                log.info("stopped (%s) while waiting to start the cluster again; the next run resumes from the "
                         "last snapshot", signal.Signals(stop[0]).name)
                return 0
    if stop and RESTART_EXIT in codes:  # a stop came as a process failed: not restarted; the next run resumes
        log.info("stopped (%s) as a process of the cluster failed with a fault a restart clears; the next run "
                 "resumes from the last snapshot", signal.Signals(stop[0]).name)
        return 0
    if first is not None and first < 0:  # killed: by a state directory that stopped taking writes, or anyone
        k = codes.index(first)
        raise killed_child(TaskState(process_dir(state.root, k)), -first, f"process {k} of the cluster")
    return 0 if first is None else first


def _wait_all(procs: list[subprocess.Popen[bytes]]) -> tuple[list[int], int | None]:
    """Every process's exit status, and the first failure's (None: none failed); when one fails (maybe before
    the cluster formed), the others are stopped."""
    first: int | None = None
    while any(p.poll() is None for p in procs):
        if first is None:
            first = next((p.returncode for p in procs if p.returncode not in (None, 0)), None)
            if first is not None:
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
        time.sleep(_POLL)
    if first is None:
        first = next((p.returncode for p in procs if p.returncode != 0), None)
    return [p.returncode for p in procs], first

"""`obsync run --processes N`: the task as a cluster of N processes on this host.

Each process is an `obsync run <task> -i K -a "127.0.0.1:P0;...;127.0.0.1:PN-1"` of its own, with state
directory `<state dir>/process-K`, exactly as N hosts would run it (`obsync.runtime.cluster`): nothing but
Kafka is shared between them. This process holds the task's run lock (so `obsync stop` and `pause` signal
it), passes SIGTERM, SIGINT and SIGHUP on to every process, and exits with the first failure's status (a
process that fails makes Bytewax stop the others), else 0. The precheck ran once, here, before.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from obsync.core.errors import StateError
from obsync.task.state import TaskState

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PRECHECKED_ENV = "OBSYNC_PRECHECKED"  # the processes started here skip the precheck, which ran once before


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


def run_local_cluster(args: argparse.Namespace, state: TaskState) -> int:
    """Run `args.processes` processes of the task and wait for them (see the module docstring)."""
    n = int(args.processes)
    if args.process_id is not None or args.addresses:
        raise StateError("--processes runs every process of the cluster on this host: it takes no "
                         "-i/--process-id or -a/--addresses")
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(n))
    env = {**os.environ, PRECHECKED_ENV: "1"}
    env.pop("BYTEWAX_PROCESS_ID", None)
    env.pop("BYTEWAX_ADDRESSES", None)
    procs: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    with state.running():
        for s in _FORWARDED:
            signal.signal(s, forward)
        for k in range(n):
            procs.append(subprocess.Popen([sys.executable, "-m", "obsync", *child_argv(args, state.root, k, addresses)],
                                          env=env, process_group=0))
        status: int | None = None
        while any(p.poll() is None for p in procs):
            for p in procs:
                rc = p.poll()
                if rc is not None and rc != 0 and status is None:
                    status = rc
                    forward(signal.SIGTERM, None)  # one failed (maybe before the cluster formed): stop the others
            time.sleep(0.2)
        for p in procs:
            if p.returncode != 0 and status is None:
                status = p.returncode
    return 0 if status is None else (status if status > 0 else 1)

"""Clean stops of `obsync run`: SIGTERM and SIGINT (and so `obsync stop` and `pause`) stop the task at a
consistent point, exit 0, and print no traceback, whatever the process is doing when the signal arrives.

How: Python runs signal handlers only in the main thread, between bytecodes. The dataflow runs in Bytewax
worker threads (`run_engine`, Bytewax's `cluster_main`, even for one worker), so the main thread only waits
in Bytewax's Rust loop, which checks for signals every millisecond: the handler raises `StopRequested` there,
Bytewax tells every worker to stop between two steps (never inside a Kafka or SQL call) and drops the
dataflow; the recovery store keeps the last finished epoch, which the next start resumes from (the Kafka sink
drops what it already wrote). With Bytewax's `run_main` (what `cli_main` picks for one worker) the worker ran
in the main thread, so the handler's exception could surface inside `Producer.produce()` as a `TypeError`, and
every stop printed a Rust panic (`src/run.rs:133`: the signal is turned into a worker panic) — neither
happens here: `cluster_main` reports worker failures through a channel, without printing a panic.

Before the engine runs (precheck, prepare), the handler raises `StopRequested` at once, and any error that
follows a stop request is a stop: nothing is half-written there (start.json is written atomically).

A request in flight can hold a step up: a snapshot query that the source keeps waiting (a table lock), or one
sent to a source that went silent, ends only after `source.read_timeout` (60 s by default, as long as the
stop's bound). So once a stop has not finished after `STUCK_AFTER` s, the hooks given to `when_stuck` run
(`obsync run` shuts down the source sessions' sockets: `connectors.mysql.connection.interrupt_sessions`); the
request ends at once with a lost connection, which the run takes as the stop's doing (exit 0, the next start
resumes from the last saved epoch, as after any stop). A normal stop finishes well before and is untouched.

A stop is bounded: if the process has not finished `timeout` s after the first signal, a watchdog logs what
is still running (each busy thread's innermost obsync frame), calls `on_timeout` (status: failed) and exits
with status 1. Further signals while stopping are only logged.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from obsync.core.errors import StateError
from obsync.core.threads import NamedThread
from obsync.runtime.peer_listening import wait_until_listening
from obsync.task.state import TaskState

log = logging.getLogger("obsync")

STOP_TIMEOUT = 60.0  # s a stop may take before the process gives up waiting and exits 1
STUCK_AFTER = 5.0  # s after which a stop that has not finished interrupts the requests in flight (`when_stuck`)
PEER_WAIT = 10.0  # s a cluster's process waits for the processes it connects to to listen, then connects anyway


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived (a KeyboardInterrupt, so no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopper:
    """The SIGTERM/SIGINT handler of the `obsync` command (see the module docstring).

    `install()` it first thing: until `arm()`, a signal is only recorded (nothing has started). `arm()` (by
    `obsync run`) turns a recorded or later signal into `StopRequested`; `release()` (every other command)
    restores the default handlers and re-sends a recorded signal.
    """

    def __init__(self) -> None:
        self.timeout = STOP_TIMEOUT
        self.on_timeout: Callable[[str], None] | None = None
        self.signum: int | None = None
        self.raising = False  # the next signal raises StopRequested (armed, until `settle()`)
        self._armed = False
        self._finished = threading.Event()
        self._stuck_hooks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "-"

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # a run's child process starts with them blocked (`obsync.app.supervisor`): pending ones arrive now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    def release(self) -> None:
        """Not a run: the default handlers again (a signal that came meanwhile takes effect now)."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.signum is not None:
            signal.raise_signal(self.signum)

    def arm(self, timeout: float = STOP_TIMEOUT, on_timeout: Callable[[str], None] | None = None) -> None:
        """A run starts: a stop signal raises `StopRequested` (at once if one came already)."""
        self.timeout, self.on_timeout, self._armed = timeout, on_timeout, True
        if self.signum is not None:
            self._start_watchdog()
            raise StopRequested(self.signum)
        self.raising = True

    def settle(self) -> None:
        """The engine returned: a signal from now on is only noted (the run is ending anyway)."""
        self.raising = False

    def when_stuck(self, hook: Callable[[], None]) -> None:
        """Run `hook` (in the watchdog's thread) if a stop has not finished after `STUCK_AFTER` s (see above)."""
        self._stuck_hooks.append(hook)

    def finished(self) -> None:
        """The run ended within the bound: the watchdog stands down."""
        self._finished.set()

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            log.warning("%s: already stopping (since %s; at most %.0f s)", signal.Signals(signum).name,
                        self.name, self.timeout)
            return
        self.signum = signum
        if not self._armed:
            return  # noted: `arm()` or `release()` acts on it
        log.info("%s: stopping at a consistent point", self.name)
        self._start_watchdog()
        if self.raising:
            self.raising = False
            raise StopRequested(signum)

    def _start_watchdog(self) -> None:
        NamedThread(target=self._watchdog, name="obsync-stop-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        stuck = min(STUCK_AFTER, self.timeout)
        if self._finished.wait(stuck):
            return
        if self._stuck_hooks and stuck < self.timeout:
            busy = busy_threads()
            log.info("the stop waits after %.0f s (%s): interrupting the requests in flight", stuck,
                     "; ".join(busy) or "nothing in Python")
            for hook in self._stuck_hooks:
                try:
                    hook()
                except Exception:  # noqa: BLE001  # the bound below still holds
                    log.debug("a stop hook failed", exc_info=True)
        if self._finished.wait(self.timeout - stuck):
            return
        busy = busy_threads()
        msg = (f"the stop ({self.name}) did not finish within {self.timeout:.0f} s; still running: "
               f"{'; '.join(busy) or 'nothing in Python (the engine or the interpreter shutting down)'}. "
               "Exiting with status 1 without waiting; the next start resumes from the last saved point")
        log.error("%s", msg)
        try:
            if self.on_timeout is not None:
                self.on_timeout(msg)
        finally:
            logging.shutdown()
            sys.stderr.flush()
            os._exit(1)


def busy_threads() -> list[str]:
    """Each busy thread's innermost obsync (else innermost) frame: `thread: file:line in function` (the
    engine's workers, and whatever else runs; not obsync's own idle helpers nor the main thread waiting in the
    engine)."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    idle = {"obsync-state-watch", "obsync-progress", "obsync-stop-watchdog"}
    out = []
    for ident, frame in sys._current_frames().items():
        name = names.get(ident) or "Dummy"
        if ident == me or name in idle or (name == "MainThread" and frame.f_code.co_name == "run_engine"):
            continue
        if name.startswith("Dummy"):
            name = "engine worker"  # a Bytewax worker thread (one `threading` does not know, or knows as a dummy)
        if name == "obsync-connect-guard":
            continue
        stack = traceback.extract_stack(frame)
        ours = [f for f in stack if "obsync" in f.filename or "/connectors/" in f.filename]
        f = (ours or stack)[-1]
        out.append(f"{name}: {os.path.basename(f.filename)}:{f.lineno} in {f.name}")
    return out


def run_engine(flow: Any, *, workers: int, epoch_interval: timedelta, recovery_config: Any,
               addresses: list[str] | None = None, process_id: int = 0, stopper: Stopper | None = None) -> None:
    """Run the dataflow in Bytewax worker threads until it ends, fails or a signal stops it (see above); as
    process `process_id` of the cluster of `addresses` when given (see `ConnectGuard`)."""
    from bytewax.testing import cluster_main  # Bytewax's entry point for the workers of one process (lazy:
    # `obsync status` and the like do not load the engine)

    if addresses and process_id > 0:  # spare the engine's one-second retry of a peer not listening yet
        wait_until_listening(addresses[:process_id], PEER_WAIT, lambda: stopper is not None and stopper.requested)
    guard = ConnectGuard(stopper, addresses) if addresses and stopper is not None else None
    if guard is not None:
        guard.start()
    try:
        cluster_main(flow, addresses, process_id, epoch_interval=epoch_interval, recovery_config=recovery_config,
                     worker_count_per_proc=workers)
    finally:
        if guard is not None:
            guard.stop()


class ConnectGuard:
    """A process of a cluster first waits, inside Bytewax, for every other process to connect, and there the
    main thread checks no signal: a SIGTERM would wait as long as a missing peer does (forever). This thread
    hears stop signals through Python's wakeup fd; when the `Stopper` has not acted on one within
    `grace` s, the engine is still connecting (nothing has started: no source read, nothing written), so it
    logs that and exits 0 at once."""

    def __init__(self, stopper: Stopper, addresses: list[str], grace: float = 2.0) -> None:
        self.stopper, self.addresses, self.grace = stopper, addresses, grace
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._old_fd = -1
        self._stopped = threading.Event()

    def start(self) -> None:
        self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        NamedThread(target=self._watch, name="obsync-connect-guard", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        signal.set_wakeup_fd(self._old_fd)
        os.write(self._w, b"\0")  # wake the thread: it ends

    def _watch(self) -> None:
        while not self._stopped.is_set():
            data = os.read(self._r, 16)
            if self._stopped.is_set():
                return
            if not any(b in (signal.SIGTERM, signal.SIGINT) for b in data):
                continue
            if self._stopped.wait(self.grace) or self.stopper.requested:
                continue  # the engine ended, or the handler ran: the normal stop is under way
            log.info("%s: stopped while waiting for the cluster's other processes to connect (%s); nothing had "
                     "started", signal.Signals(data[-1]).name if data[-1] in (2, 15) else "stop signal",
                     "; ".join(self.addresses))
            logging.shutdown()
            os._exit(0)


class StateWatch:
    """While the engine runs: checks every `interval` s that the state directory takes writes and has room
    (`TaskState.check_usable`); on a fault it stops the engine the way a signal does (in the main thread,
    between two steps of the workers) with the `StateError` naming the directory and the cause, before the
    recovery store runs into it (a store that cannot write dies with SIGBUS or a panic)."""

    def __init__(self, state: TaskState, interval: float = 1.0) -> None:
        self.state, self.interval = state, interval
        self.fault: StateError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        signal.signal(signal.SIGUSR1, self._on_fault)
        self._thread = NamedThread(target=self._run, name="obsync-state-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.state.check_usable()
            except StateError as e:
                self.fault = e
                _thread.interrupt_main(signal.SIGUSR1)
                return

    def _on_fault(self, signum: int, frame: object) -> None:
        if self.fault is not None and not self._stop.is_set():
            raise self.fault

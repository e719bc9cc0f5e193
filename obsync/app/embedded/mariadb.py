"""MariaDB (Debian's package) on 127.0.0.1 for the tests, the demo and the bench: a row-format binary log
(FULL row image, MINIMAL or FULL row metadata), utf8mb4, user root with an empty password and no anonymous users;
the data directory outlives `stop()`/`start()`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from obsync.app.embedded.process import HOST, ServerError, SQLServer, find_binary, tail


class MariaDBServer(SQLServer):
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

    @property
    def tmpdir(self) -> Path:
        """The server's own directory for temporary files. Not /tmp: a starting mariadbd deletes every `#sql*`
        file in its tmpdir, so with a shared one, a server starting beside a `mariadb-install-db` still running
        deleted the bootstrap's temporary tables ("Unknown table 'mysql.tmp_user_sys'"), and parallel test
        processes' servers failed to install now and then."""
        return self.base_dir / "tmp"

    def _prepare(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if (self.datadir / "mysql").is_dir():
            return  # initialised before: keep data and binlog
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [
            find_binary("mariadb-install-db", "/usr/bin/mariadb-install-db"), "--no-defaults",
            f"--datadir={self.datadir}", "--user=root", "--auth-root-authentication-method=normal",
            f"--tmpdir={self.tmpdir}",
        ]
        with (self.base_dir / "install.log").open("ab") as out:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.base_dir).returncode
        if rc != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            log = self.base_dir / "install.log"
            raise ServerError(f"mariadb-install-db failed with code {rc}\n--- {log} ---\n{tail(log, 25)}")

    def _command(self) -> list[str]:
        d = self.datadir
        return [
            find_binary("mariadbd", "/usr/sbin/mariadbd"), "--no-defaults",
            f"--datadir={d}", f"--tmpdir={self.tmpdir}", "--user=root", f"--port={self.port}",
            f"--bind-address={HOST}",
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


"""OceanBase seekdb (the pylibseekdb wheel's server) on 127.0.0.1, for the tests and the bench."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from obsync.app.embedded.process import ServerError, SQLServer


class SeekDBServer(SQLServer):
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


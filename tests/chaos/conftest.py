"""The chaos suite: faults at nasty moments under concurrent writes, each checked by replaying the topic.

Every module here sets `pytestmark = pytest.mark.chaos`, so the default `python -m pytest -q` leaves it out
(`addopts` in pyproject.toml); `scripts/chaos` runs them. Servers a test stops and restarts are the module's
own, never the session's shared ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from obsync.app.embedded.mariadb import MariaDBServer


@pytest.fixture(scope="module")
def own_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A MariaDB of the module's own (binlog_row_metadata=MINIMAL), for tests that stop and restart it."""
    with MariaDBServer(tmp_path_factory.mktemp("own_mariadb"), row_metadata="MINIMAL") as server:
        yield server

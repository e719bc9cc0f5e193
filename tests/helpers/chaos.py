"""What the chaos scenarios (tests/chaos) share: `obsync run` as a process to kill, stop and watch, a writer that
keeps changing the source through its outages, and the final check that the topic replays to the table.

    with ObsyncRun(task, tmp_path / "run.log") as run:
        run.wait_log("full sync done")
        ...                                  # the fault
        converge(kafka, topic, server, table)   # the same process catches up: replay == table, no position twice
        assert run.stop() == 0
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import yaml

from tests.helpers.kafka import Msg, partition_count, read_topic
from tests.helpers.tasks import obsync_cmd, unique
from tests.helpers.workload import TABLE, check_stream, replay, source_rows, write_concurrently

ROOT = Path(__file__).resolve().parents[2]


def wait_for(cond: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> None:
    """Poll `cond` until it is true; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def orders_table(server: Any, rows: int) -> str:
    """A new database on `server` with the workload's `orders` table holding ids 1..`rows`; its name."""
    db = unique("chaos")
    with server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(TABLE.format(t=f"{db}.orders"))
        cur.execute(f"INSERT INTO {db}.orders SELECT seq, CONCAT('row', seq), seq, 9.99, 'seed' "
                    f"FROM {db}.seq_1_to_{rows}")
    return db


class ObsyncRun:
    """`obsync run TASK ARGS...` as a separate process, its output appended to `log`."""

    def __init__(self, task: Path, log: Path, *args: str) -> None:
        self.task, self.log = task, log
        self._from = log.stat().st_size if log.exists() else 0
        self.state_dir = Path(yaml.safe_load(task.read_text())["state_dir"])
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(obsync_cmd("run", str(task), *args), cwd=ROOT, stdout=out, stderr=out)

    def text(self) -> str:
        """What this run printed so far."""
        with open(self.log, "rb") as f:
            f.seek(self._from)
            return f.read().decode(errors="replace")

    def running(self) -> bool:
        """True while the process runs; fails the test, with its output, once it has exited."""
        rc = self.proc.poll()
        assert rc is None, f"obsync run exited {rc}:\n{self.text()[-4000:]}"
        return True

    def wait_log(self, needle: str, timeout: float = 120) -> None:
        """Until this run printed `needle` (fails if it exits first)."""
        wait_for(lambda: self.running() and needle in self.text(), timeout, f"{needle!r} in the output")

    def status(self) -> dict[str, Any]:
        """The task's status.json ({} while it is not written yet or being replaced)."""
        try:
            return json.loads((self.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def rows_done(self) -> int:
        """Rows full sync has read so far (from status.json)."""
        return sum(t.get("rows_done", 0) for t in self.status().get("full_sync") or [])

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 150) -> int:
        """Send `sig` and return the exit code; fails if the process does not exit within `timeout` s."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"obsync run did not exit within {timeout:g} s of {sig.name}:\n"
                                 f"{self.text()[-4000:]}") from None

    def __enter__(self) -> ObsyncRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.proc.poll() is None:
            self.kill()
        if isinstance(exc, AssertionError):  # CI shows the failure's message in full, seldom the captured output
            said = str(exc)
            tail = self.text()[-3000:]
            if tail and tail[-400:] not in said:
                exc.args = (f"{said}\n--- the last lines obsync run printed ({self.log}):\n{tail}",)


class Writer(threading.Thread):
    """`write_concurrently` on `db.orders` of `server` (inserts, updates, deletes, key changes; `pause` seconds
    apart, so that a minute's outage piles up tens of thousands of changes, not millions) until `finish()`,
    reconnecting while the server is down or restarting (a statement cut off by the outage is simply lost or
    rolled back: the table is the truth the topic is compared with). Any other error fails `finish()`."""

    def __init__(self, server: Any, db: str, seed: int, pause: float = 0.05) -> None:
        super().__init__(name=f"writer-{db}", daemon=True)
        self.server, self.db, self.seed, self.pause = server, db, seed, pause
        self.ids_taken = 0  # ids handed to inserts so far (from 1,000,000 on)
        self.reconnects = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        for attempt in itertools.count():
            if self._stop_event.is_set():
                return
            try:
                conn = self.server.connect(autocommit=True, read_timeout=30, write_timeout=30)
                try:
                    write_concurrently(conn, self.db, self._stop_event, self.seed * 1000 + attempt, self._ids(),
                                       self.pause)
                    return
                finally:
                    try:
                        conn.close()
                    except pymysql.Error:
                        pass
            except (pymysql.OperationalError, pymysql.InterfaceError):
                self.reconnects += 1
                self._stop_event.wait(0.5)
            except BaseException as e:  # noqa: BLE001 - re-raised by finish()
                self.error = e
                return

    def _ids(self) -> Iterator[int]:
        while True:
            self.ids_taken += 1
            yield 999_999 + self.ids_taken

    def finish(self) -> None:
        self._stop_event.set()
        self.join(60)
        assert not self.is_alive(), "the writer did not stop within 60 s"
        if self.error is not None:
            raise self.error


def converge(kafka: Any, topic: str, server: Any, table: str, timeout: float = 180,
             meanwhile: Callable[[], object] = lambda: None) -> list[Msg]:
    """Wait until `topic` replayed per key equals `table` (read afresh each time through a new connection, so
    a restarted server does not matter); then check no (position, seq) was written twice, keys in their hash
    partition and in order. Returns the messages. On timeout, fails naming the keys that differ. `meanwhile()`
    is called before each look (e.g. to start a run again that failed)."""
    deadline = time.monotonic() + timeout
    while True:
        meanwhile()
        msgs = read_topic(kafka.bootstrap_servers, topic)
        with server.connect() as conn:
            want = source_rows(conn, table)
        got = replay(msgs)
        if got == want:
            check_stream(msgs, partition_count(kafka.bootstrap_servers, topic))
            return msgs
        if time.monotonic() > deadline:
            differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            raise AssertionError(f"{topic} replayed differs from {table} after {timeout:g} s in {len(differ)} keys "
                                 f"(of {len(want)}), e.g. {[(k, got.get(k), want.get(k)) for k in differ[:3]]}")
        time.sleep(3)

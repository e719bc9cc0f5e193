"""Tables without a key under SIGKILL: `obsync run` killed at random moments of full (and incremental) sync while a
writer deletes and updates rows, then the topic replayed as a multiset of row images and compared with the table.

A keyless table's rows have no identity but their image, so the topic is replayed as a multiset: snapshot rows
and inserts add their image, deletes remove one matching image, updates replace one. On MariaDB (no read
point) every rescan of the table is a new attempt: the topic must hold at least every row of the table, any
extra copy from another attempt, at a position of its own. On OceanBase (one SCN) the topic must hold exactly
the table as of the snapshot's SCN.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from obsync.core.positions import SnapshotPosition, position_from_header
from tests.helpers.kafka import Msg, read_topic
from tests.helpers.tasks import obsync_cmd, run_obsync, unique, write_task

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).parents[2]
Image = tuple[str | None, ...]


def image(struct: dict[str, str | None]) -> Image:
    return (struct["n"], struct["grp"], struct["note"])


def table_images(conn, table: str, scn: int | None = None) -> Counter[Image]:
    at = "" if scn is None else f" AS OF SNAPSHOT {scn}"
    with conn.cursor() as cur:
        cur.execute(f"SELECT n, grp, note FROM {table}{at}")
        return Counter((str(n), str(g), note) for n, g, note in cur.fetchall())


def ordered(msgs: list[Msg]) -> list[Msg]:
    """All partitions merged in position order (a task's positions are totally ordered)."""
    return sorted(msgs, key=lambda m: (position_from_header(m.headers["obsync.pos"]).sort_key,
                                       int(m.headers["obsync.seq"])))


def replay(msgs: list[Msg]) -> Counter[Image]:
    """The topic as a multiset of row images: rows and inserts add, deletes remove one, updates replace one.
    A delete or update of an image the topic does not hold (a row the snapshot did not see) removes nothing."""
    rows: Counter[Image] = Counter()
    for m in ordered(msgs):
        v = json.loads(m.value)
        kind = v["recordType"]
        if kind in ("DELETE", "UPDATE") and rows[image(v["prevStruct"])] > 0:
            rows[image(v["prevStruct"])] -= 1
        if kind in ("ROW", "INSERT", "UPDATE"):
            rows[image(v["postStruct"])] += 1
    return +rows


def check_positions(msgs: list[Msg]) -> dict[int, int]:
    """No position written twice; a snapshot row image at most once per scan attempt. Rows per attempt."""
    idents = Counter((m.headers["obsync.pos"], m.headers["obsync.seq"]) for m in msgs)
    twice = [i for i, k in idents.items() if k > 1]
    assert not twice, f"{len(twice)} positions written twice, e.g. {twice[:3]}"
    per_attempt: Counter[tuple[int, Image]] = Counter()
    for m in msgs:
        pos = position_from_header(m.headers["obsync.pos"])
        if isinstance(pos, SnapshotPosition):
            per_attempt[(pos.key[0], image(json.loads(m.value)["postStruct"]))] += 1
    again = [k for k, n in per_attempt.items() if n > 1]
    assert not again, f"{len(again)} row images written twice by one attempt, e.g. {again[:3]}"
    return dict(Counter(a for a, _ in per_attempt.elements()))


def _writer(conn, table: str, stop: threading.Event, seed: int, inserts: bool) -> None:
    """Deletes (which shift the row numbers of everything after them), updates and inserts, until `stop`."""
    rnd = random.Random(seed)
    next_n = 1_000_000
    with conn.cursor() as cur:
        while not stop.is_set():
            r = rnd.random()
            if r < 0.45:
                cur.execute(f"DELETE FROM {table} WHERE n %% 101 = %s LIMIT 3", (rnd.randrange(101),))
            elif r < 0.85 or not inserts:
                cur.execute(f"UPDATE {table} SET grp = grp + 1, note = %s WHERE n %% 1009 = %s",
                            (f"u{rnd.random():.9f}", rnd.randrange(1009)))
            else:
                cur.execute(f"INSERT INTO {table} VALUES (%s, 0, 'new'), (%s, 0, 'new')", (next_n, next_n + 1))
                next_n += 2
            time.sleep(0.02)


STARTED = ", state in "  # `obsync run` prepared the task (its "..., state in DIR" line): the dataflow starts next
FULL_SYNC_DONE = "full sync done"


def _kill_runs(tmp_path: Path, task: Path, kills: list[tuple[int, int, str, float]]) -> None:
    """`obsync run` once per kill (rows/s, epoch seconds, log line, seconds): full sync limited to that many
    rows/s and state snapshotted that often (the user may change both between runs), SIGKILLed that many
    seconds after the run logs that line."""
    log = tmp_path / "obsync.log"
    for rps, epoch, needle, wait in kills:
        conf = yaml.safe_load(task.read_text())
        conf["limits"] = {"full": {"rps": rps}}
        conf["epoch_seconds"] = epoch
        task.write_text(yaml.safe_dump(conf))
        before = log.read_text().count(needle) if log.exists() else 0
        with open(log, "ab") as err:
            proc = subprocess.Popen(obsync_cmd("run", str(task)), stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
            deadline = time.monotonic() + 120
            while log.read_text().count(needle) == before:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            time.sleep(wait)
            assert proc.poll() is None, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def test_keyless_table_loses_no_row_under_sigkills_on_mariadb(tmp_path, mariadb, kafka):
    db = unique("heap")
    conn = mariadb.connect(autocommit=True)
    table = f"{db}.heap"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {table} (n INT NOT NULL, grp INT NOT NULL, note VARCHAR(40) NULL)")
        cur.execute(f"INSERT INTO {table} SELECT seq, MOD(seq, 7), CONCAT('seed', seq) FROM {db}.seq_1_to_24000")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[table],
                      snapshot={"batch_size": 100})
    writer_conn = mariadb.connect(autocommit=True)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(writer_conn, table, stop, 7, True), daemon=True)
    writer.start()
    rnd = random.Random(12)
    try:
        # Two runs at 1,000 rows/s, state snapshotted every second, killed after 3.5-5 s (rows up to 5,000 of
        # 24,000); then three at 4,000 rows/s killed after 2-4 s, before their first snapshot (every 10 s),
        # further into the table: each resumes from the state the one before resumed from, after rows that one
        # wrote, as does the run that finishes full sync; it is killed in incremental sync.
        _kill_runs(tmp_path, task, [(1000, 1, STARTED, rnd.uniform(3.5, 5.0)) for _ in range(2)]
                   + [(4000, 10, STARTED, rnd.uniform(2.0, 4.0)) for _ in range(3)]
                   + [(4000, 1, FULL_SYNC_DONE, rnd.uniform(0.5, 2.0))])
    finally:
        stop.set()
        writer.join(30)
        writer_conn.close()
    run_obsync("run", str(task), "--until-caught-up")

    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_heap")
    source = table_images(conn, table)
    missing = source - replay(msgs)
    assert not missing, f"{sum(missing.values())} rows of {sum(source.values())} missing, e.g. {list(missing)[:3]}"
    attempts = check_positions(msgs)
    assert len(attempts) >= 2, f"the kills did not interrupt the scan: attempts {attempts}"
    conn.close()


def test_keyless_table_is_exact_under_sigkills_on_oceanbase(tmp_path, seekdb, kafka):
    db = unique("obheap")
    table = f"{db}.heap"
    conn = seekdb.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {table} (n INT NOT NULL, grp INT NOT NULL, note VARCHAR(40) NULL)")
        rows = [(i, i % 7, f"seed{i}") for i in range(1, 20_001)]
        for i in range(0, len(rows), 2000):
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", rows[i:i + 2000])
    task = write_task(tmp_path / "task.yaml", db_server=seekdb, kafka=kafka, tables=[table],
                      sync={"full": True, "incremental": False}, snapshot={"batch_size": 100})
    writer_conn = seekdb.connect(autocommit=True)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(writer_conn, table, stop, 8, False), daemon=True)
    writer.start()
    rnd = random.Random(13)
    try:
        # Killed after the first state snapshot twice, then before it twice; at most 16,000 rows read.
        _kill_runs(tmp_path, task, [(1000, 1, STARTED, rnd.uniform(3.5, 5.0)) for _ in range(2)]
                   + [(1000, 10, STARTED, rnd.uniform(2.0, 4.0)) for _ in range(2)])
    finally:
        stop.set()
        writer.join(30)
        writer_conn.close()
    run_obsync("run", str(task), "--until-caught-up")

    scn = json.loads((tmp_path / "state" / "start.json").read_text())["plan"]["scn"]
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_heap")
    assert {json.loads(m.value)["recordType"] for m in msgs} == {"ROW"}
    check_positions(msgs)
    assert Counter(image(json.loads(m.value)["postStruct"]) for m in msgs) == table_images(conn, table, scn)
    conn.close()

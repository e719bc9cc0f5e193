"""obsync.runtime.progress: the pure display parts, what the sources and the sink report, lag, and the display."""

from __future__ import annotations

import io
import logging
import time

import pytest

from obsync.app.lifecycle import format_status
from obsync.connectors.kafka.records import OutRecord
from obsync.connectors.mysql.snapshot.plan import Chunk, SnapshotPlan, TablePlan
from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.runtime import metrics
from obsync.runtime.display import RateMeter, TerminalBars, eta_seconds, format_count, format_duration, render_bar
from obsync.runtime.progress import Progress
from obsync.runtime.source_stats import SourceStats


@pytest.fixture(autouse=True)
def task_metrics():
    metrics.configure("t")
    yield
    metrics.reset()


def schema(name: str) -> TableSchema:
    return TableSchema("shop", name, (Column("id", "int", "int"),), ("id",))


def plan_of(**tables: tuple[int, int]) -> SnapshotPlan:
    """name -> (estimated rows, chunks)."""
    tps, chunks = [], []
    for name, (est, n) in tables.items():
        ids = tuple(f"shop.{name}/{i:04d}" for i in range(n))
        tps.append(TablePlan(schema(name), "key", (), est, ids))
        chunks += [Chunk(c, f"shop.{name}") for c in ids]
    return SnapshotPlan("mariadb", 100, tuple(tps), tuple(chunks))


class FakeChunk:
    def __init__(self, chunk_id: str, rows: int = 0, done: bool = False) -> None:
        self.chunk_id, self.rows_read, self.done = chunk_id, rows, done

    def read(self, stats: SourceStats, n: int, done: bool = False) -> None:
        self.rows_read += n
        self.done = done
        stats.chunk_read(self, n)


class FakeLogReader:
    heartbeat = 1.0

    def __init__(self, file: str = "mysql-bin.000003", pos: int = 1000) -> None:
        self.state = {"file": file, "pos": pos}
        self.reconnects = 0
        self.last_event_time: float | None = time.monotonic()
        self.queued = 0

    def resume_state(self):
        return dict(self.state)

    def status(self):
        return {"queued_batches": self.queued}


def change(table: TableSchema | None, op: Op, pos: int, commit_time: float | None = None) -> Change:
    return Change(op, table, LogPosition("mysql-bin.000003", pos, 0), after={"id": pos},
                  commit_time=commit_time)


def record(topic: str, position, commit_time: float | None = None, value: bytes = b"v") -> OutRecord:
    return OutRecord(topic, 0, b"k", value, position, 0, commit_time)


# -- pure helpers ------------------------------------------------------------------------------------------

def test_format_count_and_duration():
    assert [format_count(n) for n in (0, 999, 12_345, 99_999, 123_456, 12_345_678, 2.5e9)] == [
        "0", "999", "12,345", "99,999", "123.5k", "12.35M", "2.5G"]
    assert [format_duration(s) for s in (0, 4.4, 59, 60, 185, 3600, 7380, 90_000, None, -1, float("nan"))] == [
        "0s", "4s", "59s", "1m00s", "3m05s", "1h00m", "2h03m", "1d01h", "?", "?", "?"]


def test_eta():
    assert eta_seconds(50, 100, 10.0) == 5.0
    assert eta_seconds(100, 100, None) == 0.0
    assert eta_seconds(150, 100, 1.0) == 0.0
    assert eta_seconds(50, 100, None) is None and eta_seconds(50, 100, 0.0) is None


def test_render_bar():
    assert render_bar("shop.orders", 12_345, 50_000, 4_100.0, width=10) == (
        "shop.orders [##--------]  24.7%  12,345/50,000 rows  4,100 rows/s  ETA 9s")
    assert render_bar("t", 0, 50_000, None, width=4, label_width=5) == "t     [----]   0.0%  0/50,000 rows  waiting"
    assert render_bar("t", 300, 300, None, finished=True, width=4) == "t [####] 100.0%  300/300 rows  done"
    # the estimate was low: full bar, not 100% until the chunks are done; done shows the real count
    assert render_bar("t", 120, 100, 10.0, width=4) == "t [###-]  99.9%  120/100 rows  10 rows/s  ETA 0s"
    assert render_bar("t", 120, 100, None, finished=True, width=4) == "t [####] 100.0%  120/120 rows  done"
    # no estimate
    assert render_bar("t", 10, 0, 5.0, width=4) == "t [----]     ?%  10 rows  5 rows/s  ETA ?"


def test_rate_meter_covers_its_window():
    m = RateMeter(window=10.0)
    assert m.rate() is None
    m.add(0.0, 0)
    assert m.rate() is None
    m.add(1.0, 100)
    assert m.rate() == 100.0
    for t in range(2, 31):
        m.add(float(t), 100 * t if t <= 20 else 2000)  # 100/s until t=20, then stopped
    assert m.rate() == 0.0  # the last 10 s saw nothing
    m.add(31.0, 2500)
    assert m.rate() == 50.0  # (2500 - 2000) over the 10 s since the sample at t=21


# -- what the sources report -------------------------------------------------------------------------------

def test_full_sync_rows_per_table_with_a_resumed_chunk():
    stats = SourceStats()
    stats.snapshot_planned(plan_of(orders=(500, 3), items=(120, 1)))
    assert stats.phase == "full" and metrics.sample("obsync_phase", obsync_phase="full") == 1
    assert metrics.sample("obsync_full_sync_rows_estimated", table="shop.orders") == 500
    assert metrics.sample("obsync_full_sync_chunks_total", table="shop.orders") == 3
    assert metrics.sample("obsync_full_sync_rows_done", table="shop.orders") == 0
    # chunk 0 resumes after 100 rows read by an earlier run; chunk 2 was finished by it
    c0, c1 = FakeChunk("shop.orders/0000", rows=100), FakeChunk("shop.orders/0001")
    c2 = FakeChunk("shop.orders/0002", rows=150, done=True)
    for c in (c0, c1, c2):
        stats.chunk_read(c, 0)
    assert metrics.sample("obsync_full_sync_rows_done", table="shop.orders") == 250
    assert metrics.sample("obsync_full_sync_chunks_done", table="shop.orders") == 1
    c0.read(stats, 40)
    c0.read(stats, 10, done=True)
    c1.read(stats, 100)
    stats.chunk_read(c0, 0)  # finishing again (StreamDone) counts nothing twice
    assert metrics.sample("obsync_full_sync_rows_done", table="shop.orders") == 400
    assert metrics.sample("obsync_full_sync_chunks_done", table="shop.orders") == 2
    assert metrics.sample("obsync_rows_read_total", table="shop.orders", source="snapshot") == 150  # this run
    assert stats.snapshot_rows == 150
    [orders, items] = stats.full_sync()
    assert (orders.table, orders.done, orders.estimated, orders.chunks_done, orders.finished) == (
        "shop.orders", 400, 500, 2, False)
    assert (items.table, items.done, items.finished) == ("shop.items", 0, False)


def test_an_ordinal_chunk_restarting_its_scan_counts_down():
    stats = SourceStats()
    stats.snapshot_planned(plan_of(heap=(1000, 1)))
    c = FakeChunk("shop.heap/0000", rows=0)
    c.read(stats, 300)
    c.rows_read = 0  # a reconnect on MySQL: the scan restarts under a new attempt
    c.read(stats, 100)
    assert metrics.sample("obsync_full_sync_rows_done", table="shop.heap") == 100
    assert metrics.sample("obsync_rows_read_total", table="shop.heap", source="snapshot") == 400


def test_log_polls_count_row_changes_per_table_bytes_and_position():
    stats = SourceStats()
    reader = FakeLogReader(pos=1000)
    orders, items = schema("orders"), schema("items")
    stats.log_polled(reader, [])
    assert stats.phase == "incremental" and metrics.sample("obsync_phase", obsync_phase="incremental") == 1
    assert metrics.sample("obsync_log_position_offset", stage="read") == 1000
    assert metrics.sample("obsync_log_position_file_number", stage="read") == 3
    reader.state["pos"] = 5000
    batch = [change(orders, Op.INSERT, 1100), change(orders, Op.UPDATE, 1200), change(items, Op.DELETE, 1300),
             change(orders, Op.INSERT, 1400), change(orders, Op.DDL, 1500), change(None, Op.DDL, 1600)]
    stats.log_polled(reader, batch)
    assert metrics.sample("obsync_rows_read_total", table="shop.orders", source="log") == 3
    assert metrics.sample("obsync_rows_read_total", table="shop.items", source="log") == 1
    assert metrics.sample("obsync_log_bytes_read_total") == 4000
    assert metrics.sample("obsync_log_position_offset", stage="read") == 5000
    reader.state = {"file": "mysql-bin.000004", "pos": 300}  # rotated
    reader.reconnects = 2
    stats.log_polled(reader, [])
    assert metrics.sample("obsync_log_bytes_read_total") == 4300
    assert metrics.sample("obsync_log_position_file_number", stage="read") == 4
    assert metrics.sample("obsync_errors_total", kind="source_reconnect") == 2


# -- the sink's side ---------------------------------------------------------------------------------------

def test_written_per_topic_with_its_table_and_the_newest_position():
    stats = SourceStats()
    p = Progress(stats=stats, topic_of={("shop", "orders"): "T_orders", ("shop", "items"): "T_items",
                                        ("shop", "a"): "T_shared", ("shop", "b"): "T_shared"})
    now = time.time()
    p.wrote(record("T_orders", SnapshotPosition("shop.orders/0000", (5,))), 10, 1000)
    p.wrote(record("T_orders", LogPosition("mysql-bin.000003", 900, 1), now - 2), 5, 50)
    p.wrote(record("T_items", LogPosition("mysql-bin.000003", 700, 0), now - 3), 2, 20)  # an older lane batch
    p.wrote(record("T_shared", LogPosition("mysql-bin.000003", 800, 0), now - 1), 1, 1)
    p.skipped(4)
    assert metrics.sample("obsync_messages_written_total", topic="T_orders", table="shop.orders") == 15
    assert metrics.sample("obsync_bytes_written_total", topic="T_orders", table="shop.orders") == 1050
    assert metrics.sample("obsync_messages_written_total", topic="T_items", table="shop.items") == 2
    assert metrics.sample("obsync_messages_written_total", topic="T_shared", table="") == 1
    assert metrics.sample("obsync_messages_skipped_total") == 4
    assert metrics.sample("obsync_log_position_offset", stage="written") == 900  # the newest, not the last call
    assert metrics.sample("obsync_commit_to_ack_seconds_count") == 3
    assert p.rows == 18 and p.bytes == 1071 and p.dropped == 4
    assert p.written_by_topic() == {"T_orders": (15, 1050), "T_items": (2, 20), "T_shared": (1, 1)}


def test_with_acknowledgements_only_acked_messages_count_and_lag_runs_to_the_ack():
    stats = SourceStats()
    p = Progress(stats=stats, topic_of={("shop", "orders"): "T"})
    p.use_acks()
    t0 = time.time()
    p.wrote(record("T", LogPosition("mysql-bin.000003", 900, 0), t0 - 5), 3, 30)
    assert metrics.sample("obsync_messages_written_total", topic="T", table="shop.orders") is None
    assert p.lag_seconds() == pytest.approx(5, abs=1)  # waiting for its acknowledgement: its age
    for _ in range(2):
        p.acked("T", 10)
    assert metrics.sample("obsync_commit_to_ack_seconds_count") in (None, 0)  # not all three yet
    p.acked("T", 10)
    assert metrics.sample("obsync_messages_written_total", topic="T", table="shop.orders") == 3
    assert metrics.sample("obsync_bytes_written_total", topic="T", table="shop.orders") == 30
    assert metrics.sample("obsync_commit_to_ack_seconds_count") == 1
    assert 5 <= metrics.sample("obsync_commit_to_ack_seconds_sum") < 7


def test_lag_is_unknown_before_incremental_sync_and_zero_once_caught_up(monkeypatch):
    stats = SourceStats()
    p = Progress(stats=stats)
    assert p.lag_seconds() is None
    p.wrote(record("T", SnapshotPosition("shop.orders/0000", (1,))), 1, 1)
    assert p.lag_seconds() is None
    reader = FakeLogReader()
    stats.log_polled(reader, [change(schema("orders"), Op.INSERT, 1100)])
    p.wrote(record("T", LogPosition("mysql-bin.000003", 1100, 0), time.time() - 3.0), 1, 1)
    assert p.lag_seconds() == pytest.approx(3.0, abs=0.5)  # the log source is busy: the last delivery's lag
    stats.log_polled(reader, [])
    stats.log_handout_at = time.monotonic() - 2  # the last changes were handed out 2 s ago
    assert p.lag_seconds() == 0.0
    reader.last_event_time = time.monotonic() - 30  # the stream went silent (no heartbeat either)
    assert p.lag_seconds() == pytest.approx(28, abs=1)
    assert metrics.sample("obsync_lag_seconds") == pytest.approx(28, abs=1)


def test_lag_counts_batches_waiting_while_the_source_is_not_polled():
    stats = SourceStats()
    p = Progress(stats=stats)
    reader = FakeLogReader()
    stats.log_polled(reader, [])
    reader.queued = 3
    stats.log_polled_at = time.monotonic() - 11
    assert p.lag_seconds() == pytest.approx(10, abs=0.5)


# -- the display -------------------------------------------------------------------------------------------

def test_bars_and_lines_during_full_sync():
    stats = SourceStats()
    stats.snapshot_planned(plan_of(orders=(1000, 2), items=(50, 1), empty=(0, 1)))
    p = Progress(stats=stats)
    o0 = FakeChunk("shop.orders/0000")
    t = 100.0
    for _ in range(5):
        p.tick(now=t)
        o0.read(stats, 100)
        t += 1.0
    FakeChunk("shop.items/0000").read(stats, 50, done=True)
    FakeChunk("shop.empty/0000").read(stats, 0, done=True)
    p.tick(now=t)
    lines = p.bar_lines(columns=100)
    assert lines[0].startswith("shop.orders [") and "500/1,000 rows" in lines[0] and "100 rows/s" in lines[0]
    assert "ETA 5s" in lines[0]
    assert lines[1].startswith("shop.items  [") and lines[1].endswith("50/50 rows  done")
    assert lines[2].startswith("shop.empty  [") and lines[2].endswith("0/0 rows  done")
    assert lines[3].startswith("total       [") and "550/1,050 rows" in lines[3]
    assert all(len(line) < 100 for line in lines)
    assert p.full_sync_line().startswith("full sync: 550/1,050 rows (52%), ")
    assert "2/3 tables done; reading shop.orders 500/1,000" in p.full_sync_line()


def test_many_tables_are_summarised():
    stats = SourceStats()
    stats.snapshot_planned(plan_of(**{f"t{i:02d}": (10, 1) for i in range(20)}))
    for i in range(15):
        FakeChunk(f"shop.t{i:02d}/0000").read(stats, 10, done=True)
    lines = Progress(stats=stats).bar_lines(columns=120, max_tables=6)
    assert [line.split()[0] for line in lines[:6]] == [f"shop.t{i:02d}" for i in range(15, 20)] + ["shop.t00"]
    assert lines[6] == "... 14 more tables (14 done)"
    assert lines[7].startswith("total")


def test_periodic_log_lines_without_a_terminal(caplog):
    stats = SourceStats()
    stats.snapshot_planned(plan_of(orders=(1000, 1)))
    p = Progress(interval=5.0, stats=stats, stream=io.StringIO())
    c = FakeChunk("shop.orders/0000")
    caplog.set_level(logging.INFO, logger="obsync.runtime.progress")
    p._last_report = 0.0
    c.read(stats, 400)
    p.tick(now=10.0)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["full sync: 400/1"]
    caplog.clear()
    p.tick(now=12.0)  # within the interval: nothing
    assert not caplog.records
    c.read(stats, 600, done=True)
    reader = FakeLogReader()
    stats.log_polled(reader, [])
    p.wrote(record("T", LogPosition("mysql-bin.000003", 1000, 0), time.time()), 7, 700)
    p._last_report = 0.0
    p.tick(now=20.0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("full sync done: 1,000 rows of 1 tables")
    assert messages[1].startswith("incremental sync: lag ")
    assert "wrote 7 messages" in messages[1] and "read mysql-bin.000003:1000" in messages[1]
    assert "written mysql-bin.000003:1000#0" in messages[1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_bars_redraw_in_place_and_log_lines_print_above():
    term = FakeTerminal()
    bars = TerminalBars(term)
    handler = logging.StreamHandler(term)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        bars.attach_logging()
        bars.draw(["a 1", "b 1"])
        bars.draw(["a 2", "b 2"])
        logging.getLogger("obsync.test").warning("hello")
        bars.detach_logging()
        assert "emit" not in vars(handler)
    finally:
        root.removeHandler(handler)
    erase = "\r\x1b[2A\x1b[J"
    assert term.getvalue() == ("a 1\nb 1\n" + erase + "a 2\nb 2\n" + erase + "hello\n" + "a 2\nb 2\n")


def test_start_on_a_terminal_draws_bars_and_stop_leaves_them(monkeypatch):
    monkeypatch.setattr("obsync.runtime.progress._REDRAW", 0.05)
    term = FakeTerminal()
    stats = SourceStats()
    stats.snapshot_planned(plan_of(orders=(100, 1)))
    p = Progress(stats=stats, stream=term)
    p.start()
    try:
        FakeChunk("shop.orders/0000").read(stats, 40)
        deadline = time.monotonic() + 5
        while "40/100 rows" not in term.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        p.stop()
    assert "shop.orders [" in term.getvalue() and "40/100 rows" in term.getvalue()


def test_a_wait_for_the_source_shows_in_status_and_metrics_while_it_lasts():
    stats = SourceStats()
    progress = Progress(10, stats=stats)
    assert "waiting_for_source" not in progress.status()
    assert metrics.sample("obsync_source_waiting_seconds") == 0
    stats.source_waiting("shop.a/0000", "db.example:3306", "Lost connection to server during query")
    stats.source_waiting("shop.a/0001", "db.example:3306", "cannot connect")
    stats.source_waiting("shop.a/0000", "db.example:3306", "cannot connect")  # still the same wait
    time.sleep(0.05)
    w = progress.status()["waiting_for_source"]
    assert (w["for"], w["error"], w["readers"]) == ("the source db.example:3306", "cannot connect", 2)  # the latest
    assert abs(w["since"] - time.time()) < 60 and w["seconds"] >= 0
    assert metrics.sample("obsync_source_waiting_seconds") >= 0.05
    stats.source_waiting("shop.a/0000", "db.example:3306", None)
    assert progress.status()["waiting_for_source"]["readers"] == 1
    stats.source_waiting("shop.a/0001", "db.example:3306", None)
    assert "waiting_for_source" not in progress.status()
    assert metrics.sample("obsync_source_waiting_seconds") == 0


def test_a_wait_for_kafka_shows_in_status_and_metrics_while_it_lasts():
    progress = Progress(10)
    assert "waiting_for_broker" not in progress.status()
    assert metrics.sample("obsync_broker_waiting_seconds") == 0
    progress.broker_waiting("kafka.example:9092", 120, 30.0, None)
    progress.broker_waiting("kafka.example:9092", 130, 31.0, "kafka.example:9092/1: Connection refused")
    w = progress.status()["waiting_for_broker"]
    assert (w["for"], w["pending"], w["error"]) == ("Kafka kafka.example:9092", 130,
                                                     "kafka.example:9092/1: Connection refused")
    assert 31 <= w["seconds"] < 60 and abs(w["since"] + 31 - time.time()) < 5
    assert metrics.sample("obsync_broker_waiting_seconds") >= 31
    progress.broker_waiting("kafka.example:9092", 0, 0.0, None)
    assert "waiting_for_broker" not in progress.status()
    assert metrics.sample("obsync_broker_waiting_seconds") == 0


def test_obsync_status_words_a_wait_for_kafka_by_what_waits():
    """One message not acknowledged, many, or the read of a partition the sink first meets."""
    progress = Progress(10)
    shown = []
    for pending, reading in ((1, None), (1500, None), (0, "orders[2]")):
        progress.broker_waiting("kafka.example:9092", pending, 31.0, None, reading=reading)
        line = format_status({"name": "t", "state": "running", "state_dir": "/s", "waiting_for_broker":
                              progress.status()["waiting_for_broker"]}).splitlines()[-1]
        shown.append(line.split(" s ", 1)[1])
    assert shown == ["(1 message not acknowledged): no error, the brokers are silent",
                     "(1,500 messages not acknowledged): no error, the brokers are silent",
                     "(reading orders[2] to learn what was written): no error, the brokers are silent"]
    progress.broker_waiting("kafka.example:9092", 0, 0.0, None)
    assert "waiting_for_broker" not in progress.status()


def test_log_changes_encoded_are_counted_per_worker_and_lane_in_status_and_metrics():
    import threading

    from obsync.runtime import metrics

    p = Progress(task="enc")
    assert "log_changes_encoded" not in p.status()  # one worker: nothing encoded by lane
    threads = [threading.Thread(target=p.encoded, args=(lane, n), name=f"w{i}")
               for i, (lane, n) in enumerate([("lane001", 5), ("lane002", 7)])]
    for t in threads:
        t.start()
        t.join()
    p.encoded("lane001", 1)
    enc = p.status()["log_changes_encoded"]
    main = threading.current_thread().name
    assert enc == {"total": 13, "workers": dict(sorted({"w0": 5, "w1": 7, main: 1}.items())),
                   "lanes": {"lane001": 6, "lane002": 7}}
    assert metrics.sample("obsync_log_changes_encoded_total", worker="w1", lane="lane002") == 7

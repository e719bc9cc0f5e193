"""obsync.runtime.metrics: names, labels, the HTTP endpoint, collect hooks, and the cost of recording."""

from __future__ import annotations

import math
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from obsync.core.errors import ConfigError, PositionLostError, SinkError, SourceUnavailable
from obsync.runtime import metrics


@pytest.fixture(autouse=True)
def task_metrics():
    metrics.configure("t1")
    yield
    metrics.reset()


def families() -> dict[str, object]:
    from prometheus_client import generate_latest

    return {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode())}


def test_every_metric_is_prefixed_and_labelled_with_the_task():
    metrics.rows_read("db.t", "snapshot", 5)
    metrics.written("topic", "db.t", 3, 30)
    metrics.error("sink")
    metrics.full_sync_table("db.t", 5, 10, 1, 2)
    metrics.set_log_position("written", 3, 120)
    metrics.commit_to_ack(0.2)
    fams = families()
    assert fams and all(name.startswith("obsync_") for name in fams)
    for fam in fams.values():
        for s in fam.samples:  # type: ignore[attr-defined]  # families() is typed object: prometheus Metric objects
            assert s.labels.get("task") == "t1", s


def test_configure_sets_the_task_up_and_starting():
    assert metrics.sample("obsync_up") == 1
    assert metrics.sample("obsync_task_failed") == 0
    assert metrics.sample("obsync_phase", obsync_phase="starting") == 1
    assert abs(metrics.sample("obsync_start_time_seconds") - time.time()) < 60
    assert math.isnan(metrics.sample("obsync_lag_seconds"))
    metrics.set_phase("incremental")
    assert metrics.sample("obsync_phase", obsync_phase="incremental") == 1
    assert metrics.sample("obsync_phase", obsync_phase="starting") == 0
    metrics.set_up(False, failed=True)
    assert (metrics.sample("obsync_up"), metrics.sample("obsync_task_failed")) == (0, 1)


def test_counters_per_table_and_source():
    metrics.rows_read("db.a", "snapshot", 100)
    metrics.rows_read("db.a", "snapshot", 50)
    metrics.rows_read("db.a", "log", 7)
    metrics.rows_read("db.b", "log", 1)
    assert metrics.sample("obsync_rows_read_total", table="db.a", source="snapshot") == 150
    assert metrics.sample("obsync_rows_read_total", table="db.a", source="log") == 7
    assert metrics.sample("obsync_rows_read_total", table="db.b", source="log") == 1
    metrics.written("T_a", "db.a", 10, 1000)
    metrics.written("T_a", "db.a", 5, 10)
    assert metrics.sample("obsync_messages_written_total", topic="T_a", table="db.a") == 15
    assert metrics.sample("obsync_bytes_written_total", topic="T_a", table="db.a") == 1010


def test_reconfigure_forgets_the_previous_task():
    metrics.rows_read("db.a", "log", 7)
    metrics.configure("t2")
    assert metrics.task_label() == "t2"
    assert metrics.sample("obsync_rows_read_total", table="db.a", source="log") is None
    metrics.rows_read("db.a", "log", 1)
    assert metrics.REGISTRY.get_sample_value("obsync_rows_read_total",
                                             {"task": "t2", "table": "db.a", "source": "log"}) == 1
    assert metrics.REGISTRY.get_sample_value("obsync_rows_read_total",
                                             {"task": "t1", "table": "db.a", "source": "log"}) is None


@pytest.mark.parametrize("exc, kind", [
    (SinkError("x"), "sink"), (SourceUnavailable("x"), "source_unavailable"), (ConfigError("x"), "config"),
    (PositionLostError("x"), "position_lost"), (RuntimeError("x"), "internal")])
def test_error_kinds(exc, kind):
    assert metrics.error_kind(exc) == kind


def test_functions_are_read_at_scrape_time():
    lag = [None]
    metrics.set_lag_function(lambda: lag[0])
    assert math.isnan(metrics.sample("obsync_lag_seconds"))
    lag[0] = 1.5
    assert metrics.sample("obsync_lag_seconds") == 1.5
    metrics.set_lag_function(lambda: 1 / 0)  # a failing function reads as NaN, the scrape still works
    assert math.isnan(metrics.sample("obsync_lag_seconds"))
    pos = [None]
    metrics.set_read_position_function(lambda: pos[0])
    assert math.isnan(metrics.sample("obsync_log_position_offset", stage="read"))
    pos[0] = (7, 4096)
    assert metrics.sample("obsync_log_position_file_number", stage="read") == 7
    assert metrics.sample("obsync_log_position_offset", stage="read") == 4096


def test_collect_hooks_run_before_the_metrics_are_read():
    pending = [3]

    def fold():
        if pending[0]:
            metrics.written("T", "db.t", pending[0], 0)
            pending[0] = 0

    metrics.set_collect_hook("fold", fold)
    metrics.set_collect_hook("broken", lambda: 1 / 0)  # ignored
    assert metrics.sample("obsync_messages_written_total", topic="T", table="db.t") == 3


def test_endpoint_serves_the_registry():
    server = metrics.start_metrics_server(0, "127.0.0.1")
    try:
        metrics.rows_read("db.t", "log", 42)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'obsync_rows_read_total{source="log",table="db.t",task="t1"} 42.0' in text
    assert 'obsync_up{task="t1"} 1.0' in text
    assert "python_gc" not in text  # a registry of its own, not the process-wide default


def test_recording_is_a_cached_lookup_per_call():
    """Labelled children are looked up once; a recording call costs microseconds (called per batch)."""
    assert metrics._child(metrics.ROWS_READ, "db.t", "log") is metrics._child(metrics.ROWS_READ, "db.t", "log")
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        metrics.rows_read("db.t", "log", 500)
        metrics.written("T", "db.t", 500, 50_000)
    per_call = (time.perf_counter() - t0) / n / 2
    assert per_call < 20e-6, f"{per_call * 1e6:.1f} us per recording call"
    assert metrics.sample("obsync_rows_read_total", table="db.t", source="log") == 500 * n


def test_task_file_settings():
    from obsync.task.config import parse_task

    base = {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "k:9092"},
            "objects": [{"match": "shop.orders"}]}
    t = parse_task(base)
    assert (t.metrics_port, t.progress_interval) == (0, 10.0)
    t = parse_task({**base, "metrics_port": 9108, "progress_interval": 2.5})
    assert (t.metrics_port, t.progress_interval) == (9108, 2.5)
    for bad in ({"metrics_port": 70000}, {"metrics_port": -1}, {"progress_interval": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            parse_task({**base, **bad})

"""`bench.speed`'s pure parts: the order of its runs and the table of medians and ratios it ends with; and its
sampler's reading of /proc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.e2e import by_kind, descendants, run_queue_seconds, task_files, thread_cpu_seconds, thread_kind
from bench.speed import Figures, budget_us, ceiling, rounds, summary
from bench.stages import Rate


def _figures(processes: int, full: float, incr: float, select_s: float, rss: tuple[int, ...],
             txn_rss: tuple[int, ...] = ()) -> Figures:
    stages = {"select": Rate(100_000, select_s, 0.5), "binlog": Rate(100_000, 2.0, 1.5),
              "encode": Rate(100_000, 1.0, 0.8), "encode/log": Rate(100_000, 1.25, 1.0),
              "produce": Rate(100_000, 0.8, 0.6)}
    cores = {"obsync": 1.0, "source": 0.05, "broker": 0.04}
    return Figures("default", processes, {"full sync": full, "incremental": incr},
                   {"full sync": 20.0, "incremental": 30.0}, {"full sync": cores, "incremental": cores},
                   stages, rss, txn_rss)


def test_rounds_reverse_the_process_counts_every_other_round() -> None:
    assert rounds([1, 2], ["default", "avro"], 2) == [
        (0, "default", 1), (0, "default", 2), (0, "avro", 1), (0, "avro", 2),
        (1, "default", 2), (1, "default", 1), (1, "avro", 2), (1, "avro", 1)]


def test_summary_gives_medians_and_each_runs_ratio_against_the_targets() -> None:
    runs = [_figures(1, 30_000, 50_000, 2.0, (120,), (150,)), _figures(1, 45_000, 40_000, 1.0, (140,)),
            _figures(1, 40_000, 60_000, 1.0, (130,)), _figures(2, 60_000, 45_000, 1.0, (100, 90), (110, 95))]
    lines = summary(runs, 1_000_000, cores=2).splitlines()
    assert lines[0] == "end to end against the stage bounding it (median of 3 runs):"
    # full / select per run: 0.6, 0.45, 0.4 -> 0.45 (not the ratio of the medians, 40k / 100k). The servers
    # leave 2 - 0.09 = 1.91 cores: the target (0.75 x 50k, 100k, 100k rows/s) allows 50.9, 25.5, 25.5 us a row;
    # 20 us a row on 1.91 cores is 95.5k rows/s, 1.91x, 0.95x, 0.95x the select stage
    assert lines[4] == ("| default | 1 | full sync | 40.0k | select | 100.0k | 0.45x | 0.75x not met | 20.0 us | "
                        "25.5 us | 0.95x | 1.00 / 0.05 / 0.04 | 140 |")
    # 1.0 x 50k rows/s on 1.91 cores: 38.2 us a row; 30 us a row there is 63.7k rows/s, 1.27x
    assert lines[5] == ("| default | 1 | incremental | 50.0k | binlog | 50.0k | 1.00x | 1.00x met | 30.0 us | "
                        "38.2 us | 1.27x | 1.00 / 0.05 / 0.04 | 140 |")
    assert lines[6] == ("| default | 2 | full sync | 60.0k | select | 100.0k | 0.60x | 0.75x not met | 20.0 us | "
                        "25.5 us | 0.95x | 1.00 / 0.05 / 0.04 | 100 / 90 |")
    assert lines[13] == ("| default | 100.0k (5.0 us) | 50.0k (15.0 us) | 100.0k (8.0 us) | 80.0k (10.0 us) | "
                         "125.0k (6.0 us) |")
    assert lines[15].startswith("2 cores; 'target allows': the obsync CPU a row may cost")
    assert lines[17:] == [
        "peak RSS of a task process, largest: 140 MB (issue 15: < 300 MB: met)",
        "one 1,000,000-row transaction, peak RSS MB per task process: default, 1 process: 150; default, "
        "2 processes: 110 / 95 (issue 15: < 300 MB: met)"]


def test_the_cpu_budget_of_a_target_and_the_ratio_a_cost_allows() -> None:
    # 2 cores, the servers using 0.2: 1.8 cores for obsync; 90k rows/s leaves 20 us a row
    assert budget_us(2, 0.2, 90_000) == pytest.approx(20.0)
    # 15 us a row on 1.8 cores is 120k rows/s: 0.8x a stage doing 150k
    assert ceiling(2, 0.2, 15.0, 150_000) == pytest.approx(0.8)
    # servers taking every core leave obsync nothing, never a negative budget
    assert budget_us(2, 2.5, 90_000) == 0.0
    assert ceiling(2, 2.5, 15.0, 150_000) == 0.0


def test_thread_cpu_is_told_by_the_kind_the_threads_name_gives() -> None:
    threads = {1: ("timely:work-0", 2.0), 2: ("timely:work-1", 1.5), 3: ("timely:send-0", 0.1),
               4: ("rdk:broker1", 0.7), 5: ("rdk:main", 0.1), 6: ("python", 0.3), 7: ("obsync-binlog", 1.2)}
    kinds = by_kind({tid: (thread_kind(name), cpu) for tid, (name, cpu) in threads.items()})
    assert list(kinds) == ["engine workers", "Python threads", "librdkafka", "engine I/O"]
    assert kinds == pytest.approx({"engine workers": 3.5, "Python threads": 1.5, "librdkafka": 0.8,
                                   "engine I/O": 0.1})


def test_the_sampler_reads_nothing_of_a_process_that_has_exited():
    """bench.e2e's sampler lists a process's threads while it may exit: its /proc entry is then gone, and the
    sampler must go on (a glob of a vanished directory raised, and the sampler's thread died mid-run)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    threads: dict[int, tuple[str, float]] = {}
    thread_cpu_seconds(proc.pid, threads)
    assert task_files(proc.pid, "stat") == [] and descendants(proc.pid) == [] and threads == {}
    assert run_queue_seconds(proc.pid, {}) == 0
    assert os.getpid() in {int(p.parent.name) for p in task_files(os.getpid(), "stat")}  # the main thread's id


def test_a_bench_format_may_carry_format_options():
    from bench.e2e import format_spec

    assert format_spec("default") == ("default", {})
    assert format_spec("debezium:schemas_enable=false") == ("debezium", {"schemas_enable": False})
    assert format_spec("canal:a=1,b=x") == ("canal", {"a": 1, "b": "x"})
    with pytest.raises(SystemExit, match="'schemas_enable' is not OPTION=VALUE"):
        format_spec("debezium:schemas_enable")

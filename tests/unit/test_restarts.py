"""Restarting the task after a fault of Kafka's that a new producer clears (`obsync.app.supervisor`), and which
faults those are (`obsync.connectors.kafka.faults`). The supervisor is tested with real child processes that
exit with the restart status; the classification with librdkafka's own error values."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from obsync.app.supervisor import RESTARTS_ENV, Backoff, Restarts, supervise
from obsync.connectors.kafka.faults import restartable
from obsync.core.errors import BrokerFault, SinkError, StateError
from obsync.task.state import TaskState


@pytest.mark.parametrize("code", [KafkaError.UNKNOWN, KafkaError.PRODUCER_FENCED, KafkaError._FENCED,
                                  KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.UNKNOWN_PRODUCER_ID,
                                  KafkaError.INVALID_PRODUCER_EPOCH])
def test_answers_that_void_the_idempotent_producer_are_restartable(code):
    assert restartable(KafkaError(code, "x", fatal=True))
    assert restartable(KafkaError(code, "x"))


@pytest.mark.parametrize("code", [KafkaError._MSG_TIMED_OUT, KafkaError.MSG_SIZE_TOO_LARGE,
                                  KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART,
                                  KafkaError.INVALID_RECORD, KafkaError.CLUSTER_AUTHORIZATION_FAILED])
def test_errors_a_new_producer_meets_again_are_not(code):
    assert not restartable(KafkaError(code, "x"))


def test_a_fatal_error_is_judged_by_its_cause():
    fatal = KafkaError(KafkaError._FATAL, "fatal")
    assert restartable(fatal, KafkaError(KafkaError.PRODUCER_FENCED, "fenced", fatal=True))
    assert not restartable(fatal, KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, "denied", fatal=True))
    assert restartable(fatal, None)  # cause unknown: a restart, bounded by target.patience


def test_a_broker_fault_is_a_transient_sink_error():
    assert issubclass(BrokerFault, SinkError) and BrokerFault.transient and not SinkError.transient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_restarts_back_off_and_give_up_once_the_patience_from_the_first_failure_is_spent():
    clock = Clock()
    r = Restarts(100.0, Backoff(1.0, 30.0), clock)
    delays = []
    for _ in range(6):
        d = r.failed(2.0, "fenced")
        assert d is not None
        delays.append(d)
        clock.now += d + 2.0
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert (r.count, r.streak, r.last_reason) == (6, 6, "fenced")
    # 73 s since the first failure: the next delay is cut to what the patience leaves
    clock.now = 1000.0 + 95.0
    assert r.failed(2.0, "fenced") == pytest.approx(5.0)
    clock.now = 1000.0 + 100.0
    assert r.failed(2.0, "fenced") is None
    assert r.count == 7


def test_a_child_that_ran_a_minute_had_recovered_so_its_failure_starts_a_new_streak():
    clock = Clock()
    r = Restarts(10.0, Backoff(1.0, 30.0), clock)
    assert r.failed(1.0, "a") == 1.0
    clock.now += 300.0
    assert r.failed(60.0, "b") == 1.0  # not given up, though 300 s > patience since the first failure
    assert (r.count, r.streak) == (2, 1)


def test_patience_forever_never_gives_up():
    clock = Clock()
    r = Restarts(None, Backoff(1.0, 30.0), clock)
    for _ in range(50):
        assert r.failed(0.1, "x") is not None
        clock.now += 1000.0


# A child standing in for `obsync run`'s task process: records the restarts it was told of, fails with the
# restart status (recording its error in status.json as `obsync run` does) while FAILS says, then exits with FINAL.
CHILD = """
import json, os, sys, time
state = sys.argv[1]
runs = os.path.join(state, "runs")
with open(runs, "a") as f:
    f.write(os.environ["OBSYNC_RESTARTS"] + " " + os.environ.get("OBSYNC_RESTART_REASON", "-") + "\\n")
n = sum(1 for _ in open(runs))
if n <= int(os.environ["FAILS"]):
    with open(os.path.join(state, "status.json"), "w") as f:
        json.dump({"state": "failed", "error": f"write to t[0] failed: Unknown broker error ({n})"}, f)
    sys.exit(75)
time.sleep(float(os.environ.get("LINGER", "0")))
sys.exit(int(os.environ["FINAL"]))
"""


@pytest.fixture
def handlers() -> Iterator[None]:
    """`supervise` installs signal handlers: put the test process's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def _state(tmp_path: Path) -> TaskState:
    state = TaskState(tmp_path / "state")
    state.make()
    (state.root / "task.json").write_text(json.dumps({"name": "t"}))
    return state


QUICK = Backoff(0.05, 0.2)


def _run(tmp_path: Path, monkeypatch, fails: int, final: int, patience: float | None = 30.0,
         backoff: Backoff = QUICK) -> tuple[int, list[str], TaskState]:
    state = _state(tmp_path)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    monkeypatch.setenv("FAILS", str(fails))
    monkeypatch.setenv("FINAL", str(final))
    rc = supervise([str(state.root)], state, patience, backoff, program=[sys.executable, str(script)])
    runs = (state.root / "runs").read_text().splitlines()
    return rc, runs, state


def test_a_child_failing_with_the_restart_status_is_started_again_told_how_often_and_why(
        tmp_path, monkeypatch, handlers, caplog):
    monkeypatch.delenv(RESTARTS_ENV, raising=False)
    with caplog.at_level(logging.WARNING, "obsync.app.supervisor"):
        rc, runs, _ = _run(tmp_path, monkeypatch, fails=2, final=0)
    assert rc == 0
    assert runs == ["0 -", "1 write to t[0] failed: Unknown broker error (1)",
                    "2 write to t[0] failed: Unknown broker error (2)"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "a fault of Kafka's that a restart clears (write to t[0] failed: Unknown broker error (1))" in lines[0]
    assert "restart 1;" in lines[0] and "restart 2;" in lines[1]


def test_the_childs_own_exit_status_is_kept_after_restarts(tmp_path, monkeypatch, handlers):
    rc, runs, _ = _run(tmp_path, monkeypatch, fails=1, final=3)
    assert (rc, len(runs)) == (3, 2)


def test_other_failures_are_not_restarted(tmp_path, monkeypatch, handlers):
    rc, runs, _ = _run(tmp_path, monkeypatch, fails=0, final=2)
    assert (rc, len(runs)) == (2, 1)


def test_failures_beyond_the_patience_fail_the_task_with_the_last_error(tmp_path, monkeypatch, handlers, caplog):
    with caplog.at_level(logging.ERROR, "obsync.app.supervisor"):
        rc, runs, state = _run(tmp_path, monkeypatch, fails=1000, final=0, patience=0.6, backoff=Backoff(0.1, 0.1))
    assert rc == 2
    assert 2 <= len(runs) < 20
    status = json.loads((state.root / "status.json").read_text())
    assert status["state"] == "failed" and status["restarts"] == len(runs) - 1
    assert status["error"] == f"write to t[0] failed: Unknown broker error ({len(runs)})"
    assert "target.patience (0.6 s) ran out: not restarting it" in caplog.records[-1].getMessage()


def test_a_stop_while_waiting_to_restart_ends_the_run_cleanly_and_the_lock_names_the_supervisor(
        tmp_path, monkeypatch, handlers):
    state = _state(tmp_path)
    seen: list[str] = []

    def stop_when_restarting() -> None:
        deadline = time.monotonic() + 20
        status = state.root / "status.json"
        while time.monotonic() < deadline:
            try:
                if json.loads(status.read_text()).get("state") == "restarting":
                    seen.append((state.root / ".run.lock").read_text())
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    t = threading.Thread(target=stop_when_restarting)
    t.start()
    rc, runs, _ = _run(tmp_path, monkeypatch, fails=1000, final=0, backoff=Backoff(30.0, 30.0))
    t.join()
    assert rc == 0 and len(runs) == 1
    assert seen == [str(os.getpid())]
    status = json.loads((state.root / "status.json").read_text())
    assert (status["state"], status["restarts"]) == ("stopped", 1)



# A stand-in for the task process `obsync run -i K` of a cluster on this host: its run log is a line per start
# (process, restarts before it, why the last was, whether it was started as a task process, the cluster's size);
# process 0 fails with the restart status on its first FAILS starts, after the others have started (its peers
# then stop as Bytewax's do: here when signalled), or with KILLED set kills itself with that signal; then every
# process exits FINAL.
CLUSTER_CHILD = """
import json, os, signal, sys, time
argv = sys.argv
state, k = argv[argv.index("--state-dir") + 1], int(argv[argv.index("--process-id") + 1])
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})  # as a task process's handlers do
os.makedirs(state, exist_ok=True)
with open(os.path.join(state, "task.json"), "w") as f:
    json.dump({"name": "t"}, f)
runs = os.path.join(os.path.dirname(state), "runs")
with open(runs, "a") as f:
    f.write(f"{k} {os.environ['OBSYNC_RESTARTS']} {os.environ.get('OBSYNC_RESTART_REASON', '-')} "
            f"{os.environ.get('OBSYNC_RUN_CHILD')} {argv[argv.index('--addresses') + 1].count(';') + 1}\\n")
n = int(os.environ["OBSYNC_RESTARTS"])
if os.environ.get("KILLED") and k == 1:
    time.sleep(0.3)
    os.kill(os.getpid(), int(os.environ["KILLED"]))
if n < int(os.environ["FAILS"]):
    if k == 0:
        time.sleep(0.3)
        with open(os.path.join(state, "status.json"), "w") as f:
            json.dump({"state": "failed", "error": f"write to t[0] failed: Unknown broker error ({n + 1})"}, f)
        sys.exit(75)
    time.sleep(30)  # a peer: stopped by the cluster's SIGTERM
    sys.exit(9)
time.sleep(0.2)
sys.exit(int(os.environ["FINAL"]))
"""


def _cluster(tmp_path: Path, monkeypatch, fails: int, final: int = 0, patience: float | None = 30.0,
             processes: int = 3, backoff: Backoff = QUICK) -> tuple[int, list[list[str]], TaskState]:
    import argparse

    from obsync.app.local_cluster import run_local_cluster

    state = _state(tmp_path)
    script = tmp_path / "cluster_child.py"
    script.write_text(CLUSTER_CHILD)
    monkeypatch.delenv(RESTARTS_ENV, raising=False)
    monkeypatch.setenv("FAILS", str(fails))
    monkeypatch.setenv("FINAL", str(final))
    args = argparse.Namespace(processes=processes, process_id=None, addresses=None, task=str(tmp_path / "task.yaml"),
                              stop_timeout=30.0, until_caught_up=True, workers=None, metrics_port=None,
                              metrics_host="127.0.0.1", verbose=False)
    rc = run_local_cluster(args, state, patience, backoff, program=[sys.executable, str(script)])
    runs = [line.split(" ", 1) for line in (state.root / "runs").read_text().splitlines()]
    return rc, sorted(runs, key=lambda r: (r[1].split()[0], r[0])), state


def test_a_cluster_on_this_host_starts_every_process_again_when_one_fails_with_the_restart_status(
        tmp_path, monkeypatch, handlers, caplog):
    with caplog.at_level(logging.WARNING, "obsync.app.local_cluster"):
        rc, runs, _ = _cluster(tmp_path, monkeypatch, fails=2)
    assert rc == 0
    # three starts of every process, each told the restarts before it and why the last was, and not to restart alone
    why = ["-", "write to t[0] failed: Unknown broker error (1)", "write to t[0] failed: Unknown broker error (2)"]
    assert runs == [[str(k), f"{n} {why[n]} 1 3"] for n in range(3) for k in range(3)]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(line.startswith("process 0 of the cluster failed with a fault of Kafka's that a "
                                                   "restart clears (write to t[0]") for line in lines)
    assert "restart 1;" in lines[0] and "restart 2;" in lines[1]


def test_a_cluster_on_this_host_keeps_its_processes_failure_and_gives_up_after_the_patience(
        tmp_path, monkeypatch, handlers, caplog):
    rc, runs, _ = _cluster(tmp_path / "a", monkeypatch, fails=1, final=3)
    assert rc == 3 and len(runs) == 6  # restarted once, then the processes' own failure
    with caplog.at_level(logging.ERROR, "obsync.app.local_cluster"):
        rc, runs, _ = _cluster(tmp_path / "b", monkeypatch, fails=1000, patience=0.5)
    assert rc == 2 and 2 <= len(runs) // 3 < 20
    assert "target.patience (0.5 s) ran out: not starting the cluster again" in caplog.records[-1].getMessage()


def test_a_stop_while_a_cluster_on_this_host_waits_to_start_again_ends_the_run_cleanly(
        tmp_path, monkeypatch, handlers, caplog):
    def stop_when_waiting() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("starting every process again" in r.getMessage()
                                                       for r in list(caplog.records)):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=stop_when_waiting)
    with caplog.at_level(logging.INFO, "obsync.app.local_cluster"):
        t.start()
        began = time.monotonic()
        rc, runs, _ = _cluster(tmp_path, monkeypatch, fails=1000, backoff=Backoff(30.0, 30.0))
        t.join()
    assert rc == 0 and len(runs) == 3 and time.monotonic() - began < 15
    assert "stopped (SIGTERM) while waiting to start the cluster again" in caplog.records[-1].getMessage()


def test_the_metrics_endpoint_says_restarting_during_the_backoff_and_is_the_tasks_again_after(
        tmp_path, monkeypatch, handlers):
    """Between a failure and its restart the task's process is gone; a scrape then finds the task restarting (not
    a refused connection), and the port is free for the restarted process."""
    import socket
    import urllib.request

    from obsync.app.local_cluster import free_ports
    from obsync.app.supervisor import MetricsAt

    state = _state(tmp_path)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    monkeypatch.delenv(RESTARTS_ENV, raising=False)
    monkeypatch.setenv("FAILS", "1")
    monkeypatch.setenv("FINAL", "0")
    [port] = free_ports(1)
    scraped: list[str] = []

    def scrape() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not scraped:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    scraped.append(r.read().decode())
            except OSError:
                time.sleep(0.05)

    t = threading.Thread(target=scrape)
    t.start()
    rc = supervise([str(state.root)], state, 30.0, Backoff(3.0, 3.0), program=[sys.executable, str(script)],
                   metrics_at=MetricsAt("shop", "127.0.0.1", port))
    t.join()
    assert rc == 0 and len((state.root / "runs").read_text().splitlines()) == 2
    [body] = scraped
    assert 'obsync_up{task="shop"} 0.0' in body and 'obsync_task_restarts{task="shop"} 1.0' in body
    assert 'obsync_phase{obsync_phase="restarting",task="shop"} 1.0' in body
    assert "\nobsync_messages_written_total{" not in body  # counters start again from 0 with the process: no sample
    with socket.socket() as s:  # released before the task's process was started again (which, as an HTTP server,
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # binds past the scrape's TIME_WAIT)
        s.bind(("127.0.0.1", port))


def test_a_process_of_a_cluster_on_this_host_killed_by_a_signal_fails_the_run_naming_it(
        tmp_path, monkeypatch, handlers):
    """A task process that dies of a signal (SIGBUS from a state directory that stopped taking writes, the OOM
    killer, a kill) ends the cluster's run with one error naming the process and the signal, and its status.json
    says so."""
    monkeypatch.setenv("KILLED", str(int(signal.SIGKILL)))
    with pytest.raises(StateError) as e:
        _cluster(tmp_path, monkeypatch, fails=0)
    assert str(e.value) == "process 1 of the cluster died of SIGKILL; the next start resumes from the last saved point"
    status = json.loads((tmp_path / "state" / "process-1" / "status.json").read_text())
    assert (status["state"], status["phase"], status["error"]) == ("failed", "failed", str(e.value))


# `obsync run --processes 2` standing in for itself: its processes record their pids and wait to be stopped.
LOCAL_CLUSTER = """
import argparse, sys
from pathlib import Path
from obsync.app.local_cluster import run_local_cluster
from obsync.task.state import TaskState
root = Path(sys.argv[1])
child = root / "child.py"
child.write_text("import os, sys, time\\n"
                 "k = sys.argv[sys.argv.index('--process-id') + 1]\\n"
                 f"open({str(root)!r} + f'/pid-{{k}}', 'w').write(str(os.getpid()))\\n"
                 "time.sleep(120)\\n")
state = TaskState(root / "state")
state.make()
args = argparse.Namespace(processes=2, process_id=None, addresses=None, task=str(root / "task.yaml"),
                          stop_timeout=30.0, until_caught_up=False, workers=None, metrics_port=None,
                          metrics_host="127.0.0.1", verbose=False)
run_local_cluster(args, state, 30.0, program=[sys.executable, str(child)])
"""


def test_the_processes_of_a_cluster_on_this_host_die_with_it(tmp_path):
    """SIGKILL of `obsync run --processes N` (nothing can be passed on) takes its task processes with it, as it
    takes the one task process of `obsync run`: no cluster left running that nothing watches or can stop."""
    import subprocess

    script = tmp_path / "cluster.py"
    script.write_text(LOCAL_CLUSTER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=Path(__file__).resolve().parents[2])
    pid_files = [tmp_path / "pid-0", tmp_path / "pid-1"]
    deadline = time.monotonic() + 30
    while not all(p.exists() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in pid_files]
    proc.kill()
    proc.wait(10)

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


def test_a_cluster_on_this_host_refuses_a_process_state_dir_it_cannot_use_before_starting_any(
        tmp_path, monkeypatch, handlers):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "process-1").write_text("a file where the directory goes")
    with pytest.raises(StateError, match=f"{tmp_path / 'state' / 'process-1'}"):
        _cluster(tmp_path, monkeypatch, fails=0)
    assert not (tmp_path / "state" / "runs").exists()  # no process started

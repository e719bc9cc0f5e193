"""`obsync health`: the verdict and exit status of each state a task can be in (obsync.app.health)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from obsync.app import cli
from obsync.app.health import judge

NOW = 1_000_000.0


def running(**report) -> dict:
    return {"state": "running", "phase": report.pop("phase", "incremental"), "reported_seconds_ago": 1.0, **report}


@pytest.mark.parametrize("status, verdict, healthy, ready, detail", [
    (running(lag_seconds=0.4), "caught up", True, True, "lag 0.4 s"),
    (running(lag_seconds=61.0), "catching up", True, False, "lag 61.0 s, more than 60 s"),
    (running(phase="full", full_sync=[{"rows_done": 1500, "rows_estimated": 4000}]), "full sync", True, False,
     "1,500 of ~4,000 rows"),
    (running(lag_seconds=0.0, waiting_for_source={"for": "db:3306", "seconds": 12.4, "error": "refused"}),
     "waiting for the source", True, False, "db:3306 for 12 s: refused"),
    (running(lag_seconds=0.0, reported_seconds_ago=40.0), "stale", False, False,
     "no progress report for 40 s: the process is stuck"),
    ({"state": "failed", "phase": "failed", "error": "topic t: not found"}, "failed", False, False,
     "topic t: not found"),
    ({"state": "stopped", "phase": "done"}, "not running", False, False, "stopped, phase done"),
    ({"state": "paused", "phase": "-"}, "not running", False, False, "paused"),
    ({"state": "running", "phase": None}, "starting", True, False, "preparing for 100 s"),
    # `obsync run` waiting to start the task's process again: its one report ages through a backoff of up to 30 s
    (running(phase="restarting", reported_seconds_ago=29.0, restarts=3, last_restart_reason="write to t[0] failed"),
     "restarting", True, False, "restart 3 after: write to t[0] failed"),
])
def test_verdicts(status, verdict, healthy, ready, detail) -> None:
    h = judge(status, run_started=NOW - 100, now=NOW)
    assert (h.verdict, h.healthy, h.ready, h.detail) == (verdict, healthy, ready, detail)


def test_a_report_older_than_the_run_is_the_previous_runs() -> None:
    """Restarted and still preparing: the status.json on disk is the last run's, whatever it said."""
    h = judge(running(lag_seconds=0.0, reported_seconds_ago=300.0), run_started=NOW - 20, now=NOW)
    assert (h.verdict, h.healthy, h.ready) == ("starting", True, False)
    assert h.line() == "healthy: starting (preparing for 20 s)"


def test_max_lag_decides_caught_up() -> None:
    assert judge(running(lag_seconds=4.0), run_started=None, max_lag=5).verdict == "caught up"
    assert judge(running(lag_seconds=6.0), run_started=None, max_lag=5).verdict == "catching up"


def _health(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli.main(["health", *args])
    return rc, capsys.readouterr().out


def test_cli_exit_status_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """From the command line: a failed task exits 1 naming the error; a task never started is not running;
    a file that cannot be read is unhealthy (exit 1, never 2: Docker reserves 2)."""
    monkeypatch.chdir(tmp_path)  # the task's default state_dir, ./state/<name>, as in the image's WORKDIR
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({"name": "h1", "source": {"user": "u"}, "target": {"bootstrap_servers": "k:9092"},
                                    "objects": [{"match": "a.b"}]}))
    assert _health(capsys, str(task)) == (1, "unhealthy: not running (unknown)\n")
    state = tmp_path / "state" / "h1"
    state.mkdir(parents=True)
    (state / "status.json").write_text(json.dumps({"state": "failed", "phase": "failed", "error": "boom",
                                                   "updated": time.time()}))
    assert _health(capsys, str(task)) == (1, "unhealthy: failed (boom)\n")
    rc, out = _health(capsys, str(state))  # a state directory works once it holds the task's copy (`save`)
    assert rc == 1 and "is not a saved task's state directory (no task.yaml)" in out, out
    rc, out = _health(capsys, str(task), "--json")
    doc = json.loads(out)
    assert rc == 1
    assert (doc["healthy"], doc["ready"], doc["verdict"], doc["status"]["error"]) == (False, False, "failed", "boom")
    rc, out = _health(capsys, str(tmp_path / "missing.yaml"))
    assert rc == 1 and out.startswith("unhealthy: cannot read the task's state: "), out

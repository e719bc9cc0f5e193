"""`obsync health`: one line and an exit status saying whether a task is healthy, for container health checks
and Kubernetes probes (exit 0 healthy, 1 not; a probe or `HEALTHCHECK` needs nothing else).

It judges what `obsync status` reads (`lifecycle.state_status`: the run lock and `status.json`, which the running
task rewrites every 2 s), without loading the engine or connecting to anything:

| verdict | healthy | ready (`--ready`) |
|---|---|---|
| `caught up` (incremental sync, lag at most `max_lag`) | yes | yes |
| `catching up` (incremental sync, lag above `max_lag`) | yes | no |
| `full sync` (rows done of the estimate) | yes | no |
| `starting` (running; precheck passed, this run has not reported yet: preparing) | yes | no |
| `waiting for the source` (reconnecting, within `source.patience`) | yes | no |
| `restarting` (`obsync run` starts the task again after a fault of Kafka's, within `target.patience`) | yes | no |
| `stale` (running, no report for `STALE_AFTER` s: the process is stuck) | no | no |
| `failed` (the error) | no | no |
| `not running` (stopped, paused, saved, done, never started) | no | no |

`caught up` is judged by the lag `status` shows: commit-to-acknowledgement of the last change, at least the age of
the oldest change Kafka has not acknowledged, at least how long the log pipeline has been stalled (so a pipeline
stuck on Kafka counts as behind, not as caught up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from obsync.app.lifecycle import STALE_AFTER

MAX_LAG = 60.0  # s of lag up to which a task in incremental sync counts as caught up


@dataclass(frozen=True)
class Health:
    verdict: str
    healthy: bool
    ready: bool
    detail: str

    def line(self) -> str:
        return f"{'healthy' if self.healthy else 'unhealthy'}: {self.verdict}" + (f" ({self.detail})"
                                                                                  if self.detail else "")


def judge(status: dict[str, Any], *, run_started: float | None, max_lag: float = MAX_LAG,
          now: float | None = None) -> Health:
    """The health of a task from its `status` (`lifecycle.state_status`); `run_started` is when the running
    process took the run lock (a report older than that is the previous run's)."""
    now = time.time() if now is None else now
    state = status.get("state")
    if state == "failed":
        return Health("failed", False, False, str(status.get("error") or "no error recorded"))
    if state != "running":
        phase = status.get("phase")
        detail = f"{state}" + (f", phase {phase}" if phase and phase != "-" else "")
        return Health("not running", False, False, detail)
    if status.get("phase") == "restarting":  # written once as the backoff (up to 30 s) begins: not stale, not stuck
        restarts, why = status.get("restarts"), status.get("last_restart_reason")
        return Health("restarting", True, False, f"restart {restarts}" + (f" after: {why}" if why else ""))
    age = status.get("reported_seconds_ago")
    updated = None if age is None else now - float(age)
    if updated is None or (run_started is not None and updated < run_started):
        since = "" if run_started is None else f"for {max(0.0, now - run_started):.0f} s"
        return Health("starting", True, False, f"preparing {since}".strip())
    if float(age) > STALE_AFTER:
        return Health("stale", False, False, f"no progress report for {float(age):.0f} s: the process is stuck")
    waiting = status.get("waiting_for_source")
    if waiting:
        return Health("waiting for the source", True, False,
                      f"{waiting.get('for')} for {float(waiting.get('seconds') or 0):.0f} s: {waiting.get('error')}")
    phase = status.get("phase")
    lag = status.get("lag_seconds")
    if phase == "incremental" and lag is not None:
        if float(lag) <= max_lag:
            return Health("caught up", True, True, f"lag {float(lag):.1f} s")
        return Health("catching up", True, False, f"lag {float(lag):.1f} s, more than {max_lag:g} s")
    if phase == "full":
        tables = status.get("full_sync") or []
        done = sum(int(t.get("rows_done") or 0) for t in tables)
        est = sum(int(t.get("rows_estimated") or 0) for t in tables)
        return Health("full sync", True, False, f"{done:,} of ~{est:,} rows")
    return Health("starting", True, False, f"phase {phase}")

"""A task's lifecycle from the terminal: save, start in the background, pause, resume, stop, status, list, delete.

A task is its state directory (`obsync.task.state`). `obsync run` holds the directory's run lock while it runs and
writes `status.json` every couple of seconds (`Progress.status`); these commands read the lock and that file,
and signal the process:

    saved ──start──> running ──stop──> stopped ──start/resume──> running
                        │ └──pause──> paused ──resume──> running
                        └── error ──> failed (status shows the error)

`pause` is a clean stop (SIGTERM: the sources stop reading, the sink flushes, the position is kept) marked as
paused, so `list` tells a paused task from a stopped one; `resume` starts it again from where it was. Every
command takes a task file or a state directory; a saved task keeps a copy of its file (`task.yaml`) in its
state directory, so later commands need only the directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from obsync.core.errors import ConfigError, StateError
from obsync.core.wording import counted
from obsync.runtime.validate import load_checked_task
from obsync.task.config import TaskConfig, load_task
from obsync.task.state import TaskState, write_json_atomic

TASK_COPY = "task.yaml"
STATUS_FILE = "status.json"
PAUSED_MARK = "paused"
LOG_FILE = "obsync.log"
STALE_AFTER = 15.0  # a running task's status.json older than this is reported as stale


def resolve(target: Path, state_dir: Path | None = None) -> tuple[TaskConfig, TaskState, Path]:
    """(task, state, task file) of a task file or of a state directory holding a saved task."""
    target = Path(target)
    if target.is_dir():
        task_file = target / TASK_COPY
        if not task_file.exists():
            raise ConfigError(f"{target} is not a saved task's state directory (no {TASK_COPY}); give the task file")
        task = load_task(task_file)
        return task, TaskState(target), task_file
    task = load_task(target)
    return task, TaskState(task.resolved_state_dir(state_dir)), target


def running_pid(state: TaskState) -> int | None:
    """The process running the task, or None (the run lock is free)."""
    lock = state.root / ".run.lock"
    if not lock.exists():
        return None
    with open(lock) as f:  # read-only: status works on a state directory that turned read-only
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def save(task_file: Path, state_dir: Path | None = None) -> TaskState:
    """Validate a task and create its state directory with a copy of the file, without starting it."""
    task = load_checked_task(task_file)
    state = TaskState(task.resolved_state_dir(state_dir))
    state.identity(task.name)
    copy = state.root / TASK_COPY
    if Path(task_file).resolve() != copy.resolve():
        shutil.copyfile(task_file, copy)
    return state


def start(target: Path, state_dir: Path | None = None, extra_args: list[str] | None = None,
          wait: float = 20.0) -> int:
    """Start `obsync run` in the background (its output in the state directory's obsync.log); the pid.

    Returns once the process holds the run lock, or raises with the tail of its log if it exits first.
    """
    task, state, task_file = resolve(target, state_dir)
    pid = running_pid(state)
    if pid is not None:
        raise StateError(f"task {task.name} is already running (process {pid})")
    save(task_file, state.root)
    (state.root / PAUSED_MARK).unlink(missing_ok=True)
    log_path = state.root / LOG_FILE
    # The task file given (so a SIGHUP after editing it applies the edit), else the saved copy.
    cmd = [sys.executable, "-m", "obsync", "run", str(Path(task_file).resolve()), "--state-dir",
           str(state.root.resolve()), *(extra_args or [])]
    with open(log_path, "ab") as out:
        out.write(f"\n--- obsync start {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StateError(f"task {task.name} exited at start (exit {proc.returncode}); {log_path} says:\n"
                             + _tail(log_path, 15))
        if running_pid(state) == proc.pid:
            return proc.pid
        time.sleep(0.1)
    return proc.pid  # still preparing (a long precheck or plan): `obsync status` follows it


def stop(target: Path, state_dir: Path | None = None, *, paused: bool = False, timeout: float = 120.0) -> bool:
    """Stop the running task cleanly (SIGTERM: sources stop, the sink flushes, the position is kept); with
    `paused`, mark it paused. False when it was not running."""
    task, state, _ = resolve(target, state_dir)
    pid = running_pid(state)
    if paused:
        state.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state.root / PAUSED_MARK, {"at": time.time()})
    if pid is None or pid < 0:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(state) is None:
            return True
        time.sleep(0.1)
    raise StateError(f"task {task.name} (process {pid}) did not stop within {timeout:.0f} s; see "
                     f"{state.root / LOG_FILE}")


def reload(target: Path, state_dir: Path | None = None) -> int:
    """Ask the running task to re-read its task file (SIGHUP: live object changes); its pid."""
    task, state, _ = resolve(target, state_dir)
    pid = running_pid(state)
    if pid is None or pid < 0:
        raise StateError(f"task {task.name} is not running; edit its file and start it (the change applies then)")
    os.kill(pid, signal.SIGHUP)
    return pid


def status(target: Path, state_dir: Path | None = None) -> dict[str, Any]:
    """What a task is doing (see the module docstring for the states) with its last reported progress."""
    task, state, _ = resolve(target, state_dir)
    return state_status(state, task.name)


def state_status(state: TaskState, name: str | None = None) -> dict[str, Any]:
    root = state.root
    ident = json.loads((root / "task.json").read_text()) if (root / "task.json").exists() else {}
    pid = running_pid(state)
    report = _read_json(root / STATUS_FILE) or {}
    start_error = None
    try:
        start_point = state.load_start()
    except StateError as e:  # an older obsync's (or a damaged) start point: shown, not fatal to status
        start_point, start_error = None, str(e)
    if pid is not None:
        st = "running"
    elif (root / PAUSED_MARK).exists():
        st = "paused"
    elif report.get("state") == "failed":
        st = "failed"
    elif report and "state" not in report:  # reports of a run that never wrote how it ended
        st = "failed"
        report = {**report, "error": "the last run ended without a final report: killed, crashed, or its state "
                                     f"directory could not be written (see {root / LOG_FILE})"}
    elif start_point is None and start_error is None and not report:
        st = "saved" if ident else "unknown"
    else:
        st = "stopped"
    out: dict[str, Any] = {
        "name": ident.get("name", name), "state": st, "state_dir": str(root), "pid": pid,
        "phase": report.get("phase") if st == "running" else report.get("phase", "-"),
    }
    if report:
        age = time.time() - float(report.get("updated", 0))
        out.update({k: report.get(k) for k in ("lag_seconds", "messages_written", "bytes_written",
                                                "messages_per_second", "bytes_per_second", "log_position_read",
                                                "log_position_written", "full_sync", "error",
                                                "waiting_for_source", "waiting_for_broker", "restarts",
                                                "last_restart_reason")})
        if st != "running":  # a wait is news only while the task runs
            out["waiting_for_source"] = out["waiting_for_broker"] = None
        out["reported_seconds_ago"] = round(age, 1)
        if st == "running" and age > STALE_AFTER:
            out["note"] = f"no progress report for {age:.0f} s (preparing, or stuck: see {root / LOG_FILE})"
    if start_point is not None:
        out["start"] = {"log": start_point.log.to_json() if start_point.log is not None else None,
                        "tables": len(start_point.tables), "full_sync_chunks": start_point.full_sync_chunks}
    elif start_error is not None:
        out["start"] = {"error": start_error}
    return out


def list_tasks(root: Path) -> list[dict[str, Any]]:
    """The status of every task whose state directory is directly under `root`."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [state_status(TaskState(d)) for d in sorted(root.iterdir()) if (d / "task.json").is_file()]


def delete(target: Path, state_dir: Path | None = None) -> Path:
    """Remove a stopped task's state directory (the caller confirms first)."""
    task, state, _ = resolve(target, state_dir)
    pid = running_pid(state)
    if pid is not None:
        raise StateError(f"task {task.name} is running (process {pid}); stop it first")
    if not (state.root / "task.json").exists():
        raise StateError(f"{state.root} holds no task state")
    shutil.rmtree(state.root)
    return state.root


def format_status(s: dict[str, Any]) -> str:
    """`status` for people: one line per fact."""
    lines = [f"task {s['name']}: {s['state']}" + (f" (process {s['pid']})" if s.get("pid") else ""),
             f"  state dir   {s['state_dir']}"]
    if s.get("phase"):
        lines.append(f"  phase       {s['phase']}")
    pos = s.get("log_position_written") or s.get("log_position_read")
    if pos:
        lines.append(f"  position    {pos['file']}:{pos['pos']} (written)" if s.get("log_position_written")
                     else f"  position    {pos['file']}:{pos['pos']} (read)")
    if s.get("lag_seconds") is not None:
        lines.append(f"  lag         {s['lag_seconds']:.1f} s")
    if s.get("messages_written") is not None:
        rate = s.get("messages_per_second")
        brate = s.get("bytes_per_second")
        lines.append(f"  written     {s['messages_written']:,} messages, {s['bytes_written']:,} bytes"
                     + (f"; {rate:,.0f} msg/s, {brate / 1e6:,.2f} MB/s" if rate is not None and brate is not None
                        else ""))
    for t in s.get("full_sync") or []:
        est = t["rows_estimated"]
        pct = f" ({100 * t['rows_done'] / est:.0f}%)" if est else ""
        lines.append(f"  full sync   {t['table']}: {t['rows_done']:,} of ~{est:,} rows{pct}, "
                     f"chunks {t['chunks_done']}/{t['chunks_total']}")
    if s.get("waiting_for_source"):
        w = s["waiting_for_source"]
        lines.append(f"  waiting     for {w['for']} for {w['seconds']:.0f} s (reconnecting): {w['error']}")
    if s.get("waiting_for_broker"):
        w = s["waiting_for_broker"]
        what = (f"reading {w['reading']} to learn what was written" if w.get("reading")
                else f"{counted(w['pending'], 'message')} not acknowledged")
        lines.append(f"  waiting     for {w['for']} for {w['seconds']:.0f} s ({what}): "
                     f"{w['error'] or 'no error, the brokers are silent'}")
    if s.get("error"):
        lines.append(f"  error       {s['error']}")
    if s.get("note"):
        lines.append(f"  note        {s['note']}")
    return "\n".join(lines)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

"""The `obsync` command: run a task, precheck it, check a task file, or run the embedded demo."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from obsync.errors import ObsyncError

if TYPE_CHECKING:
    from obsync.config import TaskConfig

log = logging.getLogger("obsync")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pymysqlreplication").setLevel(logging.WARNING)


class _Terminated(KeyboardInterrupt):
    """SIGTERM: stop like Ctrl-C, but exit 0 (a requested stop, as a service manager expects)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


def _cause_of_type(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The exception of `kind` behind one the engine wrapped (Bytewax re-raises worker errors and signals)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def cmd_run(args: argparse.Namespace) -> int:
    """Run a task in the foreground until stopped (or caught up), resuming from its saved state."""
    from obsync.config import load_task
    from obsync.state import TaskState

    task = load_task(args.task)
    _precheck_before_run(task, args)
    with TaskState(task.resolved_state_dir(args.state_dir)).running():
        return _run(task, args)


def _precheck_before_run(task: TaskConfig, args: argparse.Namespace) -> None:
    """Refuse to start (printing the precheck table on stdout) while a precheck item failed."""
    from obsync.precheck import PrecheckFailed, run_precheck

    report = run_precheck(task, state_dir=args.state_dir, skip=args.skip_precheck)
    if not report.ok:
        print(report.table(), flush=True)
        failed = "\n".join(f"  {i.id}: {i.reason}" for i in report.failed)
        skippable = [i.id for i in report.failed if i.skippable]
        hint = f"; skippable with --skip-precheck: {', '.join(skippable)}" if skippable else ""
        raise PrecheckFailed(f"precheck failed, task {task.name} not started:\n{failed}\n"
                             f"fix the failed items (`obsync precheck` shows every item){hint}")
    for item in report.warnings:
        log.warning("precheck %s: %s", item.id, item.reason)
    log.info("%s", report.summary())


def _run(task: TaskConfig, args: argparse.Namespace) -> int:
    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.run import cli_main

    from flows.sync import build_flow
    from obsync.progress import Progress
    from obsync.runtime import prepare

    rt = prepare(task, state_dir=args.state_dir, until_caught_up=args.until_caught_up)
    log.info("task %s: %d tables -> %d topics (%d partitions), format %s, state in %s",
             task.name, len(rt.tables), len(rt.layout.partitions), len(rt.parts), task.format, rt.state.root)
    recovery = rt.state.recovery_dir
    if not recovery.exists():
        recovery.mkdir(parents=True)
        init_db_dir(recovery, 1)
    progress = Progress()
    flow = build_flow(rt, progress)
    signal.signal(signal.SIGTERM, _raise_terminated)
    # Every row allocates a few short-lived containers; the default gen-0 threshold (700) makes the cyclic
    # collector run thousands of times a second for no garbage (rows hold no cycles). Collect less often,
    # and never re-scan what start-up allocated. Memory stays bounded: cycles are still collected.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        cli_main(flow, workers_per_process=args.workers or task.workers,
                 epoch_interval=timedelta(seconds=task.epoch_seconds),
                 recovery_config=RecoveryConfig(recovery))
    except BaseException as e:
        stop = _cause_of_type(e, KeyboardInterrupt)
        if stop is not None:
            progress.maybe_report(force=True)
            log.info("stopped; the next run resumes from the last consistent point")
            return 0 if isinstance(stop, _Terminated) else 130
        cause = _cause_of_type(e, ObsyncError)
        if cause is None:
            raise
        raise cause from None
    progress.maybe_report(force=True)
    log.info("task %s finished: %s", task.name, "caught up" if args.until_caught_up else "sources ended")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a task file and print what it would sync."""
    from obsync.config import load_task

    task = load_task(args.task)
    print(f"task {task.name}: valid")
    for obj in task.objects:
        print(f"  {obj.match} -> topic {task.topic_for(obj.db, obj.table)}")
    return 0


def cmd_precheck(args: argparse.Namespace) -> int:
    """Check the task against its source, Kafka and state directory; exit 1 if an item failed."""
    from obsync.config import load_task
    from obsync.precheck import run_precheck

    task = load_task(args.task)
    report = run_precheck(task, state_dir=args.state_dir, skip=args.skip)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.table())
        print()
        print(report.summary())
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from obsync.embedded.demo import run_demo

    return run_demo(Path(args.dir), seconds=args.seconds, rows=args.rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="obsync", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a task until stopped (SIGINT/SIGTERM stop it cleanly)")
    run.add_argument("task", type=Path, help="task file (YAML)")
    run.add_argument("--until-caught-up", action="store_true",
                     help="exit 0 once full sync is done and the log reached the position of the start")
    run.add_argument("--state-dir", type=Path, help="state directory (default ./state/<task name>)")
    run.add_argument("-w", "--workers", type=int, help="Bytewax workers (default: the task's `workers`)")
    run.add_argument("--skip-precheck", action="append", default=[], metavar="ITEM",
                     help="start even though this skippable precheck item failed (repeatable)")
    run.set_defaults(func=cmd_run)

    from obsync.precheck import ITEM_IDS, SKIPPABLE

    precheck = sub.add_parser(
        "precheck", help="check the task against its source, Kafka and state (exit 0 if nothing failed)",
        description="Check everything a task needs before it starts; print item, status, reason and fix. "
                    "Exit 0 if no item failed (warnings allowed), 1 if one did, 2 on an invalid task file.",
        epilog=f"items: {', '.join(ITEM_IDS)}. Skippable: {', '.join(SKIPPABLE)}.")
    precheck.add_argument("task", type=Path, help="task file (YAML)")
    precheck.add_argument("--skip", action="append", default=[], metavar="ITEM",
                          help="report this skippable item as skipped even if it fails (repeatable)")
    precheck.add_argument("--json", action="store_true", help="print the report as JSON")
    precheck.add_argument("--state-dir", type=Path, help="state directory (default ./state/<task name>)")
    precheck.set_defaults(func=cmd_precheck)

    check = sub.add_parser("check", help="validate a task file and show its table -> topic mapping")
    check.add_argument("task", type=Path)
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser("demo", help="run a sample task on a local MariaDB and Kafka broker it starts")
    demo.add_argument("--dir", default=str(Path.home() / ".cache" / "obsync-demo"),
                      help="where the demo keeps its servers and state")
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long (default: Ctrl-C)")
    demo.add_argument("--rows", type=int, default=1000, help="rows in the sample table before the start")
    demo.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ObsyncError as e:
        print(f"obsync: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

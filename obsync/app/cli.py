"""The `obsync` command: run, start, pause, resume, stop, status, list, delete a task; precheck it; list its
objects (dry run, CSV); check a task file; run the embedded demo.

Each subcommand imports what it needs inside its function (no cycle needs this: the CLI is the top layer): so
`obsync status`, `stop` or `list`, which a health check or a script may call often, start without loading Bytewax,
librdkafka and the MySQL drivers (about 1.5 s against 6.5 s for everything on this 2-core machine under load).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obsync.core.errors import RESTART_EXIT, BrokerFault, ConfigError, ObsyncError
from obsync.core.repeats import RepeatFilter
from obsync.core.threads import NamedThread
from obsync.core.wording import counted

if TYPE_CHECKING:
    from obsync.app.stopping import Stopper
    from obsync.task.config import TaskConfig

log = logging.getLogger("obsync")


RDKAFKA_REPEAT_WINDOW = 30.0  # s: one line per distinct librdkafka message, with the count held back


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pymysqlreplication").setLevel(logging.WARNING)
    # librdkafka repeats each failed connection attempt several times a second while a broker is down
    logging.getLogger("obsync.rdkafka").addFilter(RepeatFilter(RDKAFKA_REPEAT_WINDOW))


def _reload_on_sighup(rt: Any, task_file: Path) -> None:
    """SIGHUP re-reads the task file and applies its objects, exclude and topic to the running task
    (`obsync.runtime.prepare.reload_task`), in a thread of its own (it talks to the source and Kafka). An invalid file
    or a change that cannot apply is logged and the task keeps its running settings."""
    import threading

    from obsync.runtime.prepare import reload_task
    from obsync.runtime.validate import load_checked_task

    lock = threading.Lock()

    def reload() -> None:
        with lock:  # one reload at a time, in the order the signals came
            try:
                log.info("SIGHUP: reloading %s", task_file)
                summary = reload_task(rt, load_checked_task(task_file))
                log.info("task file %s reloaded: %s", task_file, summary)
            except ObsyncError as e:
                log.error("task file %s not applied, the task keeps its running settings: %s", task_file, e)
            except Exception:  # a failed reload must not stop the task
                log.exception("task file %s not applied, the task keeps its running settings", task_file)

    def on_hup(signum: int, frame: object) -> None:
        NamedThread(target=reload, name="obsync-reload", daemon=True).start()

    if rt.live is not None and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)


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
    from obsync.app.supervisor import MetricsAt, is_child, supervise
    from obsync.core.errors import StateError
    from obsync.runtime.settings import broker_patience
    from obsync.runtime.validate import load_checked_task
    from obsync.task.state import TaskState, write_json_atomic

    _check_cluster_args(args)
    task = load_checked_task(args.task)
    state = TaskState(task.resolved_state_dir(args.state_dir))

    def timed_out(msg: str) -> None:
        if state.exists():
            write_json_atomic(state.root / "status.json", {"state": "failed", "phase": "failed", "error": msg,
                                                           "updated": time.time()})

    stopper: Stopper = args.stopper
    try:
        stopper.arm(args.stop_timeout, on_timeout=timed_out)  # a SIGTERM/SIGINT is a clean stop from now on
        if not is_child():  # checked here; the task runs in a child process watched from here (`app.supervisor`,
            # or `app.local_cluster` for the processes of a cluster on this host)
            _precheck_before_run(task, args)
            state.check_usable()  # a state directory that cannot hold the state: refused before anything runs
            if (args.processes or 1) > 1:
                from obsync.app.local_cluster import run_local_cluster

                return run_local_cluster(args, state, broker_patience(task.target).patience)
            port = args.metrics_port if args.metrics_port is not None else task.metrics_port
            return supervise(args.argv, state, broker_patience(task.target).patience,
                             metrics_at=MetricsAt(task.name, args.metrics_host, port) if port else None)
        with state.running(pid=os.getppid()):  # the watching process: the one users started and signal
            return _run(task, args, stopper)
    except BaseException as e:
        if stopper.requested:  # stopped before the engine ran (precheck, prepare): whatever it interrupted
            if not isinstance(e, KeyboardInterrupt):
                log.debug("interrupted by the stop: %r", e)
            log.info("stopped (%s) before the task started; nothing to save", stopper.name)
            return 0
        if isinstance(e, ObsyncError) and state.exists() and not isinstance(e, StateError):
            write_json_atomic(state.root / "status.json", {"state": "failed", "phase": "failed",
                                                           "error": str(e), "updated": time.time()})
        raise
    finally:
        stopper.finished()


def _precheck_before_run(task: TaskConfig, args: argparse.Namespace) -> None:
    """Refuse to start (printing the precheck table on stdout) while a precheck item failed."""
    from obsync.app.precheck import PrecheckFailed, run_precheck

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


def _run(task: TaskConfig, args: argparse.Namespace, stopper: Stopper) -> int:
    from bytewax.recovery import RecoveryConfig

    from obsync.app.stopping import StateWatch, run_engine
    from obsync.app.supervisor import RESTART_REASON_ENV, RESTARTS_ENV
    from obsync.connectors.mysql.connection import interrupt_sessions
    from obsync.flows.sync import build_flow
    from obsync.runtime import metrics
    from obsync.runtime.cluster import ClusterState, cluster_spec
    from obsync.runtime.prepare import prepare
    from obsync.runtime.progress import Progress
    from obsync.runtime.recovery import place_cluster, place_single

    spec = cluster_spec(args.process_id, args.addresses)
    if spec is not None:
        os.environ["OBSYNC_PROCESSES"] = str(spec.processes)  # limits.full is divided among the processes
    metrics.configure(task.name)
    port = args.metrics_port if args.metrics_port is not None else task.metrics_port
    server = _start_metrics_server(port, args.metrics_host) if port else None
    rt = prepare(task, state_dir=args.state_dir, until_caught_up=args.until_caught_up, cluster=spec)
    log.info("task %s: %s -> %s (%s), format %s, state in %s%s", task.name, counted(len(rt.tables), "table"),
             counted(len(rt.layout.partitions), "topic"), counted(sum(rt.layout.partitions.values()), "partition"),
             task.format, rt.state.root,
             f"; process {spec.process} of {spec.processes}" if spec is not None else "")
    recovery = place_cluster(rt.state, rt.task_id) if isinstance(rt.state, ClusterState) else place_single(rt.state)
    workers = args.workers or task.workers
    progress = Progress(task.progress_interval, topic_of=rt.layout.topic_of,
                        status_path=rt.state.root / "status.json",
                        first_worker=0 if spec is None else spec.process * workers)
    restarts = int(os.environ.get(RESTARTS_ENV, "0") or 0)  # by `obsync run` (`app.supervisor`)
    progress.restarts = (restarts, os.environ.get(RESTART_REASON_ENV))
    metrics.set_restarts(restarts)
    # the sink or full sync asked and heard of the stop (it then ends its wait for a silent Kafka, or for a source
    # that is away, with `StopWhileWaiting`)
    heard: list[bool] = []

    def stopping() -> bool:
        if stopper.requested and not heard:
            heard.append(True)
        return stopper.requested

    flow = build_flow(rt, progress, stopping=stopping, workers=workers * (1 if spec is None else spec.processes))

    def interrupt() -> None:  # a stop held up by a request in flight (`app.stopping`): its error is the stop's
        heard.append(True)
        n = interrupt_sessions()
        if n:
            log.info("interrupted %s on the source", counted(n, "session"))

    stopper.when_stuck(interrupt)
    if spec is None:
        _reload_on_sighup(rt, args.task)
    else:
        signal.signal(signal.SIGHUP, lambda signum, frame: log.error(
            "SIGHUP: live changes are not applied in a cluster yet; stop every process and start them again with "
            "the edited task file (process 0 records the new selection, the others follow)"))
    # Every row allocates a few short-lived containers; the default gen-0 threshold (700) makes the cyclic
    # collector run thousands of times a second for no garbage (rows hold no cycles). Collect less often,
    # and never re-scan what start-up allocated. Memory stays bounded: cycles are still collected.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    watch = StateWatch(rt.state)  # a state directory turning read-only or full stops the run with a clear error
    progress.start()  # full-sync bars on a terminal, else progress lines every progress_interval s
    try:
        watch.start()
        run_engine(flow, workers=args.workers or task.workers, epoch_interval=timedelta(seconds=task.epoch_seconds),
                   recovery_config=RecoveryConfig(recovery),
                   addresses=None if spec is None else list(spec.addresses),
                   process_id=0 if spec is None else spec.process, stopper=stopper)
    except BaseException as e:
        stopper.settle()
        watch.stop()
        progress.stop()
        _stop_metrics_server(server)
        # a stop: the signal itself, or the sink or full sync ending its wait for a peer because of it (a worker's
        # error that the engine may report as a bare panic, without its cause)
        if stopper.requested and (_cause_of_type(e, KeyboardInterrupt) or heard):
            progress.maybe_report(force=True)
            progress.write_status(state="stopped")
            metrics.set_up(False)
            metrics.set_phase("stopped")
            log.info("stopped; the next run resumes from the last consistent point (%s)", stopper.name)
            return 0
        cause = _cause_of_type(e, ObsyncError) or _state_fault(rt.state, e)
        metrics.error(metrics.error_kind(cause or e))
        metrics.set_up(False, failed=True)
        metrics.set_phase("failed")
        progress.write_status(state="failed", error=str(cause or e))
        if cause is None:
            raise
        raise cause from None
    stopper.settle()
    watch.stop()
    progress.stop()
    _stop_metrics_server(server)
    progress.maybe_report(force=True)
    progress.write_status(state="stopped", phase="done")
    metrics.set_up(False)
    metrics.set_phase("done")
    log.info("task %s finished: %s", task.name, "caught up" if args.until_caught_up else "sources ended")
    return 0


def _check_cluster_args(args: argparse.Namespace) -> None:
    """`--process-id` and `--addresses` come together, the id naming one of the addresses (checked before
    anything runs; `obsync.runtime.cluster.cluster_spec` says what is wrong)."""
    from obsync.runtime.cluster import cluster_spec

    cluster_spec(args.process_id, args.addresses)
    for a in (args.addresses or "").split(";"):
        host, _, port = a.strip().rpartition(":")
        if a.strip() and (not host or not port.isdigit()):
            raise ConfigError(f"--addresses: {a.strip()!r} is not host:port")


def _state_fault(state: Any, e: BaseException) -> ObsyncError | None:
    """The state directory's fault behind an engine failure (its recovery store could not write), if any."""
    from obsync.core.errors import StateError

    try:
        state.check_usable()
    except StateError as fault:
        return fault
    text = str(e)
    if "Sqlite" in text or "sqlite" in text:
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        return StateError(f"the recovery store in {state.recovery_dir} failed: {first}")
    return None


def _start_metrics_server(port: int, host: str) -> Any:
    """The Prometheus endpoint (`obsync.runtime.metrics`), or a ConfigError naming the port."""
    from obsync.runtime.metrics import start_metrics_server

    try:
        server = start_metrics_server(port, host)
    except OSError as e:
        raise ConfigError(f"metrics port {port} on {host}: cannot listen: {e.strerror or e}") from None
    log.info("metrics at http://%s:%d/metrics", host, port)
    return server


def _stop_metrics_server(server: Any) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a task file (everything `run` checks before connecting) and print what it would sync."""
    from obsync.runtime.validate import load_checked_task
    from obsync.task.naming import topic_template
    from obsync.task.resources import memory_budget

    task = load_checked_task(args.task)
    print(f"task {task.name}: valid")
    for obj in task.objects:
        topic = task.topic_for(obj.db, obj.table, obj) if obj.is_exact else topic_template(task.topic, obj)
        print(f"  {obj.match} -> topic {topic}")
    for pattern in task.exclude:
        print(f"  exclude {pattern}")
    mib = math.ceil(memory_budget(task) / 2**20)
    print(f"  memory: up to {mib} MiB per process, {task.workers} worker thread(s) "
          f"(a container's memory and CPU requests; see resources)")
    return 0


def cmd_objects(args: argparse.Namespace) -> int:
    """The dry run of a task's objects: every table it selects now, with topic, filter, columns and key.
    Also exports the settings to CSV, or imports them from CSV into a new task file."""
    import yaml

    from obsync.runtime.validate import load_checked_task, validate_task
    from obsync.task.config import parse_task, read_task_document
    from obsync.task.objects_csv import object_to_row, read_csv, write_csv

    if args.import_csv is not None:
        data = read_task_document(args.task)
        try:
            csv_text = Path(args.import_csv).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read {args.import_csv}: {e.strerror}") from None
        data["objects"] = read_csv(csv_text, origin=str(args.import_csv))
        origin = f"task file {args.task} with objects from {args.import_csv}"
        validate_task(parse_task(data, origin=origin), origin=origin)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if args.output is not None:
            Path(args.output).write_text(text)
            print(f"wrote {args.output} with {len(data['objects'])} objects from {args.import_csv}")
        else:
            print(text, end="")
        return 0
    task = load_checked_task(args.task)
    listing = _object_listing(task)
    if args.export_csv is not None:
        rows = [object_to_row(r["database"], r["table"], task.objects[r["rule"]], r["topic"])
                for r in listing["tables"]]
        Path(args.export_csv).write_text(write_csv(rows))
        print(f"wrote {len(rows)} tables to {args.export_csv}")
        return 0
    if args.json:
        print(json.dumps(listing, indent=1))
        return 0
    print(_format_listing(task, listing))
    return 0


def _object_listing(task: TaskConfig) -> dict:
    """What the task selects on the source now (connects to it)."""
    from obsync.connectors.mysql.catalog import SqlCatalog
    from obsync.connectors.mysql.connection import connect
    from obsync.runtime.settings import sql_endpoint
    from obsync.task.objects import kept_columns, resolve_objects

    conn = connect(sql_endpoint(task.source))
    try:
        res = resolve_objects(SqlCatalog(conn), task)
    finally:
        conn.close()
    tables = []
    for name in sorted(res.plans):
        plan, schema = res.plans[name], res.schemas[name]
        cols = kept_columns(plan.rule, schema)
        tables.append({
            "database": plan.db, "table": plan.table, "rule": plan.index, "match": plan.rule.match,
            "topic": plan.topic, "topic_kind": plan.topic_kind, "where": plan.rule.where,
            "columns": list(cols) if cols is not None else None,
            "key": list(plan.rule.sharding_columns or schema.key_columns),
        })
    return {
        "task": task.name, "tables": tables,
        "skipped": [{"database": d, "table": t, "type": kind, "rule": i} for (d, t), kind, i in res.skipped],
        "unmatched_rules": [{"rule": i, "match": task.objects[i].match} for i in res.unmatched],
        "exclude": list(task.exclude),
    }


def _format_listing(task: TaskConfig, listing: dict) -> str:
    head = ("TABLE", "RULE", "TOPIC", "FILTER", "COLUMNS", "KEY")
    rows = [(f"{t['database']}.{t['table']}", f"{t['rule']}: {t['match']}",
             t["topic"] + {"existing": " (existing)", "generated": "", "fixed": ""}[t["topic_kind"]],
             t["where"] or "-", ",".join(t["columns"]) if t["columns"] is not None else "all",
             ",".join(t["key"]) or "(none: whole row)") for t in listing["tables"]]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"task {task.name}: {len(rows)} tables" + (f", exclude {', '.join(task.exclude)}" if task.exclude else "")]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    for s in listing["skipped"]:
        lines.append(f"skipped: {s['database']}.{s['table']} is a {s['type'].lower()} (rule {s['rule']}); "
                     "only tables sync")
    for u in listing["unmatched_rules"]:
        lines.append(f"note: rule {u['rule']} ({u['match']}) matches no table now; tables created later that "
                     "match it will sync")
    return "\n".join(lines)


def cmd_save(args: argparse.Namespace) -> int:
    """Validate a task and create its state directory without starting it."""
    from obsync.app.lifecycle import save

    state = save(args.task, args.state_dir)
    print(f"saved task in {state.root}; start it with: obsync start {state.root}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Start a task in the background."""
    from obsync.app.lifecycle import LOG_FILE, resolve, start

    extra = [f"--skip-precheck={i}" for i in args.skip_precheck]
    pid = start(args.task, args.state_dir, extra)
    _, state, _ = resolve(args.task, args.state_dir)
    print(f"started (process {pid}); log: {state.root / LOG_FILE}; follow it with: obsync status {state.root}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop (or pause) a running task at a consistent point."""
    from obsync.app.lifecycle import stop

    paused = args.command == "pause"
    was_running = stop(args.task, args.state_dir, paused=paused)
    verb = "paused" if paused else "stopped"
    print(verb if was_running else f"not running{' (marked paused)' if paused else ''}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Apply an edited task file's objects to the running task (SIGHUP)."""
    from obsync.app.lifecycle import LOG_FILE, reload, resolve

    pid = reload(args.task, args.state_dir)
    _, state, _ = resolve(args.task, args.state_dir)
    print(f"asked process {pid} to reload its task file; the outcome is in its log ({state.root / LOG_FILE} "
          "for a task started with `obsync start`)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show a task's state, phase, position, lag, throughput and full-sync progress."""
    from obsync.app.lifecycle import format_status, status

    s = status(args.task, args.state_dir)
    print(json.dumps(s, indent=1) if args.json else format_status(s))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """One line and an exit status for a health check: 0 healthy (with --ready: caught up), 1 not."""
    from obsync.app.health import judge
    from obsync.app.lifecycle import resolve, state_status

    try:
        task, state, _ = resolve(args.task, args.state_dir)
        s = state_status(state, task.name)
        lock = state.root / ".run.lock"
        started = lock.stat().st_mtime if s["state"] == "running" and lock.exists() else None
        health = judge(s, run_started=started, max_lag=args.max_lag)
    except (ObsyncError, OSError, ValueError) as e:  # a health check answers 0 or 1, never 2 (Docker reserves it)
        print(f"unhealthy: cannot read the task's state: {e}")
        return 1
    if args.json:
        print(json.dumps({"healthy": health.healthy, "ready": health.ready, "verdict": health.verdict,
                          "detail": health.detail, "status": s}, indent=1))
    else:
        print(health.line() if not args.ready or health.ready or not health.healthy else
              f"not ready: {health.verdict}" + (f" ({health.detail})" if health.detail else ""))
    return 0 if (health.ready if args.ready else health.healthy) else 1


def cmd_list(args: argparse.Namespace) -> int:
    """List the tasks of a directory of state directories."""
    from obsync.app.lifecycle import list_tasks

    tasks = list_tasks(args.root)
    if args.json:
        print(json.dumps(tasks, indent=1))
        return 0
    if not tasks:
        print(f"no tasks in {args.root}")
        return 0
    print(f"{'TASK':24} {'STATE':8} {'PHASE':12} {'LAG':>8}  STATE DIR")
    for t in tasks:
        lag = t.get("lag_seconds")
        print(f"{t['name'] or '?':24} {t['state']:8} {t.get('phase') or '-':12} "
              f"{'-' if lag is None else f'{lag:.1f}s':>8}  {t['state_dir']}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Remove a stopped task's state (asks first unless --yes)."""
    from obsync.app.lifecycle import delete, resolve

    task, state, _ = resolve(args.task, args.state_dir)
    if not args.yes:
        answer = input(f"delete task {task.name} and its state in {state.root}? "
                       "Its position is lost (type the task name to confirm): ")
        if answer.strip() != task.name:
            print("not deleted")
            return 1
    print(f"deleted {delete(args.task, args.state_dir)}")
    return 0


def cmd_precheck(args: argparse.Namespace) -> int:
    """Check the task against its source, Kafka and state directory; exit 1 if an item failed."""
    from obsync.app.precheck import run_precheck
    from obsync.runtime.validate import load_checked_task

    task = load_checked_task(args.task)
    report = run_precheck(task, state_dir=args.state_dir, skip=args.skip)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.table())
        print()
        print(report.summary())
    return 0 if report.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    """Compare each table the task syncs with the state its topics describe; exit 0 match, 1 differ, 2 error."""
    from obsync.app.verify.command import print_progress, verify
    from obsync.app.verify.report import as_json, text
    from obsync.core.errors import SinkError
    from obsync.formats.decoding import DecodeError
    from obsync.runtime.validate import load_checked_task

    task = load_checked_task(args.task)
    try:
        report = verify(task, args.tables or (), keep=args.max_differences, recheck_timeout=args.recheck_timeout,
                        state_dir=args.state_dir, progress=None if args.quiet else print_progress)
    except DecodeError as e:
        raise SinkError(f"cannot read a message of the task's topics as format {task.format}: {e}") from None
    if args.report is not None:
        try:
            Path(args.report).write_text(as_json(report) + "\n")
        except OSError as e:
            raise ConfigError(f"--report {args.report}: cannot write it: {e.strerror}") from None
    print(as_json(report) if args.json else text(report))
    return 0 if report.matches else 1


def cmd_schema_history(args: argparse.Namespace) -> int:
    """Print every table as of a log position, rebuilt from the task's schema-history topic."""
    from obsync.app.schema_history import parse_position, render, tables_at
    from obsync.runtime.validate import load_checked_task

    at = parse_position(args.at) if args.at else None
    print(render(tables_at(load_checked_task(args.task), at), args.json))
    return 0


def cmd_reset_recovery(args: argparse.Namespace) -> int:
    from obsync.connectors.kafka.control import ControlTopic, control_topic_name
    from obsync.runtime.recovery import reset
    from obsync.runtime.settings import kafka_settings
    from obsync.runtime.validate import load_checked_task

    task = load_checked_task(args.task)
    control = ControlTopic(kafka_settings(task.target), control_topic_name(task.name))
    control.ensure()
    generation = reset(control)
    control.close()
    print(f"task {task.name}: recovery generation {generation} in control topic {control.topic}; start every "
          "process again (each starts its recovery partition afresh)")
    return 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        raise ConfigError(f"environment variable {name}: {value!r} is not a number") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from obsync.app.embedded.demo import run_demo

    return run_demo(Path(args.dir), seconds=args.seconds, rows=args.rows)


def main(argv: list[str] | None = None) -> int:
    from obsync.app.stopping import Stopper

    stopper = Stopper()
    stopper.install()  # first thing: a stop signal during start-up is noted, not a crash (`cmd_run` acts on it)
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
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics on this port (default: the task's metrics_port; 0: off)")
    run.add_argument("--stop-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="a stop (SIGTERM/SIGINT) that has not finished after this long exits 1, saying what "
                          "it waited for (default 60)")
    run.add_argument("--metrics-host", default="0.0.0.0", metavar="ADDR",
                     help="address the metrics endpoint listens on (default 0.0.0.0)")
    run.add_argument("-i", "--process-id", type=int, default=_env_int("BYTEWAX_PROCESS_ID"), metavar="K",
                     help="this process's index in a cluster of processes (with -a; default $BYTEWAX_PROCESS_ID)")
    run.add_argument("-a", "--addresses", default=os.environ.get("BYTEWAX_ADDRESSES"), metavar="H:P;H:P;...",
                     help="every process's host:port, separated by ';' (default $BYTEWAX_ADDRESSES); each "
                          "process has its own state directory, the shared state is in Kafka")
    run.add_argument("--processes", type=int, metavar="N",
                     help="run the task as a cluster of N processes on this host, process K with state "
                          "directory <state dir>/process-K")
    run.set_defaults(func=cmd_run)

    from obsync.app.precheck import ITEM_IDS, SKIPPABLE

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

    objects = sub.add_parser(
        "objects", help="dry run: list every table the task selects, with topic, filter, columns and key",
        description="Resolve the task's objects against the source and list each table with its rule, topic, "
                    "row filter, columns and message key (nothing is written). Or export the settings to "
                    "CSV, or import them from CSV into a task file.")
    objects.add_argument("task", type=Path, help="task file (YAML)")
    objects.add_argument("--json", action="store_true", help="print the listing as JSON")
    objects.add_argument("--export-csv", type=Path, metavar="FILE", help="write one CSV row per selected table")
    objects.add_argument("--import-csv", type=Path, metavar="FILE",
                         help="replace the task's objects with the CSV's rows (validated, errors name the line); "
                              "prints the new task file, or writes it with --output")
    objects.add_argument("--output", type=Path, metavar="FILE", help="with --import-csv: the task file to write")
    objects.set_defaults(func=cmd_objects)

    def lifecycle(name: str, func, help_text: str):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("task", type=Path, help="task file (YAML), or the state directory of a saved task")
        p.add_argument("--state-dir", type=Path, help="state directory (default ./state/<task name>)")
        p.set_defaults(func=func)
        return p

    lifecycle("save", cmd_save, "validate a task and create its state without starting it")
    st = lifecycle("start", cmd_start, "start a task in the background (output in <state dir>/obsync.log)")
    st.add_argument("--skip-precheck", action="append", default=[], metavar="ITEM")
    lifecycle("stop", cmd_stop, "stop a running task at a consistent point (it resumes from there)")
    lifecycle("pause", cmd_stop, "pause a running task: stop reading, keep the position (resume continues)")
    lifecycle("resume", cmd_start, "resume a paused (or stopped) task in the background").add_argument(
        "--skip-precheck", action="append", default=[], metavar="ITEM")
    lifecycle("reload", cmd_reload, "apply the edited task file's objects to the running task (SIGHUP)")
    stat = lifecycle("status", cmd_status, "a task's state, phase, position, lag, throughput, progress")
    stat.add_argument("--json", action="store_true", help="as JSON, for scripts")
    health = lifecycle("health", cmd_health, "exit 0 if the task is healthy (running: starting, full sync, "
                       "catching up, caught up), 1 if not (failed, stopped, stuck); one line says which")
    health.add_argument("--ready", action="store_true",
                        help="exit 0 only once caught up (incremental sync with lag at most --max-lag)")
    health.add_argument("--max-lag", type=float, default=60.0, metavar="SECONDS",
                        help="lag up to which incremental sync counts as caught up (default 60)")
    health.add_argument("--json", action="store_true", help="the verdict and the status as JSON")
    dele = lifecycle("delete", cmd_delete, "remove a stopped task's state (asks for confirmation)")
    dele.add_argument("--yes", action="store_true", help="do not ask")
    lst = sub.add_parser("list", help="list the tasks in a directory of state directories")
    lst.add_argument("root", type=Path, nargs="?", default=Path("state"), help="default ./state")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)

    rr = sub.add_parser("reset-recovery",
                        help="a cluster's processes start their recovery afresh at their next start (all stopped)",
                        description="For a task run as several processes: start a new recovery generation in the "
                                    "task's control topic, so that every process discards its recovery partition at "
                                    "its next start (after one lost its state directory, or to change the number of "
                                    "processes). Run it while every process is stopped. Nothing is lost or written "
                                    "twice; the log is read again from the task's start position.")
    rr.add_argument("task", type=Path, help="task file (YAML)")
    rr.set_defaults(func=cmd_reset_recovery)

    check = sub.add_parser("check", help="validate a task file and show its table -> topic mapping")
    check.add_argument("task", type=Path)
    check.set_defaults(func=cmd_check)

    ver = sub.add_parser(
        "verify", help="compare the source tables with what their topics hold (exit 0 match, 1 differ, 2 error)",
        description="Read each table the task syncs at one consistent point of the source and its topics up to "
                    "the same point, replay the topics per key and report rows missing in Kafka, extra in Kafka "
                    "and different (with columns, both values, key and the last message's position). Read-only "
                    "on both sides; works while the task runs. Exit 0 when all match, 1 when something "
                    "differs, 2 when it could not run.")
    ver.add_argument("task", type=Path, help="task file (YAML)")
    ver.add_argument("--tables", nargs="+", metavar="PATTERN",
                     help="only the tables matching one of these db.table patterns (* ? [abc])")
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.add_argument("--report", type=Path, metavar="FILE", help="also write the JSON report to FILE")
    ver.add_argument("--max-differences", type=int, default=100, metavar="N",
                     help="differences listed per table (all are counted; default 100)")
    ver.add_argument("--recheck-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long differences are re-checked while the task catches up with the source's "
                          "view (default 60)")
    ver.add_argument("--state-dir", type=Path, help="the running task's state directory (default ./state/<name>), "
                                                     "to see how far it has written")
    ver.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    ver.set_defaults(func=cmd_verify)

    sh = sub.add_parser(
        "schema-history", help="every synced table as of a log position, from the task's schema-history topic",
        description="Replay the task's schema-history topic (schema_history.enabled) up to a log position and "
                    "print each table that exists there as a CREATE TABLE statement (or JSON).")
    sh.add_argument("task", type=Path, help="task file (YAML)")
    sh.add_argument("--at", metavar="FILE:POS[#ROW]", help="the log position (default: the end of the history)")
    sh.add_argument("--json", action="store_true", help="each table's Debezium structure as JSON")
    sh.set_defaults(func=cmd_schema_history)

    demo = sub.add_parser("demo", help="run a sample task on a local MariaDB and Kafka broker it starts")
    demo.add_argument("--dir", default=str(Path.home() / ".cache" / "obsync-demo"),
                      help="where the demo keeps its servers and state")
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long (default: Ctrl-C)")
    demo.add_argument("--rows", type=int, default=1000, help="rows in the sample table before the start")
    demo.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    args.stopper = stopper
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.func is not cmd_run:
        stopper.release()
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except ObsyncError as e:
        print(f"obsync: error: {e}", file=sys.stderr)
        from obsync.app.supervisor import is_child

        # a task process asks its `obsync run` to start it again (`app.supervisor`)
        return RESTART_EXIT if isinstance(e, BrokerFault) and is_child() else 2


if __name__ == "__main__":
    sys.exit(main())

"""The sync dataflow: snapshot and log sources -> shape -> encode and route -> partition-aware Kafka sink.

    snapshot (chunks, spread over workers) ─> shape ─> encode + route (on the chunk's ──┐
                                                       worker; `debezium` in a cluster:  │
                                                       lanes, as the log's)              ├─> Kafka sink: 16 lanes,
    log (one partition, waits for the     ─> shape ─> lanes: pick each change's  ───────┘   each written by one
         snapshot to be delivered)                    partition, group by lane              worker, which encodes
                                                      (on the reading worker)               the changes it is sent

"shape" applies the objects' settings (sharding columns; later row filters and column projection) and drops
a repeated TRUNCATE of one transaction (`obsync.steps.shaping`); "encode + route", "lanes" and the encoding in
the sink's lanes are `obsync.steps.routing` (`Router.route`, `Router.pick`, `Router.expand`). With one worker
in all, the log takes the snapshot's path (encode + route where it is read): there is no one to share with.

`python -m bytewax.run obsync.flows.sync:flow` builds it from the task file named by `OBSYNC_TASK` (state directory
from `OBSYNC_STATE_DIR`, default `./state/<task name>`; `OBSYNC_UNTIL_CAUGHT_UP=1` to stop once caught up).
With `-i K -a "h0:p;h1:p;..."` it is process K of a cluster (`obsync.runtime.cluster`): give it
`-r <state dir>/recovery`, where it places its recovery partition (`obsync.runtime.recovery`).

Across the workers and processes of a run: the snapshot's chunks are Bytewax partitions spread over every worker;
the log is one partition (one worker reads, decodes and shapes it, and picks each change's lane); each sink lane (a
share of the Kafka partitions) is written by one worker, which also encodes the log's changes of its partitions, so
encoding and producing are spread by Kafka partition, over every process, the one reading the log included (a
process that only read, leaving every lane to the others, was measured slower: docs/performance.md). In a cluster,
full sync's chunks take the same two steps for a format whose records outweigh its rows (`Router.crosses_rows`): a
chunk's worker picks each row's lane and its lane's process encodes it, so a row crosses processes as its values,
not as its records (a `debezium` record with its Connect schema is about 4 KB). Every item
crossing between workers is a batch (a lane's list of changes or of records, never one row; both cross processes
as plain tuples: `LaneWork`, `RecordBatch`). A lane's batches of the log come from the one reading worker through
one exchange, so they arrive in log order and every key stays in order. Formats or policies whose row records may
go to another lane's partitions (`Router.spreads`) encode the log where it is read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from obsync.connectors.kafka.gaps import GAPS_FILE
from obsync.connectors.kafka.sink import KafkaSink
from obsync.connectors.mysql.binlog.heartbeat import HeartbeatWriter
from obsync.connectors.mysql.binlog.source import BinlogSource
from obsync.connectors.mysql.evaluator import SqlEvaluator
from obsync.connectors.mysql.snapshot.source import SnapshotSource
from obsync.core.errors import StateError
from obsync.runtime import metrics
from obsync.runtime.cluster import ClusterState, bytewax_run_spec, history_store
from obsync.runtime.prepare import Runtime, kafka_conf, prepare
from obsync.runtime.progress import Progress
from obsync.runtime.recovery import place_cluster
from obsync.runtime.settings import broker_patience, log_endpoint, sql_endpoint
from obsync.runtime.validate import load_checked_task
from obsync.steps.chunk_placement import offered_chunks
from obsync.steps.lane_placement import full_sync_lane_shares, offered_lanes
from obsync.steps.large_messages import LargeMessages
from obsync.steps.ratelimit import bytewax_processes, limiter_for
from obsync.steps.routing import DdlDelivery, Router, SchemaHistory
from obsync.steps.shaping import Shaper
from obsync.task.resources import plan_resources


def build_flow(rt: Runtime, progress: Progress | None = None,
               stopping: Callable[[], bool] = lambda: False, workers: int | None = None) -> Dataflow:
    """The dataflow of a prepared task; `stopping()`: whether a stop was requested (the sink then stops
    waiting for a silent Kafka, full sync for a source that is away); `workers`: Bytewax workers of the run in
    all processes (default: the task's `workers` times the run's processes)."""
    task = rt.task
    workers = workers if workers is not None else max(1, task.workers) * bytewax_processes()
    progress = progress or Progress()
    res = plan_resources(task, task.workers)  # resources.full / .incremental (presets or explicit)
    flow = Dataflow(f"obsync-{task.name}")
    sql_eval = SqlEvaluator(sql_endpoint(task.source))  # what row filters ask the source (rarely)
    shaper = Shaper.from_live(rt.live, sql_eval) if rt.live is not None else Shaper.from_task(task, sql_eval)
    router = Router(
        rt.encoder,
        rt.layout,
        task.partitioning,
        fixed_partition=task.fixed_partition,
        send_ddl=task.sync.ddl,
        large=large_messages(rt),
        ddl_to=DdlDelivery(task.ddl_messages.to, task.resolved_ddl_topic(),
                           task.ddl_messages.partitioning == "table"),
        history=SchemaHistory(task.resolved_history_topic(), task.name) if task.schema_history.enabled else None,
        on_encoded=progress.encoded,
    )
    spread = workers > 1 and router.spreads()
    # Every process writes its share of the lanes, the one reading the log too: in a cluster the lanes' work is
    # picked in the form it crosses processes in (`Router.packs`).
    cluster = rt.state.spec if isinstance(rt.state, ClusterState) else None
    router.packs = spread and cluster is not None and cluster.processes > 1
    snapshot = log = None
    # in a cluster the processes writing fewer partitions read more of the full sync's chunks
    # (`obsync.steps.chunk_placement`); every process computes the split from the plan and the layout
    chunks = None if rt.plan is None or cluster is None else offered_chunks(
        rt.plan, cluster.process, full_sync_lane_shares(rt.layout, cluster.processes), router.crosses_rows())
    if rt.plan is not None:
        snapshot = (op.input("snapshot", flow, SnapshotSource(
            sql_endpoint(task.source), rt.plan, batch_size=res.snapshot_batch_size,
            chunks_per_worker=res.chunks_per_worker, filters=rt.snapshot_filters,
            # limits.full: one limiter per process for all its chunks, the cap divided among the processes
            limiter=limiter_for(task.limits.full, bytewax_processes()),
            listener=progress.stats, stopping=stopping,
            # a full sync the task's state (a cluster's control topic) says is in Kafka is not read again, even
            # if Bytewax's state predates it (a stop before the next epoch) or is gone (`obsync.runtime.recovery`)
            delivered=rt.full_sync_delivered,
            # Debezium's snapshot writes each table's CREATE TABLE before its rows; formats that want it
            emit_ddl=task.sync.ddl and rt.encoder.snapshot_ddl(), parts=chunks)))
    if rt.log_start is not None:
        log = (op.input("log", flow, BinlogSource(
            log_endpoint=log_endpoint(task.source),
            sql_endpoint=sql_endpoint(task.source),
            server_id=task.source.server_id,
            tables=set(rt.tables),
            selector=rt.live.contains if rt.live is not None else task.selection().__contains__,
            live=rt.live,  # objects changed while running (SIGHUP): tables untracked, picked up, backfilled
            backfill_page=task.snapshot.batch_size,
            history_dir=history_store(rt.state),  # the state directory's, or the control topic in a cluster
            start=rt.log_start,
            stop_at=rt.stop_at,
            gate=rt.full_sync_delivered,
            batch_size=res.log_batch_size,
            max_batches=res.log_queue_batches,
            limiter=limiter_for(task.limits.incremental),  # the log is one partition: in one process
            heartbeats=task.heartbeat.interval,  # heartbeat messages to every topic, even when idle
            heartbeat_writer=(HeartbeatWriter(sql_endpoint(task.source), task.heartbeat.table, task.name,
                                              task.heartbeat.interval) if task.heartbeat.table else None),
            listener=progress.stats,  # rows read, position, lag
            schema_changes=task.schema_changes.policy,  # what a DDL does to the tables' messages
        )))
    routed = []
    if snapshot is not None:
        shaped = op.map("shape", snapshot, shaper.shape)
        # in a cluster, rows whose records outweigh them cross to their lanes' processes, encoded there as the log's
        routed.append(op.flat_map("lanes_snapshot", shaped, router.pick) if router.crosses_rows() else
                      op.flat_map("encode", shaped, router.route))
    if log is not None:
        shaped_log = op.map("shape_log", log, shaper.shape)
        routed.append(op.flat_map("lanes", shaped_log, router.pick) if spread else
                      op.flat_map("encode_log", shaped_log, router.route))
    out = routed[0] if len(routed) == 1 else op.merge("routed", *routed)
    # in a cluster process 0 writes fewer partitions (`obsync.steps.lane_placement`): it reads the log, and in a full
    # sync more of the chunks; only it asks whether the full sync is delivered (a read of the control topic)
    leader = cluster is not None and cluster.leader
    offered = None if cluster is None else offered_lanes(
        rt.layout, cluster.process, cluster.processes, reads_log=leader and log is not None,
        full_sync=leader and snapshot is not None and not rt.full_sync_delivered())
    op.output("kafka", out, KafkaSink(
        kafka_conf(task), rt.parts, rt.task_id, rt.snapshot_streams, rt.state.mark_delivered,
        listener=progress, producer_conf=res.producer, rescanned_streams=rt.rescanned_streams,
        patience=broker_patience(task.target), stopping=stopping, gaps_file=rt.state.root / GAPS_FILE,
        expand=router.expand if spread else None, offered=offered,
        known_topic=min(rt.layout.partitions, default=None)))  # made by `prepare`: asked for alone at the start
    return flow


def large_messages(rt: Runtime) -> LargeMessages | None:
    """The task's `large_messages` policy, checked against the topics' limits (`Runtime.limits`)."""
    if rt.limits is None:
        return None
    task = rt.task
    return LargeMessages(task.large_messages, rt.encoder, rt.limits, task.resolved_dead_letter_topic(),
                         lambda t: rt.layout.partitions[t], metrics.large_message)


def __getattr__(name: str) -> Any:
    """`flow` is built on first access from the environment, so importing this module has no effects."""
    if name != "flow":
        raise AttributeError(name)
    task_file = os.environ.get("OBSYNC_TASK")
    if not task_file:
        raise RuntimeError("set OBSYNC_TASK to the task file, e.g. OBSYNC_TASK=task.yaml "
                           "python -m bytewax.run obsync.flows.sync:flow")
    state_dir = os.environ.get("OBSYNC_STATE_DIR")
    spec = bytewax_run_spec(sys.argv, os.environ)
    rt = prepare(load_checked_task(task_file), state_dir=Path(state_dir) if state_dir else None,
                 until_caught_up=os.environ.get("OBSYNC_UNTIL_CAUGHT_UP") == "1", cluster=spec)
    if isinstance(rt.state, ClusterState):
        recovery = place_cluster(rt.state, rt.task_id)
        given = recovery_dir_arg(sys.argv)
        if given is not None and Path(given).resolve() != recovery.resolve():
            raise StateError(f"-r/--recovery-directory is {given}, but process {rt.state.spec.process} keeps its "
                             f"recovery partition in its state directory: give -r {recovery}")
    return build_flow(rt)


def recovery_dir_arg(argv: list[str]) -> str | None:
    """The `-r`/`--recovery-directory` given to `python -m bytewax.run`."""
    for i, a in enumerate(argv):
        if a in ("-r", "--recovery-directory") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--recovery-directory="):
            return a.split("=", 1)[1]
    return None

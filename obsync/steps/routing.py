"""From change batches to per-partition record batches: encode, choose the partition, fan out DDL.

This is the engine-free core of the dataflow's "encode" step. An update that changes the row's key (its
identity or its message key, see `split_key_change`) becomes a delete of the old key and an insert of the
new one, so every change of one key lands in one partition, in commit order. Snapshot completion markers are
broadcast to every partition.

`Router.route` encodes where the batch is (a snapshot chunk's worker). The log is read by one worker, so in a
run of several workers its batches take two steps instead, and so do a cluster's full-sync chunks when the
format's records outweigh its rows (`crosses_rows`: a `debezium` value carries its Connect schema):
`Router.pick`, on the reading worker, only chooses each row change's partition and groups the changes by sink
lane (`LaneWork`, one per lane touched: a batch, never single rows); `Router.expand`, called by the sink's lane on
the worker that writes it, encodes them. Only what is rare or must be numbered across partitions is encoded
where it is read and travels as records: DDL, heartbeats and updates that change their key (the insert's `seq`
follows the delete's records). Records and `seq` are byte for byte those of `route`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal, NamedTuple

from obsync.connectors.kafka.records import DEFAULT_LANES, OutItem, OutRecord, RecordBatch, lane_names, lane_of
from obsync.core.changes import Change, Item, Op, StreamDone
from obsync.core.positions import LogPosition
from obsync.core.schema import TableSchema
from obsync.formats.base import Encoder
from obsync.formats.schema_history import history_records
from obsync.steps.lane_work import Encode, LaneWork, log_change, plain_read, read_change
from obsync.steps.large_messages import LargeMessages
from obsync.steps.partitioning import (
    KeyBytes,
    hash_partition,
    int_key_column,
    partition_key,
    row_image_key,
    table_key,
)
from obsync.task.live import Live

Partitioning = Literal["hash", "table", "one"]
_UPDATE, _DDL, _HEARTBEAT, _READ = Op.UPDATE, Op.DDL, Op.HEARTBEAT, Op.READ
_new_tuple = tuple.__new__


TopicResolver = Callable[[str, str], "tuple[str, int] | None"]


class TopicLayout:
    """Which topic each table goes to, how many partitions each topic has, and the sink's lanes.

    `resolve(db, table)` is asked about a table not known yet (one created while the task runs): it returns
    (topic, partition count), creating the topic if the task's mapping says so, or None when the task does
    not sync the table.
    """

    def __init__(self, topic_of: dict[tuple[str, str], str], partitions: dict[str, int],
                 lanes: int = DEFAULT_LANES, resolve: TopicResolver | None = None) -> None:
        self.topic_of = dict(topic_of)
        self.partitions = dict(partitions)
        self.lanes = lanes
        self.resolve = resolve
        # `obsync.task.live.Live`: when its version moves, its topics replace the ones known (a table it no longer
        # selects keeps its last topic, for the changes read before the reader dropped it)
        self.live: Live | None = None
        self._live_version = 0
        self._lanes: dict[tuple[str, int], str] = {}  # (topic, partition) -> lane: asked for every record

    def parts(self) -> list[str]:
        """The sink parts (lanes)."""
        return lane_names(self.lanes)

    def lane(self, topic: str, partition: int) -> str:
        lane = self._lanes.get((topic, partition))
        if lane is None:
            if len(self._lanes) >= 100_000:
                self._lanes.clear()
            lane = self._lanes[(topic, partition)] = lane_of(topic, partition, self.lanes)
        return lane

    def topic(self, db: str, table: str) -> str:
        """The topic of a synced table (resolved on first sight for tables created while running)."""
        live = self.live
        if live is not None and live.version != self._live_version:
            cfg = live.current
            self._live_version = cfg.version
            self.partitions.update(cfg.partitions)
            self.topic_of.update(cfg.topics)
        t = self.topic_of.get((db, table))
        if t is not None:
            return t
        found = self.resolve(db, table) if self.resolve is not None else None
        if found is None:
            raise KeyError(f"table {db}.{table} is not synced by this task")
        self.topic_of[(db, table)], self.partitions[found[0]] = found[0], found[1]
        return found[0]

    def table_topics(self) -> list[str]:
        """The topics of the tables known so far (not the topics a format owns)."""
        return sorted(set(self.topic_of.values()))


def split_key_change(change: Change, whole_row: bool = False) -> list[Change]:
    """An UPDATE that changes the row's key becomes DELETE(old) + INSERT(new); anything else is left alone.

    The key is both the row's identity (`key_columns`: primary key, else a non-null unique key) and its
    message key (`message_key_columns`: the sharding columns if set). A change of the message key moves
    the row to another Kafka key and, under Hash, another partition: the delete goes with the old key and
    the insert with the new one, so every change of one key stays in one partition in commit order. With
    `whole_row` (Hash on a table without any key, where the partition is the hash of the whole image)
    every update that changes the row is split, so each image's changes stay in that image's partition.
    """
    table = change.table
    if change.op is not Op.UPDATE or table is None:
        return [change]
    before, after = change.before, change.after
    assert before is not None and after is not None
    ident, mkey = table.key_columns, table.message_key_columns
    if ident or mkey:
        if all(before[c] == after[c] for c in ident) and (
                mkey is ident or all(before[c] == after[c] for c in mkey)):
            return [change]
    elif not whole_row or before == after:
        return [change]
    return [replace(change, op=Op.DELETE, after=None), replace(change, op=Op.INSERT, before=None)]


class DdlDelivery(NamedTuple):
    """Where DDL messages go (the task's `ddl_messages`): `data_topics`, `ddl_topic` (`topic`, one partition or
    `by_table`: the hash of each named `db.table`), or `none` (only a format's own topics get the statement)."""

    to: Literal["data_topics", "ddl_topic", "none"] = "data_topics"
    topic: str = ""
    by_table: bool = False


DATA_TOPICS = DdlDelivery()


class SchemaHistory(NamedTuple):
    """The schema-history topic's writer settings: `topic` (partition 0) and the `server` name records carry."""

    topic: str
    server: str


def planned_partition(change: Change, fixed: int, int_key: str | None, partitions: int) -> int:
    """A row change's partition when its table's plan (`Router._partition_plan`) gives it without the key's bytes:
    `fixed` (0 or more), or the hash of a one-integer key (`partition_key` of such a key is `b"[%d]" % v`); -1
    when neither does (the router then asks `_partition` or `_pick_partition`)."""
    if fixed >= 0:
        return fixed
    if int_key is not None:
        v = (change.after if change.after is not None else change.before)[int_key]  # type: ignore[index]  # a row change has an image
        if v.__class__ is int:
            return hash_partition(b"[%d]" % v, partitions)
    return -1


class Router:
    """Encodes changes and groups the records by the sink part (Kafka partition) they belong to.

    Partition rules (docs/formats/README.md, "Partitions"; keys in `obsync.steps.partitioning`): `hash`, the
    murmur2 hash of the partition key (`key_bytes`, by default `partition_key`: the sharding columns, else the
    primary key, else a non-null unique key; the whole row's image for a table without any) modulo the topic's
    partition count; `table`, the hash of `db.table`; `one`, `fixed_partition` of every topic. DDL placement
    per rule is in `ddl_targets`.
    """

    def __init__(self, encoder: Encoder, layout: TopicLayout, partitioning: Partitioning,
                 key_bytes: KeyBytes = partition_key, fixed_partition: int = 0, send_ddl: bool = False,
                 large: LargeMessages | None = None, ddl_to: DdlDelivery = DATA_TOPICS,
                 history: SchemaHistory | None = None,
                 on_encoded: Callable[[str, int], None] | None = None) -> None:
        self.encoder = encoder
        self.ddl_to = ddl_to  # where DDL messages go (with send_ddl)
        self.history = history  # the schema-history topic (every log DDL of a synced table, send_ddl or not)
        # hears (lane, changes) once per `expand`: the log changes a lane's worker encoded (status, metrics)
        self.on_encoded = on_encoded
        # the `large_messages` policy, for row records larger than their topic accepts (None: not checked)
        self.large = large
        self.layout = layout
        self.partitioning = partitioning
        self.key_bytes = key_bytes
        self.fixed_partition = fixed_partition
        self.send_ddl = send_ddl
        # `pick` packs each lane's work as the rows it crosses processes in (`obsync.steps.lane_work`): set when
        # every lane is written by another process
        self.packs = False
        self.all_parts = layout.parts()
        # the encoder's record key is the partition key (see `Encoder.key_is_partition_key`): hash it as is
        self.key_is_record_key = encoder.key_is_partition_key and key_bytes is partition_key
        # the encoder's hooks for records a row change may bring for other topics (`Encoder.records_elsewhere_now`):
        # None / plain `encode` when it keeps the base's (a call a row saved)
        overrides = type(encoder).records_elsewhere_now is not Encoder.records_elsewhere_now
        self._elsewhere_now = encoder.records_elsewhere_now if overrides else None
        self._lane_encode = encoder.encode_on_lane if overrides else encoder.encode
        self.whole_row = partitioning == "hash"
        if partitioning == "one":
            for topic in layout.table_topics():
                if not 0 <= fixed_partition < layout.partitions[topic]:
                    raise ValueError(f"fixed partition {fixed_partition} is not a partition of topic {topic} "
                                     f"({layout.partitions[topic]} partitions)")

    def route(self, batch: Sequence[Item]) -> list[tuple[str, list[OutItem]]]:
        """One (part, records) pair per sink part touched by the batch, records in batch order."""
        out: dict[str, list[OutItem]] = {}
        layout, encode, lane, large = self.layout, self.encoder.encode, self.layout.lane, self.large
        hash_record_key = self.partitioning == "hash" and self.key_is_record_key
        last_table: object = None
        topic, room, partitions, fixed, int_key = "", 0, 0, -1, None
        # the lane's list of each partition of `topic` (None until a record goes there), for the run of changes
        # of one table: a row costs a list index rather than `lane` and a dictionary look-up
        buckets: list[list[OutItem] | None] = []
        for item in batch:
            if isinstance(item, StreamDone):
                for p in self.all_parts:
                    out.setdefault(p, RecordBatch()).append(item)
                continue
            op = item.op
            if op is _DDL:
                seq = self._route_ddl(item, out) if self.send_ddl else 0
                if self.history is not None and isinstance(item.position, LogPosition):
                    self._route_history(item, out, seq)
                continue
            if op is _HEARTBEAT:
                self._route_heartbeat(item, out)
                continue
            seq = 0
            for change in split_key_change(item, self.whole_row) if op is _UPDATE else (item,):
                table = change.table
                if table is not last_table:  # the topic, once per run of changes of one table
                    topic = layout.topic(table.db, table.name)  # type: ignore[union-attr]  # a row change always carries its table
                    last_table = table
                    room = large.room(topic) if large is not None else 0
                    partitions = layout.partitions[topic]
                    buckets = [None] * partitions
                    if not hash_record_key:
                        fixed, int_key = self._partition_plan(table, topic)  # type: ignore[arg-type]  # see above
                records = encode(change, topic)
                if hash_record_key:
                    key = records[0].key if records else None
                    partition = hash_partition(key if key is not None else row_image_key(change), partitions)
                elif (partition := planned_partition(change, fixed, int_key, partitions)) < 0:
                    partition = self._partition(change, topic, records[0].key if records else None)
                bucket = buckets[partition] if partition < partitions else None
                if bucket is None:
                    name = lane(topic, partition)
                    bucket = out.get(name)
                    if bucket is None:
                        bucket = out[name] = RecordBatch()
                    if partition < partitions:
                        buckets[partition] = bucket
                for index, rec in enumerate(records):
                    if rec.topic == topic:
                        if large is not None and len(rec.key or b"") + len(rec.value or b"") > room and \
                                not large.fits(rec, change):
                            seq = self._add_large(large, change, topic, partition, rec, index, seq, out)
                            continue
                        # the named tuple's fields in order, built without its Python-level __new__
                        bucket.append(_new_tuple(OutRecord, (topic, partition, rec.key, rec.value, change.position,
                                                             seq, change.commit_time, None)))
                    else:
                        self._add_to_own_topic(rec, change, seq, out)
                    seq += 1
        return list(out.items())

    def spreads(self) -> bool:
        """Whether `pick` + `expand` may encode a row change away from where it was read: every record of its
        encoding then goes to its own partition, so to the lane `pick` chose. Not so when the format writes
        row records to a topic of its own (`Encoder.row_records_elsewhere`) or under the `dead_letter` policy
        (parts go to the dead-letter topic's partitions): several workers would then write one partition, out
        of position order, and the sink would drop what arrives after a later position."""
        return not self.encoder.row_records_elsewhere() and (self.large is None or self.large.policy != "dead_letter")

    def crosses_rows(self) -> bool:
        """Whether full sync's rows go to their lanes' processes as values, to be encoded there (`pick`, then
        `expand` by the lane), rather than encoded where they are read (`route`): in a cluster (`packs`), for a
        format whose records outweigh its rows (`Encoder.records_outweigh_rows`). Otherwise encoding where read
        costs less: it follows the chunks, spread evenly over the processes, while the lanes of a topic with few
        partitions split unevenly (3 over 2 processes: 2 to 1). Measured both ways for both kinds of format:
        docs/performance.md, "debezium's full sync in a cluster encoded by the lanes"."""
        return self.packs and self.encoder.records_outweigh_rows()

    def pick(self, batch: Sequence[Item]) -> list[tuple[str, LaneWork]]:
        """One (lane, `LaneWork`) pair per lane touched by the batch: the lane step of the log, and of full sync
        where `crosses_rows` (see the module docstring); `expand` turns each into exactly the records `route`
        would give that lane. With `packs`, each `LaneWork` holds packed rows (`obsync.steps.lane_work`), the
        form it crosses processes in."""
        out: dict[str, list[Any]] = {}
        layout, lane, packs = self.layout, self.layout.lane, self.packs
        tables: dict[int, int] = {}  # with `packs`: the batch's tables and topics, shared by its lanes' work
        table_list: list[Any] = []
        topics: dict[str, int] = {}
        last_table: object = None
        topic, partitions, fixed, int_key, ti, to = "", 0, -1, None, 0, 0
        # the lane's list of each partition of `topic` (None until a change goes there), for the run of changes
        # of one table, as in `route`
        buckets: list[list[Any] | None] = []
        elsewhere_now = self._elsewhere_now
        checked = True  # the run's table asked `elsewhere_now` (until one of its changes answered no)
        for item in batch:
            if item.__class__ is not Change or (op := item.op) is _DDL or op is _HEARTBEAT or (
                    op is _UPDATE and len(split_key_change(item, self.whole_row)) > 1):
                self._route_here(item, out, packs)  # rare: encoded here, as records
                continue
            table = item.table
            if table is not last_table:  # once per run of changes of one table
                checked = elsewhere_now is None
                topic = layout.topic(table.db, table.name)  # type: ignore[union-attr]  # a row change carries its table
                last_table = table
                partitions = layout.partitions[topic]
                buckets = [None] * partitions
                fixed, int_key = self._partition_plan(table, topic)  # type: ignore[arg-type]  # see above
                if packs:
                    t = tables.get(id(table))
                    ti = tables[id(table)] = len(table_list) if t is None else t
                    if t is None:
                        table_list.append(table)
                    o = topics.get(topic)
                    to = topics[topic] = len(topics) if o is None else o
            if not checked:
                if elsewhere_now(item, topic):  # type: ignore[misc]  # not None when not `checked`
                    self._route_here(item, out, packs)  # the first of a schema: its records for other topics too
                    continue
                checked = True
            partition = planned_partition(item, fixed, int_key, partitions)
            if partition < 0:
                partition = self._pick_partition(item, topic)
            bucket = buckets[partition] if partition < partitions else None
            if bucket is None:
                name = lane(topic, partition)
                bucket = out.get(name)
                if bucket is None:
                    bucket = out[name] = []
                if partition < partitions:
                    buckets[partition] = bucket
            pos = item.position
            if packs and pos.__class__ is LogPosition and item.ddl is None and item.ddl_db is None and \
                    not item.ddl_tables:  # what a packed row leaves out (`obsync.steps.lane_work`)
                bucket.append((ti, to, partition, op, pos.file, pos.pos, pos.row, item.before,  # type: ignore[union-attr]  # a LogPosition
                               item.after, item.commit_time, item.txn, item.server_id))
            elif packs and plain_read(item):
                bucket.append((ti, to, partition, pos.chunk, pos.key, item.after))  # type: ignore[union-attr]  # a SnapshotPosition
            elif packs:
                bucket.append((_new_tuple(Encode, (item, topic, partition)),))
            else:
                bucket.append(_new_tuple(Encode, (item, topic, partition)))
        if packs:
            names = list(topics)
            return [(name, LaneWork.of_rows(name, table_list, names, rows)) for name, rows in out.items()]
        return [(name, LaneWork(name, items)) for name, items in out.items()]

    def _route_here(self, item: Item, out: dict[str, list[Any]], packs: bool) -> None:
        """`pick`'s way for a change encoded where the log is read: its records added to their lanes' work."""
        for name, records in self.route((item,)):
            bucket = out.get(name)
            if bucket is None:
                bucket = out[name] = []
            bucket.extend([(r,) for r in records] if packs else records)

    def _partition_plan(self, table: TableSchema, topic: str) -> tuple[int, str | None]:
        """How `pick` finds the partition of a run of `table`'s changes: (the partition of every one, or -1;
        the column whose int value is the whole partition key (`int_key_column`), or None): else
        `_pick_partition`."""
        if self.partitioning == "one":
            return self.fixed_partition, None
        if self.partitioning == "table":
            return hash_partition(table_key(table.db, table.name), self.layout.partitions[topic]), None
        return -1, int_key_column(table) if self.key_bytes is partition_key else None

    def expand(self, work: LaneWork) -> list[OutItem]:
        """The records of a lane's `LaneWork` (on the worker writing the lane), in order: its changes encoded
        as `route` encodes them, its records as they are. Raises if a record would belong to another lane (a
        format or policy `spreads` should have excluded)."""
        out: dict[str, list[OutItem]] = {}
        records_out = out[work.lane] = []
        append = records_out.append
        encode, large = self._lane_encode, self.large
        last_topic, room, n = "", 0, 0
        packed = work.rows
        tables: list[Any] = []
        topics: list[str] = []
        jobs: list[Any]
        if packed is not None:
            tables, topics, jobs = packed
        else:
            jobs = work.items
        for job in jobs:
            if job.__class__ is tuple:  # a packed row (`obsync.steps.lane_work`)
                size = len(job)
                if size == 12:  # a log change
                    ti, to, partition, op, file, at, index, before, after, commit_time, txn, server_id = job
                    change = log_change(op, tables[ti], file, at, index, before, after, commit_time, txn, server_id)
                    position = change.position
                    topic = topics[to]
                    job = None
                    n += 1
                elif size == 6:  # a row read by full sync
                    ti, to, partition, chunk, key, after = job
                    change = read_change(tables[ti], chunk, key, after)
                    position, commit_time = change.position, None
                    topic = topics[to]
                    job = None
                else:
                    job = job[0]
            if job is not None:
                if job.__class__ is not Encode:
                    append(job)  # an OutItem
                    continue
                change, topic, partition = job
                position, commit_time = change.position, change.commit_time
                if change.op is not _READ:  # a change of the log's stream (a backfill's rows too), not full sync's
                    n += 1
            if topic is not last_topic:
                room = large.room(topic) if large is not None else 0
                last_topic = topic
            records = encode(change, topic)
            if len(records) == 1:  # the common case: one record, in the table's topic, not too large
                t, key, value = records[0]
                if t == topic and (large is None or (len(key) if key is not None else 0) + (
                        len(value) if value is not None else 0) <= room):
                    append(_new_tuple(OutRecord, (topic, partition, key, value, position, 0, commit_time, None)))
                    continue
            seq = 0
            for index, rec in enumerate(records):
                if rec.topic != topic:
                    self._add_to_own_topic(rec, change, seq, out)
                elif large is not None and len(rec.key or b"") + len(rec.value or b"") > room and \
                        not large.fits(rec, change):
                    seq = self._add_large(large, change, topic, partition, rec, index, seq, out) - 1
                else:
                    append(_new_tuple(OutRecord, (topic, partition, rec.key, rec.value, position, seq, commit_time,
                                                  None)))
                seq += 1
        if len(out) > 1:
            raise AssertionError(f"{work.lane}: encoding gave records for {sorted(set(out) - {work.lane})}, which "
                                 "other workers write: this format or policy cannot be encoded by lane")
        if n and self.on_encoded is not None:
            self.on_encoded(work.lane, n)
        return records_out

    def _add_large(self, large: LargeMessages, change: Change, topic: str, partition: int, rec: Any, index: int,
                   seq: int, out: dict[str, list[OutItem]]) -> int:
        """The records the `large_messages` policy puts in the place of `rec`, numbered from `seq`: the next seq."""
        for e in large.handle(change, topic, partition, rec, index, seq):
            p = partition if e.partition is None else e.partition
            out.setdefault(self.layout.lane(e.topic, p), RecordBatch()).append(OutRecord(
                e.topic, p, e.key, e.value, change.position, seq, change.commit_time, e.headers))
            seq += 1
        return seq

    def _pick_partition(self, change: Change, topic: str) -> int:
        """The partition `route` gives a row change, without encoding it: under Hash with the record key as the
        partition key, that key is `partition_key` byte for byte (`Encoder.key_is_partition_key`)."""
        if self.key_is_record_key and self.partitioning == "hash":
            key = partition_key(change)
            return hash_partition(key if key is not None else row_image_key(change), self.layout.partitions[topic])
        return self._partition(change, topic, None)

    def _partition(self, change: Change, topic: str, record_key: bytes | None) -> int:
        if self.partitioning == "one":
            return self.fixed_partition
        n = self.layout.partitions[topic]
        table = change.table
        assert table is not None
        if self.partitioning == "table":
            return hash_partition(table_key(table.db, table.name), n)
        key = record_key if self.key_is_record_key else self.key_bytes(change)
        if key is None:  # no key: whole-row hash (the image that identifies the row)
            key = row_image_key(change)
        return hash_partition(key, n)

    def ddl_targets(self, change: Change) -> list[tuple[str, list[int]]]:
        """(topic, partitions) a DDL statement is delivered to, per docs/formats/README.md, "DDL messages":

        | rule  | one table / several tables named                  | no table known               |
        |-------|---------------------------------------------------|------------------------------|
        | hash  | all partitions of the named tables' topics        | all partitions of all topics |
        | table | in each named table's topic, its name's partition | all partitions of all topics |
        | one   | the fixed partition of the named tables' topics   | the fixed partition of all   |

        "Named tables" are those the statement names that the task syncs; a statement that names tables,
        none of them synced, is delivered nowhere. "All topics" are the tables' topics, not the topics a
        format owns (those get the format's own records once, see `_route_ddl`).
        """
        layout = self.layout
        named = self._named(change)
        if not named:
            if change.ddl_tables:
                return []
            topics = layout.table_topics()
        else:
            topics = sorted({topic for _, topic in named})
        out = []
        for topic in topics:
            n = self.layout.partitions[topic]
            if self.partitioning == "one":
                targets = [self.fixed_partition]
            elif self.partitioning == "table" and named:
                targets = sorted({hash_partition(table_key(db, t), n) for (db, t), tp in named if tp == topic})
            else:
                targets = list(range(n))
            out.append((topic, targets))
        return out

    def _named(self, change: Change) -> list[tuple[tuple[str, str], str]]:
        """The synced tables a DDL names, each with its topic."""
        named = []
        for t in change.ddl_tables:
            try:
                named.append((t, self.layout.topic(*t)))
            except KeyError:
                pass
        return named

    def ddl_topic_targets(self, change: Change) -> list[tuple[str, list[int]]]:
        """`ddl_messages.to: ddl_topic`: the DDL topic, in partition 0 (`one`), or (`table`) in the partition of
        each named synced table's `db.table` hash (all partitions for a statement naming no table); a statement
        naming tables, none of them synced, goes nowhere (as in the data topics)."""
        d = self.ddl_to
        named = self._named(change)
        if change.ddl_tables and not named:
            return []
        n = self.layout.partitions[d.topic]
        if not d.by_table:
            return [(d.topic, [0])]
        if not named:
            return [(d.topic, list(range(n)))]
        return [(d.topic, sorted({hash_partition(table_key(db, t), n) for (db, t), _ in named}))]

    def _route_ddl(self, change: Change, out: dict[str, list[OutItem]]) -> int:
        """The DDL's messages (see `ddl_targets`, `ddl_to`); the next free seq of its position."""
        seq = 0
        own_sent = False
        to = self.ddl_to.to
        if to == "ddl_topic":
            targeted = self.ddl_topic_targets(change)
        else:
            targeted = self.ddl_targets(change)
            if to == "none":  # encoded once, for the format's own topics only
                targeted = [(topic, []) for topic, _ in targeted[:1]]
        for topic, targets in targeted:
            own_here = False
            for rec in self.encoder.encode(change, topic):
                if rec.topic == topic:
                    for p in targets:
                        out.setdefault(self.layout.lane(topic, p), RecordBatch()).append(
                            OutRecord(topic, p, rec.key, rec.value, change.position, seq, change.commit_time))
                        seq += 1
                elif not own_sent:  # the format's own topic (schema changes) gets the statement once
                    self._add_to_own_topic(rec, change, seq, out)
                    own_here = True
                    seq += 1
            own_sent = own_sent or own_here
        return seq

    def _route_history(self, change: Change, out: dict[str, list[OutItem]], seq: int) -> None:
        """The schema-history records of a log DDL naming a synced table (or, naming none, of a synced table's
        structure it carries), in partition 0 of the history topic after the DDL's other messages."""
        h = self.history
        assert h is not None
        named = {t for t, _ in self._named(change)}
        if not (named if change.ddl_tables else change.table is not None):
            return
        lane = self.layout.lane(h.topic, 0)
        synced = (lambda db, name: (db, name) in named) if change.ddl_tables else (lambda db, name: True)
        for key, value in history_records(change, h.server, synced):
            out.setdefault(lane, RecordBatch()).append(
                OutRecord(h.topic, 0, key, value, change.position, seq, change.commit_time))
            seq += 1

    def _route_heartbeat(self, change: Change, out: dict[str, list[OutItem]]) -> None:
        """A heartbeat goes to every partition of every topic of the task's tables (the fixed partition only,
        under the One rule): each consumer of a partition sees the task's progress."""
        layout = self.layout
        seq = 0
        for topic in layout.table_topics():
            targets = [self.fixed_partition] if self.partitioning == "one" else range(layout.partitions[topic])
            for rec in self.encoder.encode(change, topic):
                if rec.topic != topic:
                    continue  # a format's own topics (schema changes) get no heartbeats
                for p in targets:
                    out.setdefault(layout.lane(topic, p), RecordBatch()).append(
                        OutRecord(topic, p, rec.key, rec.value, change.position, seq, change.commit_time))
                    seq += 1

    def _add_to_own_topic(self, rec: Any, change: Change, seq: int, out: dict[str, list[OutItem]]) -> None:
        """A record for a topic of the format's own (see `Encoder.extra_topics`): partitioned by its key."""
        n = self.layout.partitions[rec.topic]
        p = hash_partition(rec.key, n) if rec.key is not None else 0
        out.setdefault(self.layout.lane(rec.topic, p), RecordBatch()).append(
            OutRecord(rec.topic, p, rec.key, rec.value, change.position, seq, change.commit_time))

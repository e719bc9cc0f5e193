"""`obsync verify TASK.yaml`: compare each table the task syncs with the state its topic(s) describe.

For every selected table (narrowed by `--tables`):

1. The source is read in one consistent, read-only view (`obsync.connectors.mysql.snapshot.consistent`), whose
   binlog position is the *cut* (MariaDB: exact; MySQL: exact when no transaction committed while it opened;
   OceanBase: `AS OF SNAPSHOT` an SCN, no cut).
2. The table's topics are read from the start to the end of every partition, without a consumer group's
   commits, and replayed per key (`compare.TopicState`) with the format's decoder; messages positioned after
   the cut are left out, so the topic is read as of the source's view.
3. The source's rows (under the object's `where`, shaped by its `columns`) are encoded and decoded as the task
   would write them and compared with that state, in batches.
4. When the task had not yet written everything up to the cut, keys that differ may be changes in flight: the
   topic's new messages are read again (every second, for at most `--recheck-timeout` seconds) and the
   differences re-checked, until none is left, the task has written past the cut (`status.json`), every
   partition holds a message after the cut, or the time is up.

Exit codes: 0 all tables match, 1 something differs, 2 it could not run.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from obsync.app.verify.compare import Difference, TopicState, Where
from obsync.connectors.kafka.client import base_config
from obsync.connectors.kafka.tail import TopicMessage, partition_counts, read_messages
from obsync.connectors.mysql.catalog import SqlCatalog
from obsync.connectors.mysql.connection import connect
from obsync.connectors.mysql.snapshot.consistent import ConsistentView, Cut
from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition, SnapshotPosition, binlog_file_number, position_from_json
from obsync.core.schema import TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.decoding import Decoded, DecodeError, Decoder
from obsync.formats.registry import decoder_for
from obsync.runtime.settings import kafka_settings, sql_endpoint
from obsync.steps.shaping import Shaper
from obsync.task.config import TaskConfig
from obsync.task.objects import compile_where, resolve_objects
from obsync.task.selection import matches

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class TableResult:
    """What verifying one table found."""

    table: str
    topics: list[str]
    keyed: bool
    key: list[str]
    rows_compared: int = 0
    messages_read: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.missing == self.extra == self.different == 0

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "topics": self.topics, "key": self.key or None,
                "compared_as": "rows by key" if self.keyed else "multiset of rows",
                "rows_compared": self.rows_compared, "messages_read": self.messages_read,
                "missing_in_kafka": self.missing, "extra_in_kafka": self.extra, "different": self.different,
                "match": self.matches, "differences": [d.to_json() for d in self.differences],
                "differences_listed": len(self.differences), "notes": self.notes}


@dataclass
class VerifyReport:
    task: str
    source: str
    cut: dict[str, Any] | None
    tables: list[TableResult]
    seconds: float = 0.0
    scn: int | None = None  # OceanBase: the SCN the source was read AS OF

    @property
    def matches(self) -> bool:
        return all(t.matches for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "source": self.source, "cut": self.cut, "scn": self.scn, "match": self.matches,
                "seconds": round(self.seconds, 3), "tables": [t.to_json() for t in self.tables]}


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)  # once per message: faster than json
    except orjson.JSONDecodeError:
        return json.loads(raw)  # integers beyond 64 bits


def position_order(raw: bytes | None, seq: int) -> tuple[str, str | None, LogPosition | None]:
    """(order text, header as text, log position) of a message's `obsync.pos` header."""
    if raw is None:
        return "", None, None
    try:
        pos = position_from_json(_loads(raw))
    except (ValueError, TypeError, IndexError, KeyError):
        return "", raw.decode(errors="replace"), None
    text = raw.decode()
    if isinstance(pos, LogPosition):
        return f"1|{binlog_file_number(pos.file):010d}|{pos.pos:015d}|{pos.row:08d}|{seq:05d}", text, pos
    return f"0|{pos.chunk}", text, None


def after_cut(pos: LogPosition | None, cut: Cut | None) -> bool:
    if pos is None or cut is None:
        return False
    c = cut.position
    return (binlog_file_number(pos.file), pos.pos) > (binlog_file_number(c.file), c.pos)


class TopicReader:
    """Reads a table's topics into its `TopicState`, remembering where each partition ended."""

    def __init__(self, conf: dict[str, Any], decoder: Decoder, topics: dict[str, int], table: tuple[str, str],
                 sole: bool, state: TopicState, cut: Cut | None, progress: Progress) -> None:
        self.conf, self.decoder, self.topics, self.table = conf, decoder, topics, table
        self.sole = sole  # the topics carry this table only: messages naming no table are its own
        self.state, self.cut, self.progress = state, cut, progress
        self.next_offset: dict[tuple[str, int], int] = {(t, p): 0 for t, n in topics.items() for p in range(n)}
        self.past_cut: set[tuple[str, int]] = set()  # partitions holding a message after the cut
        self.read = 0

    def mine(self, d: Decoded) -> bool:
        if d.table is None:
            return self.sole
        db, name = d.table
        return name == self.table[1] and (db == self.table[0] or str(db).endswith("." + self.table[0]))

    def read_all(self) -> int:
        """Read every partition from where it was left to its end; the messages applied."""
        applied = 0
        last = time.monotonic()
        for (topic, part), start in sorted(self.next_offset.items()):
            for m in read_messages(self.conf, topic, part, start):
                applied += self._apply(topic, m)
                self.next_offset[(topic, part)] = m.offset + 1
                self.read += 1
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    self.progress(f"{self.table[0]}.{self.table[1]}: {self.read:,} messages read "
                                  f"({topic}[{part}] at offset {m.offset:,})")
        self.state.commit()
        return applied

    def _apply(self, topic: str, m: TopicMessage) -> int:
        order, header, pos = position_order(m.position, m.seq)
        if after_cut(pos, self.cut):
            self.past_cut.add((topic, m.partition))
            return 0
        try:
            decoded = self.decoder.decode(topic, m.key, m.value)
        except DecodeError as e:
            raise DecodeError(f"{topic}[{m.partition}] offset {m.offset}: {e}") from None
        n = 0
        for d in decoded:
            if d.op != "skip" and self.mine(d):
                self.state.apply(d, Where(m.partition, m.offset, header, order))
                n += 1
        return n

    @property
    def complete(self) -> bool:
        """Every partition holds a message after the cut: all the task wrote up to it has been read."""
        return self.cut is not None and self.past_cut >= set(self.next_offset)


def _task_written_past(task: TaskConfig, state_dir: Path | None, cut: Cut | None) -> bool | None:
    """True when the task's status says it wrote past the cut, False when not (yet), None when it is not
    running (its topics will not change)."""
    from obsync.app.lifecycle import running_pid
    from obsync.task.state import TaskState

    state = TaskState(task.resolved_state_dir(state_dir))
    if running_pid(state) is None:
        return None
    try:
        written = json.loads((state.root / "status.json").read_text()).get("log_position_written")
    except (OSError, ValueError):
        return False
    if cut is None or not written:
        return False
    return not after_cut(cut.position, Cut(LogPosition(written["file"], int(written["pos"])), True))


def verify(task: TaskConfig, patterns: Sequence[str] = (), *, keep: int = 100, recheck_timeout: float = 60.0,
           state_dir: Path | None = None, progress: Progress | None = None,
           workdir: Path | None = None) -> VerifyReport:
    """Compare every selected table of `task` (those matching one of `patterns`, when given)."""
    say = progress or (lambda _: None)
    started = time.monotonic()
    ep = sql_endpoint(task.source)
    conn = connect(ep)
    try:
        res = resolve_objects(SqlCatalog(conn), task)
    finally:
        conn.close()
    names = sorted(n for n in res.plans if not patterns or any(matches(p, *n) for p in patterns))
    if patterns and not names:
        raise ConfigError(f"--tables {' '.join(patterns)}: no table the task syncs matches; it syncs "
                          f"{', '.join(f'{d}.{t}' for d, t in sorted(res.plans)) or 'no table'}")
    view = ConsistentView(ep).open()
    try:
        db_type = "OB_MYSQL" if view.dialect == "oceanbase" else "MYSQL"
        decoder = decoder_for(task.format, EncoderContext(task.name, db_type), task.format_options)
        conf = base_config(kafka_settings(task.target))
        for side in decoder.side_topics():
            for part in range(partition_counts(conf, [side])[side]):
                for m in read_messages(conf, side, part):
                    decoder.learn(side, m.key, m.value)
        topic_tables: dict[str, int] = {}
        for name in res.plans:
            topic_tables[res.plans[name].topic] = topic_tables.get(res.plans[name].topic, 0) + 1
        cut = view.cut
        report = VerifyReport(task.name, f"{view.dialect} {ep.address}",
                              None if cut is None else {"file": cut.position.file, "pos": cut.position.pos,
                                                        "exact": cut.exact}, [], scn=view.scn)
        if view.dialect == "oceanbase":
            say(f"source read AS OF SNAPSHOT {view.scn}; topics read to their end (no log position is known "
                "for an SCN)")
        elif cut is not None:
            say(f"source read at {cut.position}{'' if cut.exact else ' (not exact)'}; topics read up to it")
        shaper = Shaper(task.selection())
        with tempfile.TemporaryDirectory(prefix="obsync-verify-", dir=workdir) as tmp:
            for name in names:
                plan, schema = res.plans[name], res.schemas[name]
                sole = topic_tables[plan.topic] == 1
                report.tables.append(_verify_table(
                    task, view, decoder, conf, shaper, plan.topic, schema, compile_where(plan, schema), sole,
                    Path(tmp) / f"{len(report.tables)}.sqlite", keep, recheck_timeout, state_dir, say))
    finally:
        view.close()
    report.seconds = time.monotonic() - started
    return report


def _verify_table(task: TaskConfig, view: ConsistentView, decoder: Decoder, conf: dict[str, Any], shaper: Shaper,
                  topic: str, schema: TableSchema, row_filter: Any, sole: bool, path: Path, keep: int,
                  recheck_timeout: float, state_dir: Path | None, say: Progress) -> TableResult:
    full = schema.full_name
    probe = shaper.shape([Change(Op.READ, schema, SnapshotPosition("verify", ()), after={
        c.name: None for c in schema.columns})])
    shaped: TableSchema = probe[0].table if probe else schema  # type: ignore[union-attr]  # a READ stays a Change
    key = list(shaped.key_columns)
    result = TableResult(full, [topic], bool(key), key)
    state = TopicState(path, key)
    try:
        topics = partition_counts(conf, [topic])
        reader = TopicReader(conf, decoder, topics, (schema.db, schema.name), sole, state, view.cut, say)
        reader.read_all()
        last = time.monotonic()
        position = SnapshotPosition("verify", ())
        for batch in view.rows(schema.db, schema.name, schema.columns,
                               None if row_filter is None else row_filter.sql):
            changes = shaper.shape([Change(Op.READ, schema, position, after=row) for row in batch])
            images = [decoder.source_image(c, topic) for c in changes]  # type: ignore[union-attr]  # READs stay Changes
            result.rows_compared += state.compare_keyed(images) if key else state.count_source(images)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                say(f"{full}: {result.rows_compared:,} source rows compared")
        state.finish_keyed() if key else state.finish_keyless()
        state.commit()
        if state.difference_count():
            _recheck(task, state, reader, recheck_timeout, state_dir, result, say)
        result.messages_read = reader.read
        counts = state.counts()
        result.missing, result.extra, result.different = counts["missing"], counts["extra"], counts["different"]
        result.differences = state.differences(keep, [c.name for c in shaped.columns])
    finally:
        state.close()
    say(f"{full}: {result.rows_compared:,} rows compared, {result.messages_read:,} messages read: "
        + ("match" if result.matches else
           f"{result.missing} missing in Kafka, {result.extra} extra, {result.different} different"))
    return result


# status.json's written position counts messages handed to the producer: allow them this long to arrive
_DELIVERY_GRACE_S = 5.0


def _recheck(task: TaskConfig, state: TopicState, reader: TopicReader, timeout: float, state_dir: Path | None,
             result: TableResult, say: Progress) -> None:
    """Re-read the topic's new messages and re-check the differences until they are gone or the topic is known
    to hold everything up to the cut (or `timeout` seconds passed)."""
    if reader.cut is None:
        result.notes.append("no log position for the source's view: differences were not re-checked")
        return
    deadline = time.monotonic() + timeout
    delivered_by: float | None = None  # once the task wrote past the cut: when its producer has had time to deliver
    while True:
        if reader.complete:
            return
        written = _task_written_past(task, state_dir, reader.cut)
        if written is None:
            result.notes.append("the task is not running: its topics were read as they are")
            return
        if written and delivered_by is None:
            delivered_by = time.monotonic() + _DELIVERY_GRACE_S
        if delivered_by is not None and time.monotonic() >= delivered_by:
            return  # what is left is a difference
        if time.monotonic() >= deadline:
            result.notes.append(f"the task had not written up to the source's view ({reader.cut.position}) within "
                                f"--recheck-timeout ({timeout:g} s): some differences may be changes in flight")
            return
        n = state.difference_count()
        say(f"{result.table}: {n:,} difference{'' if n == 1 else 's'}; re-checking after the task passes "
            f"{reader.cut.position}")
        time.sleep(1.0)
        reader.read_all()
        if (state.recheck_keyed() if state.keyed else _recount(state)) == 0:
            return


def _recount(state: TopicState) -> int:
    state.finish_keyless()
    state.commit()
    return state.difference_count()


def print_progress(line: str) -> None:
    print(f"verify: {line}", file=sys.stderr, flush=True)

"""Debezium change events of obsync changes: key structs and `{before, after, source, transaction, op, ts_ms,
ts_us, ts_ns}` value structs, as the MySQL connector (3.x, default settings) builds them.

Public entry points:
- `connect_records(change, cfg)`: for one change, its records as `ConnectRecord`s, each with the key struct and
  key Connect schema and the value struct and value Connect schema (plain dicts in the JsonConverter's schema
  format, Connect values: bytes as bytes, Decimal fields as `decimal.Decimal`). This is what the Avro format
  encodes.
- `EventBuilder`: the same, without schemas, in either rendering (Connect values or JSON values), reusing the
  per-table plans; `encode(change, topic)` gives a change's events (the JSON and Avro encoders use it).

What a change becomes (`tombstones_on_delete`, `truncate_events`, `include_schema_changes`,
`truncate_schema_changes` from the options):

| change                              | events, in order                                                          |
|-------------------------------------|---------------------------------------------------------------------------|
| snapshot row (READ)                 | `r` (after)                                                               |
| INSERT                              | `c` (after)                                                               |
| UPDATE                              | `u` (before, after)                                                       |
| UPDATE changing the message key     | `d` (before), tombstone of the old key, `c` (after), as Debezium does     |
| DELETE                              | `d` (before), tombstone (same key, null value)                            |
| DDL                                 | schema-change event(s) in the `<topic_prefix>` topic (key `{databaseName}`) |
| a table's CREATE TABLE at full sync | the same, `source.snapshot` "true" (see `Encoder.snapshot_ddl`)           |
| TRUNCATE TABLE (a DDL)              | a `t` event (null key, no before/after) when `truncate_events` is on; a   |
|                                     | schema-change event only when `truncate_schema_changes` is on             |
| heartbeat                           | nothing (Debezium's heartbeats are off by default)                        |

`source` block: `version` (the Debezium release reproduced), `connector` "mysql", `name` (the topic prefix),
`ts_ms`/`ts_us`/`ts_ns` (the source commit time; for snapshot rows the time the row is encoded, as Debezium
uses its clock during snapshots), `snapshot` ("true" for every snapshot row: which row is a table's or the
snapshot's last is not known to an encoder that sees one row at a time, so Debezium's "first"/"last"/
"last_in_data_collection" markers are not used; "false" otherwise), `db`, `sequence` null, `table`,
`server_id` (0 for snapshot rows), `gtid` (the transaction's GTID, null without GTIDs), `file`, `pos`, `row`
(for snapshot rows "", 0, 0: the snapshot's binlog position is not known to the encoder), `thread` null (not
carried by obsync's changes), `query` null (`include.query` is off by default).
Differences from Debezium, all in metadata: `pos` is the end offset of the rows event (obsync's resumable
position) where Debezium writes its start offset; `thread` is always null; snapshot rows carry no binlog
position. The envelope's `ts_ms`/`ts_us`/`ts_ns` are the encoding time (processing time, as in Debezium).
`transaction` is null (`provide.transaction.metadata` is off by default).

Schema-change events: `{source, ts_ms, databaseName, schemaName: null, ddl, tableChanges}`, `tableChanges` the
table's whole structure after the DDL as Debezium writes it (`obsync.formats.debezium.schema_changes` says which
events a statement gives, `obsync.formats.debezium.table_changes` what each item holds). TRUNCATE TABLE gives
none unless `truncate_schema_changes` is on (Debezium 3.2 and later write none; 3.1 did).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from obsync.core.changes import Change, Op
from obsync.core.errors import SchemaMismatchError
from obsync.core.positions import LogPosition
from obsync.core.schema import TableSchema
from obsync.formats.base import ChangeEncoder, TableCache
from obsync.formats.debezium import connect_schema as cs
from obsync.formats.debezium.config import DebeziumConfig
from obsync.formats.debezium.schema_changes import SchemaChange, schema_changes
from obsync.formats.debezium.values import Convert, compiled_json_kind, converters, explain
from obsync.formats.decoding import SKIP, Decoded
from obsync.formats.default import ddl_type

Struct = dict[str, Any]

try:  # the compiled JSON row writer and orjson's pre-written JSON, when both are there (setup.py, pyproject.toml)
    from orjson import Fragment as _Fragment
    from orjson import dumps as _orjson_dumps

    from obsync.core._render import JsonRow as _JsonRow
except ImportError:  # pragma: no cover - installed without a C compiler
    _JsonRow = None
_NOT_GTID = re.compile(r"^.*\.\d+:\d+$")  # obsync's "file:pos" transaction identity when there is no GTID


class TablePlan:
    """One table's converters and Connect schemas, built once per (table schema, settings)."""

    __slots__ = ("table", "cfg", "ncols", "_connect", "_json", "_key_connect", "_key_json", "key_names",
                 "key_schema", "value_schema", "envelope_schema", "_smt_schema", "_json_cache", "_rows", "_json_row",
                 "_connect_row")

    def __init__(self, table: TableSchema, cfg: DebeziumConfig) -> None:
        self.table = table
        self.cfg = cfg
        self.ncols = len(table.columns)
        convs = [(c.name, *converters(c, cfg)) for c in table.columns]
        self._connect = tuple((n, f) for n, f, _ in convs)
        self._json = tuple((n, f) for n, _, f in convs)
        self.key_names = table.message_key_columns
        connect, json_ = dict(self._connect), dict(self._json)
        self._key_connect = tuple((n, connect[n]) for n in self.key_names)  # in key order, not table order
        self._key_json = tuple((n, json_[n]) for n in self.key_names)
        self.key_schema = cs.key_schema(table, cfg)
        self.envelope_schema = cs.envelope_schema(table, cfg)
        self.value_schema = self.envelope_schema["fields"][0]  # before/after: the `.Value` struct
        self._smt_schema: cs.Schema | None = None
        self._json_cache: dict[str, bytes] = {}
        self._rows = (_row_builder(self._connect), _row_builder(self._json))  # by json_values
        self._json_row = self._connect_row = None
        if _JsonRow is not None and self._json:  # the same per-column kinds serve both renderings
            self._json_row = _JsonRow(
                tuple(n for n, _ in self._json), *zip(*(compiled_json_kind(f) for _, f in self._json), strict=True),
                tuple(f for _, f in self._json), _orjson_dumps)
            self._connect_row = _JsonRow(
                tuple(n for n, _ in self._connect),
                *zip(*(compiled_json_kind(f) for _, f in self._connect), strict=True),
                tuple(f for _, f in self._connect), _orjson_dumps).values

    @property
    def smt_value_schema(self) -> cs.Schema:
        if self._smt_schema is None:
            self._smt_schema = cs.smt_value_schema(self.table, self.cfg)
        return self._smt_schema

    def schema_json(self, which: str, dumps: Callable[[Any], bytes]) -> bytes:
        """A schema serialized once (`key`, `envelope` or `smt`), for the JSON encoders."""
        b = self._json_cache.get(which)
        if b is None:
            s = {"key": self.key_schema, "envelope": self.envelope_schema, "smt": self.smt_value_schema}[which]
            b = self._json_cache[which] = dumps(s)
        return b

    def row(self, row: Mapping[str, Any], json_values: bool) -> Struct:
        """The `.Value` struct of a row image: every column in table order (absent ones null)."""
        try:
            if not json_values and self._connect_row is not None and type(row) is dict:
                out = self._connect_row(row)  # the compiled equivalent of `_rows[False]`
            else:
                out = self._rows[json_values](row.get)
        except Exception as exc:
            raise self._explain(row, json_values, exc) from exc
        if len(row) != self.ncols:
            self._check_names(row)
        return out

    def row_json(self, row: Mapping[str, Any]) -> Any:
        """The `.Value` struct of a row image in JSON values, written once by the compiled row writer as an
        `orjson.Fragment` (orjson writes it as it is, wherever it sits in a message); the struct itself (`row`)
        when the writer is not there or refuses the row, which then also raises the error naming the column."""
        if self._json_row is not None:
            try:
                out = _Fragment(self._json_row(row))
            except Exception:  # noqa: BLE001 - `row` below gives the same JSON or says what is wrong
                return self.row(row, True)
            if len(row) != self.ncols:
                self._check_names(row)
            return out
        return self.row(row, True)

    def row_json_bytes(self, row: Mapping[str, Any]) -> bytes | None:
        """The `.Value` struct of a row image in JSON values, as orjson writes `row(row, True)`, by the compiled
        row writer; None when it is not there or refuses the row, or the row has other columns (`row` then gives
        the struct, or the error naming the column)."""
        if self._json_row is None or len(row) != self.ncols:
            return None
        try:
            return self._json_row(row)  # type: ignore[no-any-return]  # bytes
        except Exception:  # noqa: BLE001 - see the docstring
            return None

    def key(self, row: Mapping[str, Any], json_values: bool) -> Struct | None:
        """The `.Key` struct of a row image (None for tables without message key columns)."""
        if self.key_schema is None:
            return None
        try:
            return {n: None if (v := row[n]) is None else v if f is None else f(v)
                    for n, f in (self._key_json if json_values else self._key_connect)}
        except Exception as exc:
            raise self._explain(row, json_values, exc) from exc

    def key_is_one_plain_column(self) -> bool:
        """Whether the message key is one column whose value enters the key's JSON as it is (no converter), as an
        integer column's does."""
        return self.key_schema is not None and len(self._key_json) == 1 and self._key_json[0][1] is None

    def _check_names(self, row: Mapping[str, Any]) -> None:
        for name in row:
            if name not in self.table.column_names:
                raise SchemaMismatchError(f"row of {self.table.full_name} has column {name!r}, which its schema "
                                          f"does not know; known: {', '.join(self.table.column_names)}")

    def _explain(self, row: Mapping[str, Any], json_values: bool, exc: Exception) -> Exception:
        self._check_names(row)
        missing = [n for n in self.key_names if n not in row]
        if missing:
            return SchemaMismatchError(f"row of {self.table.full_name} lacks its key column(s) {', '.join(missing)}")
        for name, f in self._json if json_values else self._connect:
            value = row.get(name, None)
            if value is None or f is None:
                continue
            try:
                f(value)
            except Exception as e:  # noqa: BLE001 - whatever the converter raised is the failure being explained
                return explain(self.table.full_name, self.table.column(name), value, e)
        return exc


def _row_builder(convs: tuple[tuple[str, Convert | None], ...]) -> Callable[[Callable[[str], Any]], Struct]:
    """`build(row.get)`: the `.Value` struct of a row image, one dict display of the columns in table order,
    each read once and converted unless null (generated once per table: no loop, no test of absent
    converters per value)."""
    namespace: dict[str, Any] = {}
    items = []
    for i, (name, f) in enumerate(convs):
        if f is None:
            items.append(f"{name!r}: get({name!r})")
        else:
            namespace[f"f{i}"] = f
            items.append(f"{name!r}: None if (v{i} := get({name!r})) is None else f{i}(v{i})")
    source = "def build(get):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(source, "<debezium row>", "exec"), namespace)  # noqa: S102 - our own source
    return namespace["build"]


class Event(NamedTuple):
    """One record of a change, without schemas. `kind`: `change` (an envelope in the table's topic),
    `tombstone` (null value), `truncate` (an `op: t` envelope, null key) or `schema_change` (key
    `{databaseName}` and a schema-change value, for the `<topic_prefix>` topic). (A named tuple: one is built
    per message, and tuples are much cheaper to build than frozen dataclasses.)"""

    kind: str
    plan: TablePlan | None
    key: Struct | None
    value: Struct | None


@dataclass(frozen=True, slots=True)
class ConnectRecord:
    """A record with its Connect schemas. `topic` None means the table's topic; otherwise the schema-change
    topic. A null `value` is a tombstone; a null `key_schema`/`key` a record without key."""

    topic: str | None
    key_schema: cs.Schema | None
    key: Struct | None
    value_schema: cs.Schema | None
    value: Struct | None


def source_values(change: Change, now: int) -> tuple[int, str, str, int, int, int, str | None]:
    """What a change's `source` block says of it: (ts_us, snapshot, file, pos, row, server_id, gtid); `now` (ns)
    stands for the commit time of a snapshot row."""
    pos = change.position
    if type(pos) is LogPosition:
        file, offset, row, snapshot = pos.file, pos.pos, pos.row, "false"
    else:
        file, offset, row, snapshot = "", 0, 0, "true"
    ts_us = round(change.commit_time * 1_000_000) if change.commit_time is not None else now // 1_000
    txn = change.txn
    gtid = None if txn is None or ("." in txn and _NOT_GTID.match(txn)) else txn  # a GTID has no "."
    return ts_us, snapshot, file, offset, row, change.server_id or 0, gtid


# the members of `EventBuilder.envelope` and of `EventBuilder.source`, in order (`EventBuilder.envelope_tuple`)
ENVELOPE_FIELDS = ("before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns")
SOURCE_FIELDS = ("version", "connector", "name", "ts_ms", "snapshot", "db", "sequence", "ts_us", "ts_ns", "table",
                 "server_id", "gtid", "file", "pos", "row", "thread", "query")


class EventBuilder(ChangeEncoder[Event]):
    """Builds the events of changes in one rendering (`json_values`: JSON values, else Connect values).

    The router asks for a DDL's records once per topic and partition it delivers DDL to; Debezium writes a
    schema change once, so `encode(change, topic)` returns the schema-change event only the first time it sees
    a DDL change object, and a truncate event once per topic. Heartbeats give no events.
    """

    def __init__(self, cfg: DebeziumConfig, *, json_values: bool, clock: Callable[[], int] = time.time_ns,
                 fragments: bool = False) -> None:
        self.cfg = cfg
        self.json_values = json_values
        # before/after as pre-written JSON (`TablePlan.row_json`) for an encoder that only serializes the events
        self.fragments = fragments and json_values
        self.clock = clock
        self._plans: TableCache[TablePlan] = TableCache(lambda table: TablePlan(table, cfg))
        self._ddl: Change | None = None
        self._ddl_topics: set[str] = set()

    def plan(self, table: TableSchema) -> TablePlan:
        return self._plans.get(table)

    def encode_row(self, change: Change, table: TableSchema, topic: str) -> list[Event]:
        op = change.op
        plan = self._plans.get(table)
        jv = self.json_values
        now = self.clock()
        image = plan.row_json if self.fragments else (lambda r: plan.row(r, jv))
        if op is Op.INSERT or op is Op.READ:
            after = change.after
            assert after is not None
            code = "c" if op is Op.INSERT else "r"
            return [Event("change", plan, plan.key(after, jv),
                          self.envelope(change, plan, None, image(after), code, now))]
        if op is Op.DELETE:
            before = change.before
            assert before is not None
            return self._delete(change, plan, plan.key(before, jv), image(before), now)
        if op is Op.UPDATE:
            before, after = change.before, change.after
            assert before is not None and after is not None
            old_key, new_key = plan.key(before, jv), plan.key(after, jv)
            b, a = image(before), image(after)
            if old_key != new_key:  # the message key changed: delete + tombstone + create, as Debezium does
                return [*self._delete(change, plan, old_key, b, now),
                        Event("change", plan, new_key, self.envelope(change, plan, None, a, "c", now))]
            return [Event("change", plan, new_key, self.envelope(change, plan, b, a, "u", now))]
        raise ValueError(f"cannot encode a {op!r} change")

    # ------------------------------------------------------------------------------------------- parts

    def _delete(self, change: Change, plan: TablePlan, key: Struct | None, before: Struct, now: int) -> list[Event]:
        out = [Event("change", plan, key, self.envelope(change, plan, before, None, "d", now))]
        if self.cfg.tombstones_on_delete:  # even with a null key, as Debezium's EventDispatcher does
            out.append(Event("tombstone", plan, key, None))
        return out

    def envelope(self, change: Change, plan: TablePlan, before: Struct | None, after: Struct | None, op: str,
                 now: int) -> Struct:
        """The value struct of a change event: `op` its code (c, r, u, d, t), `now` the encoding time (ns)."""
        table = plan.table
        return {
            "before": before,
            "after": after,
            "source": self.source(change, table.db, table.name, now),
            "transaction": None,
            "op": op,
            "ts_ms": now // 1_000_000,
            "ts_us": now // 1_000,
            "ts_ns": now,
        }

    def envelope_tuple(self, change: Change, plan: TablePlan, before: Struct | None, after: Struct | None, op: str,
                       now: int) -> tuple[Any, ...]:
        """`envelope`'s values in its members' order (`ENVELOPE_FIELDS`, `SOURCE_FIELDS` for `source`), for a
        writer that takes records as tuples."""
        table = plan.table
        ts_us, snapshot, file, offset, row, server_id, gtid = source_values(change, now)
        source = (cs.DEBEZIUM_VERSION, cs.CONNECTOR, self.cfg.topic_prefix, ts_us // 1_000, snapshot, table.db or "",
                  None, ts_us, ts_us * 1_000, table.name, server_id, gtid, file, offset, row, None, None)
        return before, after, source, None, op, now // 1_000_000, now // 1_000, now

    def source(self, change: Change, db: str | None, table: str | None, now: int) -> Struct:
        """The `source` block of a change (see the module docstring for each member)."""
        ts_us, snapshot, file, offset, row, server_id, gtid = source_values(change, now)
        return {
            "version": cs.DEBEZIUM_VERSION,
            "connector": cs.CONNECTOR,
            "name": self.cfg.topic_prefix,
            "ts_ms": ts_us // 1_000,
            "snapshot": snapshot,
            "db": db or "",
            "sequence": None,
            "ts_us": ts_us,
            "ts_ns": ts_us * 1_000,
            "table": table,
            "server_id": server_id,
            "gtid": gtid,
            "file": file,
            "pos": offset,
            "row": row,
            "thread": None,
            "query": None,
        }

    def encode_ddl(self, change: Change, topic: str) -> list[Event]:
        first = change is not self._ddl
        if first:
            self._ddl, self._ddl_topics = change, set()
        elif topic in self._ddl_topics:
            return []
        self._ddl_topics.add(topic)
        out: list[Event] = []
        now = self.clock()
        truncate = change.table is not None and ddl_type(change.ddl or "") == "TRUNCATE TABLE"
        if first and self.cfg.include_schema_changes and (not truncate or self.cfg.truncate_schema_changes):
            out.extend(self._schema_changes(change, now))
        if self.cfg.truncate_events and truncate:
            assert change.table is not None
            plan = self.plan(change.table)
            out.append(Event("truncate", plan, None, self.envelope(change, plan, None, None, "t", now)))
        return out

    def _schema_changes(self, change: Change, now: int) -> list[Event]:
        """The schema-change events of a DDL: one per statement, but one per table of a DROP TABLE (with
        Debezium's per-table statement text), as Debezium writes them (`obsync.formats.debezium.schema_changes`)."""
        return [self._schema_change(change, sc, now) for sc in schema_changes(change)]

    def _schema_change(self, change: Change, sc: SchemaChange, now: int) -> Event:
        value = {
            "source": self.source(change, sc.db, sc.source_table, now),
            "ts_ms": now // 1_000_000,
            "databaseName": sc.db,
            "schemaName": None,
            "ddl": sc.ddl,
            "tableChanges": list(sc.table_changes),
        }
        return Event("schema_change", None, {"databaseName": sc.db}, value)


def connect_records(change: Change, cfg: DebeziumConfig, *, builder: EventBuilder | None = None) -> list[ConnectRecord]:
    """The records of `change` with Connect values and their Connect schemas (see the module docstring).

    Pass a long-lived `builder` (an `EventBuilder(cfg, json_values=False)`) to reuse per-table plans and to get
    the DDL de-duplication described on `EventBuilder`; without one, every call stands alone.
    """
    b = builder or EventBuilder(cfg, json_values=False)
    if b.json_values:
        raise ValueError("connect_records needs an EventBuilder with json_values=False")
    out = []
    for e in b.encode(change, ""):
        if e.kind == "schema_change":
            out.append(ConnectRecord(cfg.topic_prefix, cs.schema_change_key_schema(), e.key,
                                     cs.schema_change_value_schema(), e.value))
        else:
            assert e.plan is not None
            key_schema = None if e.kind == "truncate" else e.plan.key_schema
            value_schema = None if e.kind == "tombstone" else e.plan.envelope_schema
            out.append(ConnectRecord(None, key_schema, e.key, value_schema, e.value))
    return out


# ---------------------------------------------------------------------- reading back

_ENVELOPE_OPS = {"c": "insert", "r": "insert", "u": "update", "d": "delete", "t": "truncate"}


def decode_envelope(value: Any, key: Any) -> list[Decoded]:
    """The row operation of an envelope's payload (`value`; None for a tombstone, which deletes the row of its
    key payload `key`). Anything else (a schema change) is skipped."""
    if value is None:
        return [Decoded("delete", None, dict(key), None)] if isinstance(key, dict) else [SKIP]
    if not isinstance(value, dict):
        return [SKIP]
    op = _ENVELOPE_OPS.get(value.get("op"))  # type: ignore[arg-type]  # any value; unknown: skipped
    source = value.get("source")
    if op is None or not isinstance(source, dict):
        return [SKIP]
    return [Decoded(op, (source.get("db"), source.get("table")),  # type: ignore[arg-type]  # op is one of _ENVELOPE_OPS' values
                    value.get("before") if op in ("update", "delete") else None,
                    value.get("after") if op in ("insert", "update") else None)]

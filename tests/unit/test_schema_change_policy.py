"""The schema-change policies' pure parts: the `ignore` shapes (`obsync.core.frozen_shapes`, their history in
`obsync.connectors.mysql.binlog.schema_policy`), `stop`'s message, and the `compatible` shape adjustment
(`obsync.formats.avro.compat`) checked against the test registry's Avro resolution rules."""

from __future__ import annotations

import copy
import struct
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from pymysqlreplication.constants import FIELD_TYPE as FT

from obsync.connectors.mysql.binlog.schema_history import FileHistoryStore
from obsync.connectors.mysql.binlog.schema_policy import SHAPES, SchemaChangeStopped, SchemaPolicy, sibling_store
from obsync.core.changes import Op
from obsync.core.errors import ConfigError, StateError
from obsync.core.frozen_shapes import Shape, ShapeConversionError, follow_ddl, projector
from obsync.core.positions import LogPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.avro.compat import compatible_shape
from obsync.sql import ddl as D
from obsync.sql.ddl import TableDef
from obsync.task.config import parse_task
from tests.helpers.schema_registry import can_read, expand
from tests.unit.test_binlog_session import Events, Stream, drain, session

ID = Column("id", "int", "int(11)", nullable=False)
B = Column("b", "int", "int(11)", nullable=False)  # NOT NULL, no default
C = Column("c", "varchar", "varchar(10)", charset="utf8mb4", precision=10, default="x")
T = TableSchema("db", "t", (ID, B, C), primary_key=("id",))


def alter(table: TableSchema, sql: str) -> tuple[TableSchema, TableSchema, dict[str, str]]:
    """The table before and after `sql`, and the statement's column renames (as the policy reads them)."""
    st = D.parse_ddl(sql, "db", "mariadb")
    assert isinstance(st, D.AlterTable)
    new = D.apply_alter(TableDef(table, (("PRIMARY", "primary", ("id",)),), "utf8mb4"), st).schema
    renames = {a[1]: a[2] for a in st.actions if a[0] == "rename_column"}
    renames |= {a[1]: a[2].name for a in st.actions if a[0] == "modify_column" and a[1] != a[2].name}
    return table, new, renames


def test_ignore_leaves_new_columns_out_sends_dropped_ones_as_default_or_null_and_keeps_old_names():
    shape = Shape(T)
    old, new, renames = alter(T, "ALTER TABLE t ADD COLUMN n INT NULL")
    shape, notes = follow_ddl(shape, old, new, renames)
    assert shape.schema == T and notes == ["column n is new: left out"]
    assert projector(shape, new)({"id": 1, "b": 2, "c": "y", "n": 9}) == {"id": 1, "b": 2, "c": "y"}

    old, new2, renames = alter(new, "ALTER TABLE t RENAME COLUMN b TO b2")
    shape, notes = follow_ddl(shape, old, new2, renames)
    assert notes == ["column b is renamed b2: still sent as b"]
    assert projector(shape, new2)({"id": 1, "b2": 2, "c": "y", "n": 9}) == {"id": 1, "b": 2, "c": "y"}

    old, new3, renames = alter(new2, "ALTER TABLE t DROP COLUMN c, DROP COLUMN b2")
    shape, notes = follow_ddl(shape, old, new3, renames)
    # c has a default: sent as it; b (NOT NULL, no default) has no value: sent as null, and so becomes nullable
    assert notes == ["column b is gone: sent as null, so it is now optional (it had no default)",
                     "column c is gone: sent as its default x"]
    assert [c.name for c in shape.schema.columns] == ["id", "b", "c"]
    assert shape.schema.column("b").nullable and not T.column("b").nullable
    assert projector(shape, new3)({"id": 1, "n": 9}) == {"id": 1, "b": None, "c": "x"}
    # the shape survives its JSON form (as persisted)
    assert Shape.from_dict(shape.to_dict()) == shape


def test_ignore_sends_a_changed_type_in_the_old_one_or_stops():
    shape = Shape(T)
    old, new, renames = alter(T, "ALTER TABLE t MODIFY b BIGINT NOT NULL, MODIFY c INT")
    shape, notes = follow_ddl(shape, old, new, renames)
    assert notes == ["column c changed type to int(11): still sent as varchar(10), its values converted"]
    project = projector(shape, new)
    assert project({"id": 1, "b": 2**40, "c": 5}) == {"id": 1, "b": 2**40, "c": "5"}  # never cut, text kept
    _, back, _ = alter(T, "ALTER TABLE t MODIFY b VARCHAR(20) NOT NULL")
    project = projector(Shape(T), back)
    assert project({"id": 1, "b": " 12", "c": None}) == {"id": 1, "b": 12, "c": None}
    with pytest.raises(ShapeConversionError, match=r"column b \(varchar\(20\) now, sent as int\(11\)\): value 'x'"):
        project({"id": 1, "b": "x", "c": None})
    dec = TableSchema("db", "t", (ID, Column("b", "decimal", "decimal(5,2)", precision=5, scale=2)))
    assert projector(Shape(dec), TableSchema("db", "t", (ID, Column("b", "double", "double"))))(
        {"id": 1, "b": 1.25})["b"] == Decimal("1.25")


def defs(table: TableSchema) -> TableDef:
    return TableDef(table, (("PRIMARY", "primary", ("id",)),), "utf8mb4")


def test_ignore_shapes_persist_by_position_and_follow_a_table_rename(tmp_path: Path):
    p0, p1, p2 = LogPosition("b.000001", 100), LogPosition("b.000001", 200), LogPosition("b.000001", 300)
    policy = SchemaPolicy("ignore", tmp_path)
    policy.start({("db", "t"): defs(T)}, p0)
    _, new, _ = alter(T, "ALTER TABLE t ADD COLUMN n INT")
    policy.on_ddl("ALTER TABLE t ADD COLUMN n INT", "db", "mariadb", p1, [(("db", "t"), defs(T), defs(new))], True)
    plan = policy.plan(new, p1)
    assert plan is not None and plan[0] == T
    moved = TableSchema("db", "u", new.columns, primary_key=("id",))
    policy.on_ddl("RENAME TABLE t TO u", "db", "mariadb", p2,
                  [(("db", "t"), defs(new), None), (("db", "u"), None, defs(moved))], True)
    plan = policy.plan(moved, p2)
    assert plan is not None and plan[0].name == "u" and plan[0].column_names == ("id", "b", "c")
    assert (tmp_path / "schema_shapes.jsonl").exists()

    # a restart at p1 (between the ALTER and the RENAME) reads the shapes back: the old shape still
    again = SchemaPolicy("ignore", tmp_path)
    again.start({("db", "t"): defs(new)}, p1)
    plan = again.plan(new, p1)
    assert plan is not None and plan[0] == T
    # the same restart at p0 replays the ALTER: nothing is recorded twice
    lines = (tmp_path / "schema_shapes.jsonl").read_text().splitlines()
    third = SchemaPolicy("ignore", tmp_path)
    third.start({("db", "t"): defs(T)}, p0)
    third.on_ddl("ALTER TABLE t ADD COLUMN n INT", "db", "mariadb", p1, [(("db", "t"), defs(T), defs(new))], False)
    assert (tmp_path / "schema_shapes.jsonl").read_text().splitlines() == lines


def test_stop_names_the_statement_table_position_and_the_way_on():
    pos = LogPosition("mysql-bin.000003", 4567)
    policy = SchemaPolicy("stop", None)
    _, new, _ = alter(T, "ALTER TABLE t ADD COLUMN n INT")
    change = [(("db", "t"), defs(T), defs(new))]
    with pytest.raises(SchemaChangeStopped) as e:
        policy.on_ddl("ALTER TABLE t ADD COLUMN n INT", "db", "mariadb", pos, change, True)
    assert str(e.value).startswith("schema change at mysql-bin.000003:4567 on table db.t: "
                                   "'ALTER TABLE t ADD COLUMN n INT'. The task's schema_changes.policy is stop")
    assert "set schema_changes.policy to evolve" in str(e.value) and "resumes at this statement" in str(e.value)
    # a statement the task had passed already (a resume reads it again), and a new table: no stop
    policy.on_ddl("ALTER TABLE t ADD COLUMN n INT", "db", "mariadb", pos, change, False)
    policy.on_ddl("CREATE TABLE v (id INT)", "db", "mariadb", pos, [(("db", "v"), None, defs(T))], True)


def test_policy_setting_and_its_checks():
    base = {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "k:9092"},
            "objects": [{"match": "db.t"}]}
    assert parse_task(base).schema_changes.policy == "evolve"
    assert parse_task({**base, "schema_changes": {"policy": "ignore"}}).schema_changes.policy == "ignore"
    with pytest.raises(ConfigError, match=r"field `schema_changes.policy`: Input should be 'evolve', 'ignore', "
                                          r"'stop' or 'compatible'"):
        parse_task({**base, "schema_changes": {"policy": "exception"}})
    for fmt, options in (("debezium", {}), ("avro", {}), ("avro", {"schema_registry": {"user": None}})):
        with pytest.raises(ConfigError, match=r"field `schema_changes`: .*policy compatible .* needs format avro "
                                              r"with format_options.schema_registry.url"):
            parse_task({**base, "format": fmt, "format_options": options,
                        "schema_changes": {"policy": "compatible"}})
    ok = parse_task({**base, "format": "avro", "format_options": {"schema_registry": {"url": "http://r:8081"}},
                     "schema_changes": {"policy": "compatible"}})
    assert ok.schema_changes.policy == "compatible"


# ---------------------------------------------------------------------- compatible: the shape adjustment


def record(*fields: dict) -> dict:
    """A table's value record inside a Debezium-like envelope (before/after share it)."""
    value = {"type": "record", "name": "Value", "namespace": "task.db.t", "fields": list(fields)}
    return {"type": "record", "name": "Envelope", "namespace": "task.db.t",
            "fields": [{"name": "before", "type": ["null", value], "default": None},
                       {"name": "after", "type": ["null", "task.db.t.Value"], "default": None},
                       {"name": "op", "type": "string"}]}


ID_F = {"name": "id", "type": "int"}
A_F = {"name": "a", "type": "int"}  # INT NOT NULL
BIG_F = {"name": "big", "type": "long"}  # BIGINT NOT NULL
NOTE_F = {"name": "note", "type": ["null", "string"], "default": None}
OLD = record(ID_F, A_F, BIG_F, NOTE_F)
# each DDL kind: the new schema obsync builds for it
DDL = {
    "add column": record(ID_F, A_F, BIG_F, NOTE_F, {"name": "n", "type": ["null", "string"], "default": None}),
    "add NOT NULL without default": record(ID_F, A_F, BIG_F, NOTE_F, {"name": "r", "type": "int"}),
    "drop column": record(ID_F, BIG_F, NOTE_F),
    "widen type": record(ID_F, {"name": "a", "type": "long"}, BIG_F, NOTE_F),
    "narrow type": record(ID_F, A_F, {"name": "big", "type": "int"}, NOTE_F),
    "incompatible type": record(ID_F, {"name": "a", "type": "string"}, BIG_F, NOTE_F),
    "rename column": record(ID_F, {"name": "a2", "type": "int"}, BIG_F, NOTE_F),
    "make NOT NULL": record(ID_F, A_F, BIG_F, {"name": "note", "type": "string"}),
}
# (level, ddl) -> what obsync registers: "as is", the field changed ("name: type"), or "stop"
EXPECTED = {
    "BACKWARD": {"add column": "as is", "add NOT NULL without default": "r: ['null', 'int']", "drop column": "as is",
                 "widen type": "as is", "narrow type": "big: long", "incompatible type": "stop",
                 "rename column": "a2: ['null', 'int']", "make NOT NULL": "note: ['null', 'string']"},
    "FORWARD": {"add column": "as is", "add NOT NULL without default": "as is", "drop column": "stop",
                "widen type": "stop", "narrow type": "as is", "incompatible type": "stop", "rename column": "stop",
                "make NOT NULL": "as is"},
    "FULL": {"add column": "as is", "add NOT NULL without default": "r: ['null', 'int']", "drop column": "stop",
             "widen type": "stop", "narrow type": "big: long", "incompatible type": "stop", "rename column": "stop",
             "make NOT NULL": "note: ['null', 'string']"},
    "NONE": dict.fromkeys(DDL, "as is"),
}


def compatible(level: str, old: dict, new: dict) -> bool:
    """The test registry's verdict (Avro resolution rules, written independently of obsync's adjustment)."""
    backward = not can_read(expand(new), expand(old))
    forward = not can_read(expand(old), expand(new))
    return {"NONE": True, "BACKWARD": backward, "FORWARD": forward, "FULL": backward and forward}[level]


def value_fields(schema: dict) -> dict:
    return {f["name"]: f for f in schema["fields"][0]["type"][1]["fields"]}


@pytest.mark.parametrize("level", list(EXPECTED))
@pytest.mark.parametrize("ddl", list(DDL))
def test_compatible_shape_is_the_smallest_change_the_level_accepts(level: str, ddl: str):
    new = DDL[ddl]
    before = copy.deepcopy(new)
    out = compatible_shape(OLD, new, level)
    assert new == before  # the schema given is not changed in place
    expected = EXPECTED[level][ddl]
    if expected == "stop":
        assert out.problems and not compatible(level, OLD, out.schema)
        return
    assert not out.problems
    assert compatible(level, OLD, out.schema)
    if expected == "as is":
        assert out.schema == new and not out.notes and compatible(level, OLD, new)
        return
    assert not compatible(level, OLD, new)  # it needed the change
    name, _, type_text = expected.partition(": ")
    changed = {k for k, f in value_fields(out.schema).items() if f != value_fields(new)[k]}
    assert changed == {name} and str(value_fields(out.schema)[name]["type"]) == type_text
    assert len(out.notes) == 1 and out.notes[0].startswith(f"Value.{name}: ")


def test_compatible_shape_reads_transitive_levels_as_their_base():
    assert compatible_shape(OLD, DDL["drop column"], "FULL_TRANSITIVE").problems == [
        "Value.a: dropped, and readers of the old schema need it (it has no default)"]
    assert compatible_shape(OLD, DDL["incompatible type"], "BACKWARD_TRANSITIVE").problems == [
        "Value.a: type changed from int to string, which is no Avro promotion"]


# ---------------------------------------------------------------------- in the reader's session (fake events)


def alter_then_row() -> tuple[Events, int]:
    """Transaction 41 inserts row 1; transaction 42 is `ALTER TABLE t ADD COLUMN w INT`; then row 4 with w."""
    e = Events()
    e.gtid(41)
    e.query("BEGIN")
    e.table_map()
    e.insert((1, "a"))
    e.xid()
    ddl_start = e.pos
    e.gtid(42)
    e.query("ALTER TABLE t ADD COLUMN w INT")
    e.anonymous_gtid()
    e.query("BEGIN")
    e.table_map()
    e.out[-1].columns.append(SimpleNamespace(type=FT.LONG))
    e.out[-1].null_bitmask = b"\x06"
    e.insert((4, "d"))
    e.out[-1].packet.packet = SimpleNamespace(_data=b"\x00" + struct.pack("<i", 4) + b"\x01d" + struct.pack("<i", 9),
                                              _position=0)
    e.out[-1].event_size = 11
    e.out[-1].columns_present_bitmap = b"\x07"
    e.xid()
    return e, ddl_start


def test_session_stop_hands_out_what_came_before_with_a_state_at_the_ddl_and_stops():
    e, ddl_start = alter_then_row()
    reader, s = session()
    reader.policy = SchemaPolicy("stop", None)
    with pytest.raises(SchemaChangeStopped, match=r"schema change at binlog\.000007:\d+ on table shop\.t: "
                                                  r"'ALTER TABLE t ADD COLUMN w INT'"):
        s.stream_from(Stream(e.out))
    batches = drain(reader)
    assert [c.after for b in batches for c in b.changes] == [{"id": 1, "v": "a"}]
    assert batches[-1].state.restart_point == LogPosition("binlog.000007", ddl_start)  # a resume reads the DDL again


def test_session_ignore_sends_rows_after_the_ddl_in_the_old_shape():
    e, _ = alter_then_row()
    reader, s = session()
    reader.policy = SchemaPolicy("ignore", None)
    reader.policy.start({("shop", "t"): s.tracker.get(("shop", "t"))}, LogPosition("binlog.000007", 4))
    s.stream_from(Stream(e.out))
    s.flush(force=True)
    changes = [c for b in drain(reader) for c in b.changes]
    assert [(c.op, c.after) for c in changes] == [
        (Op.INSERT, {"id": 1, "v": "a"}), (Op.DDL, None), (Op.INSERT, {"id": 4, "v": "d"})]
    assert changes[1].table.column_names == ("id", "v", "w")  # type: ignore[union-attr]  # the DDL reports it
    assert changes[2].table.column_names == ("id", "v")  # type: ignore[union-attr]  # rows keep the shape


def test_shapes_are_kept_where_the_schema_history_is(tmp_path: Path):
    store = sibling_store(tmp_path, SHAPES)
    assert isinstance(store, FileHistoryStore) and store.path == tmp_path / "schema_shapes.jsonl"

    class Control:  # a cluster's store (`obsync.runtime.cluster.ControlHistoryStore`): its sibling in the topic
        def sibling(self, name: str) -> str:
            return f"records {name}/"

    assert sibling_store(Control(), SHAPES) == "records schema_shapes/"
    assert sibling_store(None, SHAPES) is None
    with pytest.raises(StateError, match="cannot keep schema_shapes"):
        sibling_store(object(), SHAPES)

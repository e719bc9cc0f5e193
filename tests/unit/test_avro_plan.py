"""The compiled Avro writers (`obsync.formats.avro.plan`): byte for byte what fastavro writes, for every column
type, option and operation the Debezium content has; data they do not write go to fastavro."""

from __future__ import annotations

import dataclasses
import io
import struct
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from obsync.core.changes import Change, Op
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.avro.encoder import DEBEZIUM_OPTIONS
from obsync.formats.avro.plan import compile_writer, zigzag
from obsync.formats.avro.schemas import avro_schema, datum_converter, decimal_bytes, renames_fields
from obsync.formats.avro.wire import AvroWriter
from obsync.formats.debezium.config import parse_options
from obsync.formats.debezium.envelope import EventBuilder
from tests.unit.test_format_debezium import COLUMN_CASES


@pytest.fixture(autouse=True, params=["C", "Python"])
def writer_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the writer compiled to C (`obsync/core/_render.c`, when built) and with the one
    generated in Python."""
    from obsync.formats.avro import plan

    if request.param == "Python":
        monkeypatch.setattr(plan, "_AvroWriter", None)
    elif plan._AvroWriter is None:
        pytest.skip("installed without a C compiler")
    return str(request.param)


def test_the_writer_of_each_kind_is_the_one_tested(writer_kind: str) -> None:
    from obsync.formats.avro import plan

    w = compile_writer(parse_schema({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}))
    assert w is not None and (type(w) is plan._AvroWriter) == (writer_kind == "C")
    assert w({"a": -65}) == b"\x81\x01"


def fastavro_bytes(parsed: Any, datum: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parsed, datum)
    return buf.getvalue()


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, -65, 8191, 8192, -8193, 2**27, -(2**27) - 1, 2**31 - 1,
                               -(2**31), 2**63 - 1, -(2**63), 300, -300])
def test_zigzag_is_avro_long(n: int) -> None:
    assert zigzag(n) == fastavro_bytes(parse_schema("long"), n)


OPTIONS = [{}, {"logical_types": "all"}, {"decimal_handling_mode": "string"}, {"decimal_handling_mode": "double"},
           {"bigint_unsigned_handling_mode": "precise"}]


def everything(options: dict[str, str]) -> tuple[Any, str, TableSchema, dict[str, Any], dict[str, Any]]:
    """(config, logical_types, table, row, the row with every nullable column null): a table with a column of
    every type the Debezium tests cover, under `options`."""
    options = dict(options)
    logical = options.pop("logical_types", "connect")
    cfg = parse_options("avro", "task1", options, DEBEZIUM_OPTIONS)
    columns = [Column("id", "bigint", "bigint(20)", nullable=False)]
    row: dict[str, Any] = {"id": 7}
    for i, (col, value, _, _) in enumerate(COLUMN_CASES):
        columns.append(dataclasses.replace(col, name=f"c{i}"))
        row[f"c{i}"] = value
    table = TableSchema("shop", "everything", tuple(columns), primary_key=("id",))
    nulls = {k: (v if k == "id" or not table.column(k).nullable else None) for k, v in row.items()}
    return cfg, logical, table, row, nulls


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_every_column_type_writes_the_bytes_fastavro_writes(options: dict[str, str]) -> None:
    cfg, logical, table, row, nulls = everything(options)
    builder = EventBuilder(cfg, json_values=False, clock=lambda: 1_700_000_002_123_456_789)
    pos = LogPosition("mysql-bin.000042", 1234567, 1)
    changes = [Change(Op.INSERT, table, pos, after=row, commit_time=1700000001.0, txn="g:1", server_id=7),
               Change(Op.UPDATE, table, pos, before=row, after=nulls, commit_time=1700000001.0, txn=None),
               Change(Op.DELETE, table, pos, before=nulls, commit_time=1700000001.0),
               Change(Op.READ, table, SnapshotPosition("shop.everything/0000", (7,)), after=row)]
    plan = builder.plan(table)
    writers = {}
    for part, connect in (("key", plan.key_schema), ("value", plan.envelope_schema)):
        schema = avro_schema(connect, logical)
        w = AvroWriter(schema, b"\x00")
        writers[part] = (w, datum_converter(connect), compile_writer(w.parsed, decimal_bytes))
        assert w.fast is not None and not renames_fields(connect)
    written = 0
    for change in changes:
        for e in builder.encode(change, "t"):
            for part, value in (("key", e.key), ("value", e.value)):
                if value is None:
                    continue
                w, convert, direct = writers[part]
                datum = value if convert is None else convert(value)
                expected = fastavro_bytes(w.parsed, datum)
                assert w.fast(datum) == expected, (change.op, part)
                assert direct is not None and direct(value) == expected, (change.op, part)  # Connect values as such
                written += 1
    assert written == 9  # a delete also writes its tombstone's key


def test_what_the_compiled_writer_refuses_is_written_by_fastavro() -> None:
    schema = {"type": "record", "name": "R", "namespace": "t", "fields": [
        {"name": "d", "type": "double"}, {"name": "s", "type": ["null", "string"], "default": None}]}
    w = AvroWriter(schema, b"\xc3\x01")
    parsed = parse_schema(schema)
    assert w.fast is not None
    for datum in ({"d": 1.5, "s": "x"}, {"d": 2, "s": None}, {"d": 0.5}):  # an int for a double, a missing field
        assert w.write(datum) == b"\xc3\x01" + fastavro_bytes(parsed, datum)
    assert w.write({"d": 2, "s": None})[2:] == struct.pack("<d", 2.0) + b"\x00"


def test_schemas_with_other_types_keep_fastavro() -> None:
    assert compile_writer(parse_schema({"type": "record", "name": "E", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "X", "symbols": ["a"]}}]})) is None
    assert compile_writer(parse_schema({"type": "record", "name": "U", "fields": [
        {"name": "u", "type": ["null", "int", "string"]}]})) is None


_SCALARS: list[tuple[Any, Any]] = [  # (Avro type, value maker(random))
    ("boolean", lambda r: r.random() < 0.5),
    ("int", lambda r: r.choice([0, 1, -1, 63, 64, -65, 2**31 - 1, -(2**31)]) if r.random() < 0.3
     else r.randrange(-(2**31), 2**31) >> r.randrange(32)),
    ("long", lambda r: r.choice([0, -1, 2**63 - 1, -(2**63), 2**62, 1_700_000_000_123_456_789]) if r.random() < 0.3
     else r.randrange(-(2**63), 2**63) >> r.randrange(64)),
    ("float", lambda r: r.choice([0.0, -0.0, 1.5, float("inf"), 3.4e38, 1e-45])),
    ("double", lambda r: r.choice([0.0, -0.0, 0.1, float("inf"), float("-inf"), 1e308, 5e-324, r.random()])),
    ("string", lambda r: r.choice(["", "a", "é", "无线鼠标", "😀" * 20, "x" * 63, "y" * 64, "z" * 9000])),
    ("bytes", lambda r: r.choice([b"", b"\x00", b"\xff" * 63, b"\x80" * 64, bytes(range(256)) * 70])),
    ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}, lambda r: r.choice([b"\x01", b""])),
    ({"type": "int", "logicalType": "date"}, lambda r: r.randrange(-(2**31), 2**31)),
    ({"type": "long", "logicalType": "timestamp-micros"}, lambda r: r.randrange(-(2**63), 2**63)),
]


def test_random_data_of_every_primitive_writes_the_bytes_fastavro_writes() -> None:
    """Each primitive alone, as `["null", T]` and as `[T, "null"]`, in a nested record and its optional twin:
    random values (nulls, unicode, long strings and bytes, extreme numbers) give fastavro's bytes, and data the
    compiled writer leaves to fastavro (a scalar in tuple notation, a value of another type) give them too."""
    import random

    fields: list[dict[str, Any]] = []
    makers = {}
    for i, (t, make) in enumerate(_SCALARS):
        for shape, ft in (("p", t), ("n", ["null", t]), ("t", [t, "null"])):
            fields.append({"name": f"{shape}{i}", "type": ft})
            makers[f"{shape}{i}"] = (shape, make)
    inner = {"type": "record", "name": "Inner", "namespace": "t", "fields": fields}
    schema = {"type": "record", "name": "Outer", "namespace": "t", "fields": [
        {"name": "a", "type": ["null", inner]}, {"name": "b", "type": ["null", "t.Inner"]},
        {"name": "c", "type": "t.Inner"}]}
    w = AvroWriter(schema, b"")
    assert w.fast is not None
    r = random.Random(20261202)

    def inner_datum() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (shape, make) in makers.items():
            out[name] = None if shape != "p" and r.random() < 0.3 else make(r)
        return out

    fallbacks = 0
    for _ in range(300):
        a = None if r.random() < 0.2 else inner_datum()
        if a is not None and r.random() < 0.3:
            a = ("t.Inner", a)
        datum = {"a": a, "b": None if r.random() < 0.5 else inner_datum(), "c": inner_datum()}
        if r.random() < 0.1:  # data the compiled writer refuses: fastavro's bytes all the same
            datum["c"]["n1"] = ("int", 5)
            datum["c"]["p4"] = 2  # an int for a double
            fallbacks += 1
        expected = fastavro_bytes(w.parsed, datum)
        assert w.write(datum) == expected
        if datum["c"]["p4"] != 2:
            assert w.fast(datum) == expected
    assert fallbacks > 10


def test_connect_decimals_are_written_as_the_converter_makes_them() -> None:
    """With `decimal`, the compiled writer takes Connect Decimals (at any precision, negative, zero, more
    fraction digits than the scale: left to the converter, whose error it is) where fastavro takes bytes."""
    from decimal import Decimal

    from obsync.formats.avro.errors import AvroFormatError

    connect = {"type": "struct", "name": "t.D", "optional": False, "fields": [
        {"field": "d", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "optional": True,
         "parameters": {"scale": "30", "connect.decimal.precision": "65"}},
        {"field": "e", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "optional": False,
         "parameters": {"scale": "0"}}]}
    w = AvroWriter(avro_schema(connect), b"")
    direct = compile_writer(w.parsed, decimal_bytes)
    convert = datum_converter(connect)
    assert direct is not None and convert is not None
    values = [Decimal("0"), Decimal("-0"), Decimal("1E+40"), Decimal("-128"), Decimal("127"), Decimal("128"),
              Decimal("-99999999999999999999999999999999999.999999999999999999999999999999"), Decimal("1.5"), None,
              b"\x01\x02"]
    for d in values:
        for e in values:
            if e is None:
                continue
            datum = {"d": d, "e": e}
            try:
                expected = fastavro_bytes(w.parsed, convert(datum))
            except AvroFormatError:
                with pytest.raises(AvroFormatError):
                    direct(datum)
                continue
            assert direct(datum) == expected, datum


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_encoder_messages_are_fastavro_bytes_of_converted_values(options: dict[str, str]) -> None:
    """The avro encoder's messages (compiled writers on Connect values) against fastavro on converted values, for
    every column type, nulls, and each operation (an update changing the key too)."""
    from obsync.formats.avro.encoder import AvroEncoder
    from obsync.formats.avro.wire import fingerprint, single_object_header

    cfg, logical, table, row, nulls = everything(options)
    clock = lambda: 1_700_000_002_123_456_789  # noqa: E731
    encoder = AvroEncoder(cfg, None, logical_types=logical, clock=clock)
    builder = EventBuilder(cfg, json_values=False, clock=clock)
    pos = LogPosition("mysql-bin.000042", 1234567, 1)
    changes = [Change(Op.INSERT, table, pos, after=row, commit_time=1700000001.25, txn="g:1", server_id=7),
               Change(Op.UPDATE, table, pos, before=row, after=nulls, commit_time=1700000001.0, txn=None),
               Change(Op.UPDATE, table, pos, before=nulls, after={**row, "id": -8}, commit_time=1.0),
               Change(Op.DELETE, table, pos, before=nulls, commit_time=1700000001.0),
               Change(Op.READ, table, SnapshotPosition("shop.everything/0000", (7,)), after=row)]
    plan = builder.plan(table)
    parts = {}
    for part, connect in (("key", plan.key_schema), ("value", plan.envelope_schema)):
        schema = avro_schema(connect, logical)
        parts[part] = (parse_schema(schema), datum_converter(connect), single_object_header(fingerprint(schema)))
    written = 0
    for change in changes:
        got = [r for r in encoder.encode(change, "t") if r.topic == "t"]
        events = builder.encode(change, "t")
        assert len(got) == len(events)
        for record, e in zip(got, events, strict=True):
            for part, value, message in (("key", e.key, record.key), ("value", e.value, record.value)):
                if value is None:
                    assert message is None
                    continue
                parsed, convert, header = parts[part]
                assert message == header + fastavro_bytes(parsed, value if convert is None else convert(value))
                written += 1
    assert written == 14

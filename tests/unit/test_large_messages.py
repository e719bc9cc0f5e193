"""The `large_messages` policies without a broker: splitting, truncation, markers, the fail message, routing."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest

from obsync.core.changes import Change, Op
from obsync.core.errors import SinkError
from obsync.core.positions import LogPosition, position_to_header
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.registry import encoder_for
from obsync.steps.large_messages import (
    MARKER_FIELD,
    MARKER_HEADER,
    PART_HEADER,
    PART_ID_HEADER,
    PARTS_HEADER,
    LargeMessages,
    key_only_change,
    record_size,
    split_parts,
    with_marker,
)
from obsync.steps.routing import Router, TopicLayout

T = TableSchema("shop", "docs", (
    Column("id", "int", "int(11)"),
    Column("title", "varchar", "varchar(50)", charset="utf8mb4"),
    Column("body", "longtext", "longtext", charset="utf8mb4"),
    Column("img", "blob", "blob", charset="binary"),
), ("id",))
POS = LogPosition("mysql-bin.000001", 400, 0)
BIG = Change(Op.INSERT, T, POS, after={"id": 5, "title": "hello", "body": "é" * 4000, "img": b"\x01" * 3000},
             commit_time=1.0)
SMALL = Change(Op.INSERT, T, LogPosition("mysql-bin.000001", 300, 0),
               after={"id": 4, "title": "hi", "body": "short", "img": b"\x02"}, commit_time=1.0)
LIMIT = 3000


def encoder(fmt="default"):
    return encoder_for(fmt, EncoderContext("t", "MYSQL"), {})


def policy(name, fmt="default", counted=None, dl_limit=2000):
    return LargeMessages(name, encoder(fmt), lambda t: dl_limit if t == "dl" else LIMIT, "dl", lambda t: 3,
                         (lambda table, p: counted.append((table, p))) if counted is not None else None)


def untimed(doc):
    """A JSON document without its processing-time fields (`ts`, `ts_ms`, ...)."""
    if isinstance(doc, dict):
        return {k: untimed(v) for k, v in doc.items() if not k.startswith("ts") and k != "systemTime"}
    return [untimed(v) for v in doc] if isinstance(doc, list) else doc


def marker_of(value):
    return json.loads(value)[MARKER_FIELD]


# -- pieces ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,part", [(0, 7), (1, 7), (7, 7), (8, 7), (100, 7), (4096, 1000)])
def test_split_parts_concatenate_to_the_value(size, part):
    value = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    parts = split_parts(value, part)
    assert b"".join(parts) == value
    assert all(len(p) == part for p in parts[:-1]) and 0 < len(parts[-1]) <= part or value == b""
    assert len(parts) == max(1, -(-size // part))


def test_split_parts_refuses_an_empty_part_size():
    with pytest.raises(ValueError):
        split_parts(b"abc", 0)


def test_marker_is_the_first_field_of_a_json_object_and_nothing_else_changes():
    value = b'{"a":1,"b":[2]}'
    marked = with_marker(value, {"policy": "key_only"})
    assert marked == b'{"_obsync_large":{"policy":"key_only"},"a":1,"b":[2]}'
    assert json.loads(marked)["a"] == 1
    assert with_marker(b"{}", {"p": 1}) == b'{"_obsync_large":{"p":1}}'
    assert with_marker(b"\x00\x00\x00\x00\x01avro", {"p": 1}) == b"\x00\x00\x00\x00\x01avro"  # Avro: header only
    assert with_marker(None, {"p": 1}) is None


def test_key_only_change_keeps_the_key_columns():
    c = key_only_change(BIG)
    assert c.table.column_names == ("id",) and c.after == {"id": 5} and c.before is None
    assert c.table.key_columns == ("id",) and c.position == POS
    keyless = TableSchema("shop", "log", (Column("v", "text", "text"),))
    assert key_only_change(Change(Op.DELETE, keyless, POS, before={"v": "x"})).before == {}


# -- policies -------------------------------------------------------------------------------------------------

def test_a_message_that_fits_is_not_touched():
    lm = policy("dead_letter")
    (rec,) = encoder().encode(SMALL, "topic")
    assert lm.fits(rec, SMALL)
    (big,) = encoder().encode(BIG, "topic")
    assert not lm.fits(big, BIG)


def test_fail_names_table_key_position_size_and_how_to_go_on():
    counted = []
    lm = policy("fail", counted=counted)
    (rec,) = encoder().encode(BIG, "topic")
    with pytest.raises(SinkError) as e:
        lm.handle(BIG, "topic", 1, rec, 0, 0)
    size = record_size(rec.key, rec.value, position_to_header(POS))
    msg = str(e.value)
    assert (f"the insert of shop.docs (key id=5) at position mysql-bin.000001:400#0 encodes to {size} bytes, "
            f"more than the {LIMIT} bytes topic 'topic' accepts") in msg
    assert "set `large_messages:` to key_only, truncate or dead_letter" in msg
    assert counted == [("shop.docs", "fail")]


@pytest.mark.parametrize("fmt", ["default", "canal", "debezium_flatten", "dataworks"])
def test_key_only_sends_the_key_columns_with_a_marker(fmt):
    counted = []
    (rec,) = [r for r in encoder(fmt).encode(BIG, "topic") if r.value is not None]
    (out,) = policy("key_only", fmt, counted).handle(BIG, "topic", 1, rec, 0, 0)
    size = record_size(rec.key, rec.value, position_to_header(POS))
    want = {"policy": "key_only", "size": size, "limit": LIMIT}
    assert out.topic == "topic" and out.partition is None and out.key == rec.key
    assert marker_of(out.value) == want
    assert out.headers == ((MARKER_HEADER, json.dumps(want, separators=(",", ":")).encode()),)
    # the rest of the value is the format's own message of the key-only change
    (plain,) = [r for r in encoder(fmt).encode(key_only_change(BIG), "topic") if r.value is not None]
    assert untimed(json.loads(out.value)) == untimed(json.loads(with_marker(plain.value, want)))
    assert b"hello" not in out.value and record_size(out.key, out.value, position_to_header(POS), out.headers) <= LIMIT
    assert counted == [("shop.docs", "key_only")]


def test_truncate_cuts_the_largest_columns_just_enough():
    counted = []
    (rec,) = encoder().encode(BIG, "topic")
    (out,) = policy("truncate", counted=counted).handle(BIG, "topic", 1, rec, 0, 0)
    m = marker_of(out.value)
    assert m == {"policy": "truncate", "size": record_size(rec.key, rec.value, position_to_header(POS)),
                 "limit": LIMIT, "columns": {"body": 4000, "img": 3000}}
    post = json.loads(out.value)["postStruct"]
    # body (the largest) is emptied; img is cut to the longest prefix that fits
    assert post["id"] == "5" and post["title"] == "hello" and post["body"] == ""
    size = record_size(out.key, out.value, position_to_header(POS), out.headers)
    assert size <= LIMIT
    n = len(base64.b64decode(post["img"]))
    assert 0 < n < 3000
    # one more byte of img would not fit
    longer = replace(BIG, after={**BIG.after, "body": "", "img": b"\x01" * (n + 1)})
    (r2,) = encoder().encode(longer, "topic")
    assert record_size(r2.key, with_marker(r2.value, m), position_to_header(POS), out.headers) > LIMIT
    assert counted == [("shop.docs", "truncate")]


def test_truncate_never_cuts_key_columns_and_fails_when_nothing_fits():
    t = TableSchema("shop", "k", (Column("id", "varchar", "varchar(9000)", charset="utf8mb4"),
                                  Column("v", "text", "text", charset="utf8mb4")), ("id",))
    c = Change(Op.INSERT, t, POS, after={"id": "k" * 5000, "v": "v" * 10})
    (rec,) = encoder().encode(c, "topic")
    with pytest.raises(SinkError, match="cutting every text/blob column does not make it fit"):
        policy("truncate").handle(c, "topic", 0, rec, 0, 0)


def test_dead_letter_parts_reassemble_to_the_original_message():
    counted = []
    (rec,) = encoder("canal").encode(BIG, "topic")
    out = policy("dead_letter", "canal", counted).handle(BIG, "topic", 2, rec, 0, 7)
    *parts, pointer = out
    msg_id = b'topic/2/["log","mysql-bin.000001",400,0]/7'
    assert {p.topic for p in parts} == {"dl"} and {p.key for p in parts} == {msg_id}
    assert len({p.partition for p in parts}) == 1
    assert [dict(p.headers)[PART_HEADER] for p in parts] == [b"%d" % i for i in range(len(parts))]
    assert {dict(p.headers)[PARTS_HEADER] for p in parts} == {b"%d" % len(parts)}
    assert {dict(p.headers)[PART_ID_HEADER] for p in parts} == {msg_id}
    assert all(record_size(p.key, p.value, position_to_header(POS), p.headers) <= 2000 for p in parts)
    assert b"".join(p.value for p in parts) == rec.value
    m = marker_of(pointer.value)
    assert m == {"policy": "dead_letter", "size": record_size(rec.key, rec.value, position_to_header(POS)),
                 "limit": LIMIT, "topic": "dl", "id": msg_id.decode(), "parts": len(parts), "bytes": len(rec.value),
                 "sha256": hashlib.sha256(rec.value).hexdigest()}
    assert pointer.topic == "topic" and pointer.key == rec.key and json.loads(pointer.value)["data"] == [{"id": "5"}]
    assert counted == [("shop.docs", "dead_letter")]


def test_router_replaces_only_the_large_record_and_numbers_every_record():
    layout = TopicLayout({("shop", "docs"): "topic"}, {"topic": 1, "dl": 3})
    lm = policy("dead_letter")
    r = Router(encoder(), layout, "hash", large=lm)
    routed = [rec for _, recs in r.route([SMALL, BIG]) for rec in recs]
    data = [x for x in routed if x.topic == "topic"]
    dl = [x for x in routed if x.topic == "dl"]
    (small,) = encoder().encode(SMALL, "topic")
    assert data[0].value == small.value and data[0].headers is None and data[0].seq == 0
    assert [x.seq for x in dl] == list(range(len(dl))) and data[1].seq == len(dl)
    assert all(x.position == POS for x in [*dl, data[1]])
    assert marker_of(data[1].value)["parts"] == len(dl)
    # without a policy nothing is checked: the same records as before
    plain = [rec for _, recs in Router(encoder(), layout, "hash").route([SMALL, BIG]) for rec in recs]
    assert [(x.key, x.value) for x in plain] == [(small.key, small.value), *[(x.key, x.value) for x in
                                                                           [encoder().encode(BIG, "topic")[0]]]]


def test_avro_refuses_key_only_and_dead_letter_in_the_task_file():
    from obsync.task.config import TaskConfig

    base = {"name": "t", "source": {"host": "h", "user": "u", "password": "p"}, "target": {"bootstrap_servers": "k"},
            "objects": [{"match": "a.b"}], "format": "avro",
            "format_options": {"schema_registry_url": "http://r"}}
    for p in ("key_only", "dead_letter"):
        with pytest.raises(ValueError, match=f"large_messages\n  Value error, {p} needs a JSON format"):
            TaskConfig.model_validate({**base, "large_messages": p})
    assert TaskConfig.model_validate({**base, "large_messages": "truncate"}).large_messages == "truncate"
    t = TaskConfig.model_validate({**base, "format": "default"})
    assert t.large_messages == "fail" and t.resolved_dead_letter_topic() == "t.dead_letter"


def test_avro_truncate_keeps_the_schema_and_marks_the_header_only():
    enc = encoder("avro")  # without a registry: the schemas go to the schema topic, the value names its schema
    records = enc.encode(BIG, "topic")
    index, rec = next((i, r) for i, r in enumerate(records) if r.topic == "topic")
    (out,) = LargeMessages("truncate", enc, lambda t: LIMIT).handle(BIG, "topic", 0, rec, index, 0)
    marker = json.loads(dict(out.headers)[MARKER_HEADER])
    assert marker == {"policy": "truncate", "size": record_size(rec.key, rec.value, position_to_header(POS)),
                      "limit": LIMIT, "columns": {"body": 4000, "img": 3000}}
    assert out.value[:10] == rec.value[:10]  # the same schema fingerprint: no new schema, no field added
    assert MARKER_FIELD.encode() not in out.value
    assert record_size(out.key, out.value, position_to_header(POS), out.headers) <= LIMIT


@pytest.mark.parametrize("name", ["key_only", "truncate"])
def test_policies_applied_by_the_lanes_worker_give_the_records_of_route(name):
    from tests.unit.test_routing import comparable, expanded

    layout = TopicLayout({("shop", "docs"): "topic"}, {"topic": 3})
    r = Router(encoder(), layout, "hash", large=policy(name))
    assert r.spreads()
    batch = [SMALL, BIG, replace(BIG, position=LogPosition("mysql-bin.000001", 500, 0), after={**BIG.after, "id": 6})]
    got = comparable(expanded(r, batch))
    assert got == comparable(Router(encoder(), layout, "hash", large=policy(name)).route(batch))
    assert sum(1 for recs in got.values() for rec in recs if rec[7]) == 2  # both large ones marked

"""The `default` (OMS Default) format: exact message bytes per kind of change, keys and options."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

import obsync.formats.default as default_mod
import obsync.formats.values as values_mod
from obsync.core.changes import Change, Op
from obsync.core.errors import ConfigError
from obsync.core.positions import LogPosition, SnapshotPosition
from obsync.core.schema import Column, TableSchema
from obsync.formats.base import EncoderContext
from obsync.formats.default import DefaultEncoder, ddl_type
from obsync.formats.registry import encoder_for
from tests.helpers.format_rows import GTID, ORDERS, POS, ROW1, ROW2, UTC

ROW1_JSON = '{"id":"42","name":"咖啡 ☕","amount":"12.50","paid_at":"1700000000.500"}'
ROW2_JSON = '{"id":"42","name":"咖啡 ☕","amount":"13.00","paid_at":null}'


def meta(**over: object) -> str:
    """allMetaData as written for shop.orders by task `task1`, with `over` replacing members (JSON text)."""
    m = {
        "checkpoint": '"1700000001"',
        "record_primary_key": '"id"',
        "record_primary_value": '"42"',
        "source_identity": '"task1"',
        "dbType": '"MYSQL"',
        "storeDataSequence": "1700000001001234567",
        "table_name": '"orders"',
        "db": '"shop"',
        "timestamp": '"1700000001"',
        "uniqueId": f'"{GTID}"',
    }
    m.update({k: str(v) for k, v in over.items()})
    return "{" + ",".join(f'"{k}":{v}' for k, v in m.items()) + "}"


def encode_one(change: Change, encoder: DefaultEncoder | None = None) -> tuple[bytes | None, bytes]:
    records = (encoder or DefaultEncoder("task1")).encode(change, "orders-topic")
    assert len(records) == 1 and records[0].topic == "orders-topic"
    assert records[0].value is not None
    return records[0].key, records[0].value


# ------------------------------------------------------------------------------------------- golden


def test_insert() -> None:
    key, value = encode_one(Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001.0, txn=GTID))
    assert key == b"[42]"
    assert value == (
        '{"prevStruct":null,"postStruct":' + ROW1_JSON + ',"allMetaData":{"checkpoint":"1700000001",'
        '"record_primary_key":"id","record_primary_value":"42","source_identity":"task1","dbType":"MYSQL",'
        '"storeDataSequence":1700000001001234567,"table_name":"orders","db":"shop","timestamp":"1700000001",'
        f'"uniqueId":"{GTID}"}},"recordType":"INSERT"}}'
    ).encode()
    assert "咖啡 ☕".encode() in value  # UTF-8 as is, not \u escapes


def test_update() -> None:
    key, value = encode_one(Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=ROW2, commit_time=1700000001,
                                   txn=GTID))
    assert key == b"[42]"
    assert value == (
        f'{{"prevStruct":{ROW1_JSON},"postStruct":{ROW2_JSON},"allMetaData":{meta()},"recordType":"UPDATE"}}'
    ).encode()


def test_delete() -> None:
    key, value = encode_one(Change(Op.DELETE, ORDERS, POS, before=ROW2, commit_time=1700000001, txn=GTID))
    assert key == b"[42]"
    assert value == (
        f'{{"prevStruct":{ROW2_JSON},"postStruct":null,"allMetaData":{meta()},"recordType":"DELETE"}}'
    ).encode()


def test_snapshot_row_has_the_key_as_checkpoint_and_no_commit_time() -> None:
    change = Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=ROW1)
    key, value = encode_one(change)
    assert key == b"[42]"
    assert value == (
        '{"prevStruct":null,"postStruct":' + ROW1_JSON + ',"allMetaData":'
        + meta(checkpoint='"42"', storeDataSequence="null", timestamp="null", uniqueId="null")
        + ',"recordType":"ROW"}'
    ).encode()


def test_ddl() -> None:
    change = Change(Op.DDL, ORDERS, LogPosition("mysql-bin.000042", 2000), commit_time=1700000002, txn=GTID,
                    ddl="ALTER TABLE `orders` ADD COLUMN note TEXT", ddl_db="shop",
                    ddl_tables=(("shop", "orders"),))
    key, value = encode_one(change)
    assert key is None
    assert value == (
        '{"prevStruct":null,"postStruct":{"ddl":"ALTER TABLE `orders` ADD COLUMN note TEXT"},"allMetaData":'
        '{"checkpoint":"1700000002","record_primary_key":null,"record_primary_value":null,'
        '"source_identity":"task1","dbType":"MYSQL","storeDataSequence":1700000002000002000,'
        '"table_name":"orders","db":"shop","timestamp":"1700000002",'
        f'"uniqueId":"{GTID}","ddlType":"ALTER TABLE"}},"recordType":"DDL"}}'
    ).encode()


def test_ddl_on_tables_the_task_does_not_track() -> None:
    named = Change(Op.DDL, None, LogPosition("mysql-bin.000042", 2100), commit_time=1700000002, txn="t:1",
                   ddl="RENAME TABLE a TO b, c TO d", ddl_db="other", ddl_tables=(("shop", "a"), ("shop", "c")))
    msg = json.loads(encode_one(named)[1])
    assert (msg["allMetaData"]["db"], msg["allMetaData"]["table_name"]) == ("shop", "a")
    assert msg["allMetaData"]["ddlType"] == "RENAME TABLE"
    unnamed = Change(Op.DDL, None, LogPosition("mysql-bin.000042", 2200), commit_time=1700000002, txn="t:2",
                     ddl="DROP INDEX idx_a ON t", ddl_db="shop")
    msg = json.loads(encode_one(unnamed)[1])
    assert (msg["allMetaData"]["db"], msg["allMetaData"]["table_name"]) == ("shop", None)
    assert msg["postStruct"] == {"ddl": "DROP INDEX idx_a ON t"}


def test_heartbeat() -> None:
    key, value = encode_one(Change(Op.HEARTBEAT, None, LogPosition("mysql-bin.000042", 3000),
                                   commit_time=1700000003))
    assert key is None
    assert value == (
        b'{"prevStruct":null,"postStruct":null,"allMetaData":{"checkpoint":"1700000003",'
        b'"record_primary_key":null,"record_primary_value":null,"source_identity":"task1","dbType":"MYSQL",'
        b'"storeDataSequence":1700000003000003000,"table_name":null,"db":null,"timestamp":"1700000003",'
        b'"uniqueId":null},"recordType":"HEARTBEAT"}'
    )


def test_table_without_a_key() -> None:
    logs = TableSchema("app", "logs", (Column("msg", "text", "text", charset="utf8mb4"),))
    key, value = encode_one(Change(Op.INSERT, logs, POS, after={"msg": "hi"}, commit_time=1700000001, txn=GTID))
    assert key is None
    assert value == (
        '{"prevStruct":null,"postStruct":{"msg":"hi"},"allMetaData":'
        + meta(record_primary_key="null", record_primary_value="null", table_name='"logs"', db='"app"')
        + ',"recordType":"INSERT"}'
    ).encode()
    _, snap = encode_one(Change(Op.READ, logs, SnapshotPosition("app.logs/0000", (0,)), after={"msg": "hi"}))
    assert json.loads(snap)["allMetaData"]["checkpoint"] is None


def test_composite_key() -> None:
    t = TableSchema("shop", "stock", (Column("sku", "varchar", "varchar(8)", charset="utf8mb4"),
                                      Column("site", "int", "int(11)"), Column("qty", "int", "int(11)")),
                    primary_key=("sku", "site"))
    key, value = encode_one(Change(Op.INSERT, t, POS, after={"sku": "a", "site": 7, "qty": 1},
                                   commit_time=1700000001, txn=GTID))
    assert key == b'["a",7]'
    assert value == (
        '{"prevStruct":null,"postStruct":{"sku":"a","site":"7","qty":"1"},"allMetaData":'
        + meta(record_primary_key='"sku\\u0001site"', record_primary_value='"a\\u00017"',
               table_name='"stock"')
        + ',"recordType":"INSERT"}'
    ).encode()
    assert json.loads(value)["allMetaData"]["record_primary_key"].split("\u0001") == ["sku", "site"]


def test_unique_key_when_there_is_no_primary_key() -> None:
    t = TableSchema("shop", "u", (Column("code", "char", "char(2)", charset="utf8mb4"),),
                    unique_keys=(("code",),))
    key, value = encode_one(Change(Op.INSERT, t, POS, after={"code": "FR"}, commit_time=1700000001, txn=GTID))
    assert key == b'["FR"]'
    assert json.loads(value)["allMetaData"]["record_primary_key"] == "code"


ALL_TYPES = TableSchema(
    "types",
    "every",
    (
        Column("i", "bigint", "bigint(20) unsigned", nullable=False, unsigned=True),
        Column("s", "bigint", "bigint(20)"),
        Column("d", "decimal", "decimal(65,30)", precision=65, scale=30),
        Column("f", "float", "float"),
        Column("g", "double", "double"),
        Column("b", "bit", "bit(10)"),
        Column("bin", "varbinary", "varbinary(8)", charset="binary"),
        Column("blob", "blob", "blob", charset="binary"),
        Column("txt", "text", "text", charset="utf8mb4"),
        Column("ts", "timestamp", "timestamp(6)", fsp=6),
        Column("dt", "datetime", "datetime(6)", fsp=6),
        Column("da", "date", "date"),
        Column("ti", "time", "time"),
        Column("y", "year", "year(4)"),
        Column("j", "json", "json"),
        Column("e", "enum", "enum('x','y')", values=("x", "y")),
        Column("st", "set", "set('p','q')", values=("p", "q")),
        Column("n", "int", "int(11)"),
    ),
    primary_key=("i",),
)


def test_every_column_type_in_one_message() -> None:
    row = {
        "i": 18446744073709551615, "s": -9223372036854775808,
        "d": Decimal("9" * 35 + "." + "9" * 30), "f": 1.100000023841858, "g": 1e20, "b": 1, "bin": b"\xff\x00",
        "blob": b"\x80\x81", "txt": 'q"\\\n\x01😀', "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
        "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 120000), "da": "0000-00-00", "ti": -dt.timedelta(hours=838,
        minutes=59, seconds=59), "y": 2024, "j": '{"k": [1, "v"]}', "e": "y", "st": "p,q", "n": None,
    }
    key, value = encode_one(Change(Op.INSERT, ALL_TYPES, POS, after=row, commit_time=1700000001, txn=GTID))
    assert key == b"[18446744073709551615]"
    post = (
        '{"i":"18446744073709551615","s":"-9223372036854775808",'
        '"d":"' + "9" * 35 + "." + "9" * 30 + '","f":"1.1","g":"100000000000000000000","b":"AAE=",'
        '"bin":"/wA=","blob":"gIE=","txt":"q\\"\\\\\\n\\u0001😀","ts":"1700000000.123456",'
        '"dt":"2024-01-02 03:04:05.120000","da":"0000-00-00","ti":"-838:59:59","y":"2024",'
        '"j":"{\\"k\\": [1, \\"v\\"]}","e":"y","st":"p,q","n":null}'
    )
    assert value == (
        '{"prevStruct":null,"postStruct":' + post + ',"allMetaData":'
        + meta(record_primary_key='"i"', record_primary_value='"18446744073709551615"',
               table_name='"every"', db='"types"')
        + ',"recordType":"INSERT"}'
    ).encode()
    assert json.loads(value)["postStruct"]["txt"] == 'q"\\\n\x01😀'


# ------------------------------------------------------------------------------------- key changes


def test_an_update_of_the_key_is_a_delete_of_the_old_key_then_an_insert_of_the_new() -> None:
    after = {**ROW2, "id": 43}
    records = DefaultEncoder("task1").encode(
        Change(Op.UPDATE, ORDERS, POS, before=ROW1, after=after, commit_time=1700000001, txn=GTID), "orders-topic")
    assert [r.key for r in records] == [b"[42]", b"[43]"]
    old, new = (json.loads(r.value) for r in records)
    assert (old["recordType"], old["prevStruct"]["id"], old["postStruct"]) == ("DELETE", "42", None)
    assert (new["recordType"], new["prevStruct"], new["postStruct"]["id"]) == ("INSERT", None, "43")
    assert new["allMetaData"]["record_primary_value"] == "43"
    assert old["allMetaData"]["record_primary_value"] == "42"


def test_a_key_equal_once_rendered_stays_one_update() -> None:
    t = TableSchema("s", "t", (Column("k", "decimal", "decimal(5,2)", scale=2),), primary_key=("k",))
    records = DefaultEncoder("task1").encode(
        Change(Op.UPDATE, t, POS, before={"k": Decimal("1.5")}, after={"k": Decimal("1.50")},
               commit_time=1700000001), "x")
    assert len(records) == 1 and json.loads(records[0].value)["recordType"] == "UPDATE"


# -------------------------------------------------------------------------------- options, registry


def test_source_identity_db_type_and_tenant_options() -> None:
    change = Change(Op.INSERT, ORDERS, POS, after=ROW1, commit_time=1700000001, txn=GTID)
    m = json.loads(encode_one(change, DefaultEncoder("task1"))[1])["allMetaData"]
    assert (m["source_identity"], m["dbType"], m["db"]) == ("task1", "MYSQL", "shop")
    enc = DefaultEncoder("task1", source_identity="sub-7", db_type="OB_MYSQL", tenant="t1")
    m = json.loads(encode_one(change, enc)[1])["allMetaData"]
    assert (m["source_identity"], m["dbType"], m["db"]) == ("sub-7", "OB_MYSQL", "t1.shop")
    for kind, expected in (("oceanbase", "OB_MYSQL"), ("mysql", "MYSQL"), ("mariadb", "MYSQL")):
        assert DefaultEncoder("x", db_type=kind).db_type == expected
    with pytest.raises(ConfigError, match="valid: OB_MYSQL, MYSQL"):
        DefaultEncoder("x", db_type="ORACLE")


def test_registered_as_default() -> None:
    enc = encoder_for("default", EncoderContext("task1", "OB_MYSQL"), {"tenant": "t1"})
    assert isinstance(enc, DefaultEncoder) and enc.name == "default" and enc.db_type == "OB_MYSQL"
    assert enc.tenant == "t1"


def test_unknown_format_option_is_named() -> None:
    with pytest.raises(ConfigError, match=r"`format_options.colour`.*valid: source_identity, tenant"):
        encoder_for("default", EncoderContext("task1", "MYSQL"), {"colour": "red"})


# ------------------------------------------------------------------------------ bytes are stable


def changes() -> list[Change]:
    return [
        Change(Op.INSERT, ORDERS, POS, after=dict(ROW1), commit_time=1700000001, txn=GTID),
        Change(Op.UPDATE, ORDERS, POS, before=dict(ROW1), after=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.DELETE, ORDERS, POS, before=dict(ROW2), commit_time=1700000001, txn=GTID),
        Change(Op.READ, ORDERS, SnapshotPosition("shop.orders/0000", (42,)), after=dict(ROW1)),
        Change(Op.DDL, None, POS, commit_time=1700000001, ddl="CREATE TABLE x (a int)", ddl_db="shop"),
        Change(Op.HEARTBEAT, None, POS, commit_time=1700000001),
    ]


def test_equal_changes_give_identical_bytes_whatever_was_encoded_before() -> None:
    first = [r.value for c in changes() for r in DefaultEncoder("task1").encode(c, "t")]
    enc = DefaultEncoder("task1")
    for c in reversed(changes()):
        enc.encode(c, "t")
    copy = TableSchema.from_dict(ORDERS.to_dict())  # an equal schema read back from saved state
    again = [
        r.value
        for c in changes()
        for r in enc.encode(Change(c.op, copy if c.table else None, c.position, c.before, c.after,
                                   c.commit_time, c.txn, ddl=c.ddl, ddl_db=c.ddl_db), "t")
    ]
    assert again == first


def test_store_data_sequence_follows_the_log_within_a_second_and_starts_with_the_commit_second() -> None:
    enc = DefaultEncoder("task1")
    positions = [LogPosition("mysql-bin.000042", p, r) for p, r in ((4, 0), (4, 1), (300, 0), (999_999_999, 0))]
    seqs = [json.loads(encode_one(Change(Op.INSERT, ORDERS, p, after=ROW1, commit_time=1700000001.9), enc)[1])
            ["allMetaData"]["storeDataSequence"] for p in positions]
    assert seqs == sorted(seqs) and seqs[0] == seqs[1] == 1700000001_000000004  # rows of one event share it
    assert seqs[-1] == 1700000001_999999999 < 2**63
    later = json.loads(encode_one(Change(Op.INSERT, ORDERS, positions[0], after=ROW1, commit_time=1700000002),
                                  enc)[1])["allMetaData"]["storeDataSequence"]
    assert later > seqs[-1] and str(later).startswith("1700000002")


def test_the_standard_library_writes_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    every_char = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    t = TableSchema("s", "t", (Column("id", "int", "int"), Column("txt", "longtext", "longtext")),
                    primary_key=("id",))
    samples = changes() + [Change(Op.INSERT, t, POS, after={"id": -1, "txt": every_char}, commit_time=1)]
    fast = [(r.key, r.value) for c in samples for r in DefaultEncoder("task1").encode(c, "t")]
    monkeypatch.setattr(default_mod, "_dumps", default_mod._json_dumps)
    monkeypatch.setattr(values_mod, "_dumps", values_mod._json_dumps)  # the Kafka keys (`json_key`)
    slow = [(r.key, r.value) for c in samples for r in DefaultEncoder("task1").encode(c, "t")]
    assert slow == fast


# ---------------------------------------------------------------------------------------- ddlType


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("ALTER TABLE t ADD c INT", "ALTER TABLE"),
        ("alter online ignore table t add c int", "ALTER TABLE"),
        ("ALTER TABLE t TRUNCATE PARTITION p0", "ALTER TABLE"),
        ("  /* x */ create table if not exists `a` (id int)", "CREATE TABLE"),
        ("CREATE TEMPORARY TABLE x (a int)", "CREATE TABLE"),
        ("CREATE UNIQUE INDEX i ON t (a)", "CREATE INDEX"),
        ("DROP INDEX i ON t", "DROP INDEX"),
        ("-- note\nDROP TABLE IF EXISTS `t` /* generated by server */", "DROP TABLE"),
        ("TRUNCATE `user`", "TRUNCATE TABLE"),
        ("truncate table db.user", "TRUNCATE TABLE"),
        ("RENAME TABLE a TO b, c TO d", "RENAME TABLE"),
        ("CREATE OR REPLACE ALGORITHM = MERGE DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW v AS SELECT 1",
         "CREATE VIEW"),
        ("/*!40000 ALTER TABLE `t` DISABLE KEYS */", "ALTER TABLE"),
        ("# hi\ncreate database d", "CREATE DATABASE"),
        ("GRANT ALL ON *.* TO u", "GRANT"),
        ("", ""),
    ],
)
def test_ddl_type(statement: str, kind: str) -> None:
    assert ddl_type(statement) == kind


def test_one_pass_rows_are_the_general_paths_bytes():
    # inserts, snapshot rows and deletes take `_one_image_plan`; every variant must equal `encode_row`'s bytes
    composite = TableSchema("shop", "lines", (Column("o", "int", "int(11)"), Column("sku", "varchar", "varchar(9)"),
                                              Column("q", "decimal", "decimal(6,2)", precision=6, scale=2),
                                              Column("note", "text", "text")), ("o", "sku"))
    keyless = TableSchema("shop", "log", (Column("t", "varchar", "varchar(9)"), Column("n", "int", "int(11)")), ())
    sharded = TableSchema("shop", "lines", composite.columns, ("o", "sku"), sharding_columns=("sku",))
    rows = {composite: {"o": 7, "sku": "a\"b\u0001名", "q": Decimal("1.5"), "note": None},
            keyless: {"t": "x", "n": None}, sharded: {"o": 7, "sku": "k", "q": Decimal("-0.00"), "note": "n"},
            ORDERS: ROW1}
    positions = [POS, LogPosition("mysql-bin.000002", 10**12 + 5, 3), SnapshotPosition("shop.lines/0001", (7, "k"))]
    encoders = [DefaultEncoder("task1"), DefaultEncoder("t", db_type="OB_MYSQL", tenant="ten", source_identity="")]
    n = 0
    for enc in encoders:
        for table, row in rows.items():
            other = {k: ("changed" if isinstance(v, str) else v) for k, v in row.items()}  # same key unless a str
            for op in (Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE):
                for pos in positions:
                    for commit in (None, 1_700_000_001.75):
                        for txn in (None, GTID):
                            images = {"before": row} if op is Op.DELETE else {"after": row}
                            if op is Op.UPDATE:
                                images["before"] = other
                            c = Change(op, table, pos, commit_time=commit, txn=txn, **images)
                            assert enc.encode(c, "T") == enc.encode_row(c, table, "T"), c
                            n += 1
    assert n == 2 * 4 * 4 * 3 * 2 * 2


def test_the_compiled_message_writer_gives_orjsons_bytes_and_orjsons_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # `_one_image_plan` writes with the compiled JSON template when it was built; the same changes encoded with it
    # switched off (the dict + orjson path) must give the same bytes, or the same error
    if values_mod._JsonTemplate is None:
        pytest.skip("installed without a C compiler: the orjson path is the only one")
    table = TableSchema("shop", "t\"名", (
        Column("id", "bigint", "bigint(20)", nullable=False), Column("s", "varchar", "varchar(99)"),
        Column("d", "decimal", "decimal(8,3)", precision=8, scale=3), Column("f", "double", "double"),
        Column("at", "datetime", "datetime(6)", fsp=6), Column("ts", "timestamp", "timestamp(2)", fsp=2),
        Column("day", "date", "date"), Column("b", "varbinary", "varbinary(9)"), Column("y", "year", "year"),
        Column("col \"q\"\n", "int", "int(11)")), ("id",))
    composite = TableSchema("shop", "c", (Column("a", "int", "int(11)"), Column("s", "varchar", "varchar(9)")),
                            ("a", "s"))
    texts = ["", "plain", "".join(map(chr, range(0x80))), "é\u2028\u4e2d\U0001f600", "\ud800", "\\\"", "\x7f"]
    values: list[dict[str, object]] = [{"s": t} for t in texts] + [
        {"id": 2**63 - 1}, {"id": -(2**63)}, {"id": 2**64}, {"id": 10**40}, {"id": True}, {"id": "text"},
        {"d": Decimal("-0.000")}, {"d": Decimal("1E+5")}, {"d": Decimal("12.5")}, {"d": "oops"},
        {"f": 1e300}, {"f": -0.0}, {"f": float("nan")},
        {"at": dt.datetime(1, 2, 3, 4, 5, 6, 7)}, {"at": "0000-00-00 00:00:00"}, {"at": 5},
        {"ts": dt.datetime(1960, 1, 1, 0, 0, 0, 990000, tzinfo=UTC)}, {"ts": dt.datetime(2024, 1, 1)},
        {"ts": dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3)))},
        {"day": dt.date(2024, 2, 29)}, {"day": "0000-00-00"}, {"b": b"\x00\xff"}, {"b": "not bytes"}, {"y": 1901},
        {"col \"q\"\n": -5}, {"extra": 1}, {"id": None},
    ]
    base = {"id": 1, "s": "x", "d": Decimal("1.000"), "f": 0.5, "at": dt.datetime(2024, 5, 6, 7, 8, 9),
            "ts": dt.datetime(2024, 5, 6, tzinfo=UTC), "day": dt.date(2024, 5, 6), "b": b"ab", "y": 2024,
            "col \"q\"\n": 3}
    rows = [(table, {**base, **v}) for v in values]
    rows += [(table, {k: None for k in base} | {"id": 9}), (table, {"id": 1, "s": "short row"}),
             (composite, {"a": 1, "s": "x\ny"}), (composite, {"a": 1, "s": None})]

    def outcome(enc: DefaultEncoder, c: Change) -> object:
        try:
            return enc.encode(c, "T")
        except Exception as exc:  # noqa: BLE001 - compared between the two paths
            return type(exc), str(exc)

    compiled = DefaultEncoder("task\u0001", db_type="OB_MYSQL", tenant="ten")
    with monkeypatch.context() as m:
        m.setattr(values_mod.TableRenderer, "json_template", lambda self, fragments: None)
        plain = DefaultEncoder("task\u0001", db_type="OB_MYSQL", tenant="ten")
        changes = []
        for t, row in rows:
            for op in (Op.INSERT, Op.READ, Op.DELETE, Op.UPDATE):
                for pos, commit, txn in ((POS, 1_700_000_001.75, GTID),
                                         (SnapshotPosition("shop.t/1", (1,)), None, None),
                                         (LogPosition("mysql-bin.000009", 10**12 + 5, 1), 0.0, "\"txn\"")):
                    images = {"before": row} if op is Op.DELETE else {"after": row}
                    if op is Op.UPDATE:  # the key kept (and changed, in the composite key's rows)
                        images["before"] = {**row, "s": "before"} if t is composite else {**base, "id": row.get("id")}
                    changes.append(Change(op, t, pos, commit_time=commit, txn=txn, **images))
        want = [outcome(plain, c) for c in changes]
    got = [outcome(compiled, c) for c in changes]
    assert got == want
    errors = sum(1 for w in want if isinstance(w, tuple) and isinstance(w[0], type))
    assert 0 < errors < len(want) // 4  # both paths failed alike on the bad values, and encoded the rest

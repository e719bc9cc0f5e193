"""Every column type, end to end: a row read by full sync and the same row streamed from the binlog land in
Kafka with identical Default-format values, and those values are exactly what docs/formats/README.md,
"Column values" prescribes.
Runs against MariaDB with binlog_row_metadata=MINIMAL (no column names, like OceanBase Binlog Service) and FULL.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task

# column, declaration, SQL literal, Default-format text
TYPES = [
    ("ti", "TINYINT", "-128", "-128"),
    ("tiu", "TINYINT UNSIGNED", "255", "255"),
    ("si", "SMALLINT", "-32768", "-32768"),
    ("mi", "MEDIUMINT", "-8388608", "-8388608"),
    ("miu", "MEDIUMINT UNSIGNED", "16777215", "16777215"),
    ("i", "INT", "-2147483648", "-2147483648"),
    ("iu", "INT UNSIGNED", "4294967295", "4294967295"),
    ("bi", "BIGINT", "-9223372036854775808", "-9223372036854775808"),
    ("biu", "BIGINT UNSIGNED", "18446744073709551615", "18446744073709551615"),
    ("de", "DECIMAL(65,30)", "-12345678901234567890123456789012345.123456789012345678901234567890",
     "-12345678901234567890123456789012345.123456789012345678901234567890"),
    ("de2", "DECIMAL(12,2)", "5", "5.00"),
    ("fl", "FLOAT", "1.2345678", "1.2345678"),
    ("db", "DOUBLE", "0.30000000000000004", "0.30000000000000004"),
    ("db2", "DOUBLE", "1e20", "100000000000000000000"),
    ("db3", "DOUBLE", "-1e-7", "-0.0000001"),
    ("b1", "BIT(1)", "b'1'", "AQ=="),
    ("b10", "BIT(10)", "b'1000000001'", "AgE="),
    ("b64", "BIT(64)", "b'" + "1" * 64 + "'", "//////////8="),
    ("ch", "CHAR(10)", "'a😀中'", "a😀中"),
    ("vc", "VARCHAR(20)", "'Ab 😀中文 '", "Ab 😀中文 "),
    ("tx", "TEXT", "'x\\ty😀\\n'", "x\ty😀\n"),
    ("bn", "BINARY(4)", "x'ff00fe'", "/wD+AA=="),
    ("vb", "VARBINARY(10)", "x'ff80'", "/4A="),
    ("bl", "BLOB", "x'00ffc3'", "AP/D"),
    ("chb", "CHAR(4) CHARACTER SET binary", "x'ff01'", "/wEAAA=="),
    ("d", "DATE", "'2024-02-29'", "2024-02-29"),
    ("t6", "TIME(6)", "'-838:59:58.999999'", "-838:59:58.999999"),
    ("t2", "TIME(2)", "'-00:00:01.5'", "-00:00:01.50"),
    ("t0", "TIME", "'838:59:59'", "838:59:59"),
    ("dt6", "DATETIME(6)", "'2024-01-02 03:04:05.000006'", "2024-01-02 03:04:05.000006"),
    ("dt0", "DATETIME", "'9999-12-31 23:59:59'", "9999-12-31 23:59:59"),
    # written in a +05:00 session: 2024-01-01T22:04:05.123456Z
    ("ts6", "TIMESTAMP(6) NULL", "'2024-01-02 03:04:05.123456'", "1704146645.123456"),
    ("ts0", "TIMESTAMP NULL", "'2024-01-02 05:00:00'", "1704153600"),
    ("y", "YEAR", "2024", "2024"),
    ("js", "JSON", "'{\"b\": [1, 2.5], \"a\": \"x\"}'", '{"b": [1, 2.5], "a": "x"}'),
    ("en", "ENUM('a','B','c d')", "'c d'", "c d"),
    ("st", "SET('x','y','z')", "'z,x'", "x,z"),
    ("st0", "SET('x','y')", "''", ""),
    ("nul", "INT", "NULL", None),
]


@pytest.mark.parametrize("server", ["mariadb", "mariadb_full"])
def test_snapshot_and_binlog_render_every_type_identically(request, tmp_path, kafka, server):
    db_server = request.getfixturevalue(server)
    db = unique("types")
    cols = ", ".join(f"`{c}` {decl}" for c, decl, _, _ in TYPES)
    insert = (f"INSERT INTO {db}.t (id, {', '.join(f'`{c}`' for c, _, _, _ in TYPES)}) VALUES "
              "(%d, " + ", ".join(lit.replace("%", "%%") for _, _, lit, _ in TYPES) + ")")
    with db_server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+05:00'")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, {cols})")
        cur.execute(insert % 1)
        task = write_task(tmp_path / "task.yaml", db_server=db_server, kafka=kafka, tables=[f"{db}.t"])
        run_obsync("run", str(task), "--until-caught-up")  # row 1 by full sync
        cur.execute(insert % 2)
        cur.execute(f"UPDATE {db}.t SET id = 3 WHERE id = 2")  # a key change carries every value twice more
        run_obsync("run", str(task), "--until-caught-up")  # row 2 (and its move to 3) from the binlog
    msgs = {(json.loads(m.value)["recordType"], m.key): json.loads(m.value) for m in read_topic(
        kafka.bootstrap_servers, f"Topic_{db}_t")}
    assert sorted(msgs) == [("DELETE", b"[2]"), ("INSERT", b"[2]"), ("INSERT", b"[3]"), ("ROW", b"[1]")]
    expected = {c: text for c, _, _, text in TYPES}
    snapshot_row = msgs[("ROW", b"[1]")]["postStruct"]
    for ident in (2, 3):
        assert msgs[("INSERT", f"[{ident}]".encode())]["postStruct"] == {"id": str(ident), **expected}
    assert msgs[("DELETE", b"[2]")]["prevStruct"] == {"id": "2", **expected}
    assert snapshot_row == {"id": "1", **expected}

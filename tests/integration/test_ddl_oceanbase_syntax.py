"""OceanBase's own DDL syntax, checked against OceanBase itself (seekdb).

Each statement below is one seekdb accepts. obsync's grammar reads the statement (as OceanBase Binlog Service
would pass it) and seekdb's own `SHOW CREATE TABLE` output afterwards, and the table definitions it computes
must equal what obsync's catalog reader reads from seekdb's information_schema for the same table: columns,
types, nullability, generated kinds, charsets, collations, keys. seekdb has no binlog, so the statements go
through the parser and the SchemaTracker directly (with the catalog reading seekdb), not through a log.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from obsync.connectors.mysql.binlog.schema_history import SchemaHistory
from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker, SourceCatalog
from obsync.connectors.mysql.connection import Endpoint
from obsync.core.positions import LogPosition
from obsync.sql import ddl as D
from tests.helpers.tasks import unique

# OceanBase's information_schema reports CHARACTER_MAXIMUM_LENGTH NULL for ENUM/SET and 536870911 for JSON;
# obsync's DDL reading computes MySQL's values. Nothing reads a length of these types (formats use it for
# CHAR/BINARY/BIT only), so it is left out of the comparison for them.
_NO_LENGTH = ("enum", "set", "json")


class Ob:
    def __init__(self, server: Any) -> None:
        self.db = unique("obddl")
        self.conn = server.connect(autocommit=True)
        self.cur = self.conn.cursor()
        self.cur.execute(f"CREATE DATABASE {self.db}")
        self.cur.execute(f"USE {self.db}")
        self.catalog = SourceCatalog(Endpoint(server.host, server.port, server.user, server.password))
        assert self.catalog.dialect == "oceanbase"

    def sql(self, stmt: str) -> None:
        self.cur.execute(stmt)

    def show_create(self, table: str) -> str:
        self.cur.execute(f"SHOW CREATE TABLE {self.db}.{table}")
        return self.cur.fetchone()[1]

    def load(self, table: str) -> D.TableDef:
        d = self.catalog.load((self.db, table))
        assert d is not None, table
        return d

    def parse(self, stmt: str) -> D.Statement:
        st = D.parse_ddl(stmt, self.db, "oceanbase")
        assert st is not None and not isinstance(st, D.Unparsed), (stmt, st)
        return st


@pytest.fixture(scope="module")
def ob(seekdb):
    o = Ob(seekdb)
    yield o
    o.catalog.close()
    o.conn.close()


def comparable(d: D.TableDef, ref: D.TableDef) -> tuple:
    """The definition as compared: a column without an explicit COLLATE takes the source's (as the tracker
    does, see SchemaTracker._fill_collations)."""
    by_name = {c.name: c for c in ref.schema.columns}
    cols = []
    for c in d.schema.columns:
        r = by_name.get(c.name)
        if c.collation is None and r is not None and r.charset == c.charset:
            c = dataclasses.replace(c, collation=r.collation)
        if c.data_type in _NO_LENGTH:
            c = dataclasses.replace(c, precision=None)
        cols.append(c)
    return tuple(cols), d.schema.primary_key, d.schema.unique_keys, d.charset, (d.schema.db, d.schema.name)


def assert_same(d: D.TableDef, ref: D.TableDef, what: str) -> None:
    assert comparable(d, ref) == comparable(ref, ref), what


def check_create(ob: Ob, stmt: str, table: str) -> D.TableDef:
    ob.sql(stmt)
    ref = ob.load(table)
    show = ob.show_create(table)
    for text in (stmt, show):
        st = ob.parse(text)
        assert isinstance(st, D.CreateTable)
        default = st.charset or ob.catalog.db_charset(ob.db)
        assert_same(D.create_table_def(st, default), ref, text)
    return ref


def check_alter(ob: Ob, stmt: str, table: str) -> None:
    before = ob.load(table)
    ob.sql(stmt)
    st = ob.parse(stmt)
    if isinstance(st, D.CreateIndex):
        st = D.AlterTable(st.table, (("add_index", st.index),))
    elif isinstance(st, D.DropIndex):
        st = D.AlterTable(st.table, (("drop_index", st.name),))
    assert isinstance(st, D.AlterTable), st
    after = D.apply_alter(before, st)
    name = st.new_name or st.table
    assert_same(after, ob.load(name[1]), stmt)
    st2 = ob.parse(ob.show_create(name[1]))  # and seekdb's own text of the result
    assert isinstance(st2, D.CreateTable)
    assert_same(D.create_table_def(st2, st2.charset), ob.load(name[1]), "SHOW CREATE TABLE after " + stmt)


def test_create_table_with_oceanbase_table_options_and_partitioning(ob):
    check_create(ob, "CREATE TABLE oi (id BIGINT PRIMARY KEY, name VARCHAR(30) COMMENT 'the name', "
                     "amount DECIMAL(10,2) NOT NULL DEFAULT 0, at TIMESTAMP(3) NULL) ORGANIZATION INDEX "
                     "COMPRESSION 'zstd_1.3.8' TABLET_SIZE 134217728 BLOCK_SIZE 16384 PCTFREE 10 "
                     "COMMENT 'table comment' PARTITION BY HASH(id) PARTITIONS 4", "oi")
    check_create(ob, "CREATE TABLE heap (id INT NOT NULL, k INT NOT NULL, v VARCHAR(10), PRIMARY KEY (id, k)) "
                     "ORGANIZATION HEAP PARTITION BY RANGE(k) (PARTITION p0 VALUES LESS THAN (10), "
                     "PARTITION p1 VALUES LESS THAN (20), PARTITION p2 VALUES LESS THAN MAXVALUE)", "heap")
    check_create(ob, "CREATE TABLE lst (id INT PRIMARY KEY, c VARCHAR(5)) PARTITION BY LIST(id) "
                     "(PARTITION p0 VALUES IN (1, 2), PARTITION p1 VALUES IN (DEFAULT))", "lst")
    check_create(ob, "CREATE TABLE ky (id INT PRIMARY KEY, c CHAR(3)) PARTITION BY KEY(id) PARTITIONS 3", "ky")
    check_create(ob, "CREATE TABLE sub (id INT NOT NULL, k INT NOT NULL, PRIMARY KEY (id, k)) "
                     "PARTITION BY RANGE COLUMNS(k) SUBPARTITION BY KEY(id) SUBPARTITION TEMPLATE "
                     "(SUBPARTITION s0, SUBPARTITION s1) (PARTITION p0 VALUES LESS THAN (10), "
                     "PARTITION p1 VALUES LESS THAN (20))", "sub")


def test_types_as_oceanbase_reports_them(ob):
    check_create(ob, "CREATE TABLE ty (id INT UNSIGNED PRIMARY KEY, a TINYINT, b SMALLINT UNSIGNED, c MEDIUMINT, "
                     "d BIGINT UNSIGNED, e YEAR, f INT ZEROFILL, g BOOL, h SERIAL, j BIT(3), k DOUBLE, "
                     "l FLOAT(7,2), m TEXT, n ENUM('a','b'), o DATETIME(6), p JSON, q VARBINARY(10), r BLOB, "
                     "s DECIMAL(30,10), t VARCHAR(5) CHARACTER SET binary, u VARCHAR(4) COLLATE utf8mb4_bin) "
                     "COMPRESSION 'zstd_1.3.8'", "ty")


def test_generated_invisible_and_commented_columns(ob):
    ref = check_create(ob, "CREATE TABLE gen (id INT PRIMARY KEY, a INT, b INT AS (a * 2) VIRTUAL, "
                           "c INT GENERATED ALWAYS AS (a + 1) STORED, d INT INVISIBLE COMMENT 'hidden', "
                           "UNIQUE KEY uk (a)) DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_bin", "gen")
    assert [(c.name, c.generated) for c in ref.schema.columns] == [
        ("id", None), ("a", None), ("b", "VIRTUAL"), ("c", "STORED"), ("d", None)]
    check_alter(ob, "ALTER TABLE gen ADD COLUMN e INT AS (a - 1) STORED", "gen")
    check_alter(ob, "ALTER TABLE gen ADD COLUMN f INT AS (a - 2) VIRTUAL", "gen")
    check_alter(ob, "ALTER TABLE gen ADD COLUMN g INT INVISIBLE COMMENT 'also hidden'", "gen")
    check_alter(ob, "ALTER TABLE gen MODIFY COLUMN d INT VISIBLE", "gen")


def test_alter_table_in_oceanbase_syntax(ob):
    ob.sql("CREATE TABLE al (id INT NOT NULL PRIMARY KEY, c VARCHAR(10)) ORGANIZATION INDEX")
    for stmt in [
        "ALTER TABLE al SET TABLET_SIZE 268435456",
        "ALTER TABLE al SET COMPRESSION 'zstd_1.3.8'",
        "ALTER TABLE al COMMENT 'a comment'",
        "ALTER TABLE al COMMENT = 'another'",
        "ALTER TABLE al ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x' COMMENT 'n'",
        "ALTER TABLE al MODIFY c VARCHAR(12) COMMENT 'col comment'",
        "ALTER TABLE al ALTER COLUMN c SET DEFAULT 'z'",
        "ALTER TABLE al ADD INDEX ic (c) LOCAL",
        "CREATE INDEX i2 USING BTREE ON al (note) LOCAL COMMENT 'x'",
        "CREATE UNIQUE INDEX u3 ON al (note, id) GLOBAL",
        "DROP INDEX ic ON al",
        "ALTER TABLE al DROP INDEX u3",
        "ALTER TABLE al CHANGE COLUMN c cc CHAR(4) COMMENT 'x'",
        "ALTER TABLE al RENAME COLUMN cc TO c5",
        "ALTER TABLE al ADD COLUMN (x1 INT, x2 VARCHAR(3))",
        "ALTER TABLE al DROP COLUMN c5",
        "ALTER TABLE al ADD CONSTRAINT ck CHECK (id > 0)",
        "ALTER TABLE al PARTITION BY HASH(id) PARTITIONS 2",
    ]:
        check_alter(ob, stmt, "al")
    check_alter(ob, "ALTER TABLE al RENAME al2", "al")
    check_alter(ob, "ALTER TABLE al2 RENAME TO al3", "al2")


def test_partition_maintenance_changes_no_column(ob):
    ob.sql("CREATE TABLE pm (id INT NOT NULL, k INT NOT NULL, PRIMARY KEY (id, k)) PARTITION BY RANGE(k) "
           "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))")
    for stmt in ["ALTER TABLE pm ADD PARTITION (PARTITION p2 VALUES LESS THAN (30), "
                 "PARTITION p3 VALUES LESS THAN (40))",
                 "ALTER TABLE pm TRUNCATE PARTITION p0",
                 "ALTER TABLE pm TRUNCATE PARTITION p1, p2",
                 "ALTER TABLE pm DROP PARTITION p2, p3"]:
        check_alter(ob, stmt, "pm")
        st = ob.parse(stmt)
        assert isinstance(st, D.AlterTable) and st.actions == (), stmt


def test_the_tracker_follows_every_kind_without_rereading(ob, caplog):
    """CREATE, LIKE, RENAME, TRUNCATE, DROP in OceanBase syntax through the SchemaTracker: each is understood
    (no "cannot read" warning, no re-read) and the tracked definition equals seekdb's."""
    db = ob.db
    names = ["tk", "tk2", "tk3", "tkl"]
    tracker = SchemaTracker([(db, n) for n in names], SchemaHistory(None), ob.catalog)
    tracker.start(LogPosition("binlog.000001", 4, 0))
    script = [
        ("CREATE TABLE tk (id INT PRIMARY KEY, v VARCHAR(8) COMMENT 'v') ORGANIZATION INDEX "
         "COMPRESSION 'zstd_1.3.8' PARTITION BY RANGE(id) (PARTITION p0 VALUES LESS THAN (100), "
         "PARTITION p1 VALUES LESS THAN MAXVALUE)", {"tk"}),
        ("ALTER TABLE tk ADD COLUMN w INT GENERATED ALWAYS AS (id * 2) STORED", {"tk"}),
        ("CREATE TABLE tkl LIKE tk", {"tk", "tkl"}),
        ("ALTER TABLE tk TRUNCATE PARTITION p0", {"tk", "tkl"}),
        ("TRUNCATE TABLE tk", {"tk", "tkl"}),
        ("RENAME TABLE tk TO tk2", {"tk2", "tkl"}),
        ("ALTER TABLE tk2 RENAME TO tk3", {"tk3", "tkl"}),
        ("DROP TABLE tk3", {"tkl"}),
        ("DROP TABLE tkl", set()),
    ]
    caplog.set_level(logging.INFO)
    for i, (stmt, exist) in enumerate(script):
        ob.sql(stmt)
        caplog.clear()
        out = tracker.apply_ddl(stmt, db, LogPosition("binlog.000001", 100 + i, 0))
        assert out is not None and out.touches_tracked, stmt
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], stmt
        for n in names:
            d = tracker.get((db, n))
            if n in exist:
                assert d is not None, (stmt, n)
                assert_same(d, ob.load(n), f"{n} after {stmt}")
            else:
                assert d is None, (stmt, n)

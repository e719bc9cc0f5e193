"""DDL parsing and the table definitions it produces, and the persisted schema history (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obsync.connectors.mysql.binlog.schema_history import HISTORY_FILE, SchemaHistory
from obsync.core.errors import StateError
from obsync.core.positions import LogPosition
from obsync.sql import ddl as D


def create(sql: str, default_charset: str = "utf8mb4", dialect: str = "mysql") -> D.TableDef:
    st = D.parse_ddl(sql, "db", dialect)
    assert isinstance(st, D.CreateTable), st
    return D.create_table_def(st, default_charset)


def alter(tdef: D.TableDef, sql: str) -> D.TableDef:
    st = D.parse_ddl(sql, "db")
    assert isinstance(st, D.AlterTable), st
    return D.apply_alter(tdef, st)


def col(tdef: D.TableDef, name: str) -> tuple:
    c = tdef.schema.column(name)
    return (c.data_type, c.column_type, c.unsigned, c.charset, c.precision, c.scale, c.fsp, c.values, c.nullable)


def test_create_table_reads_types_as_mysql_means_them() -> None:
    t = create("""CREATE TABLE IF NOT EXISTS `db`.`t``x` (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'the key',
        r REAL, l LONG, i8 INT8, f30 FLOAT(30), b BOOL, ser SERIAL,
        nc NATIONAL CHAR(3), vb VARCHAR(5) CHARACTER SET binary, c CHAR(4) BINARY, tx TEXT(100), bl BLOB(70000),
        d DECIMAL(65,30) NOT NULL DEFAULT -1.5, dd DEC, e ENUM('a','it''s') DEFAULT 'a', s SET('x','y'),
        ts TIMESTAMP(3) NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), dt DATETIME(6),
        g INT GENERATED ALWAYS AS (id + 1) STORED, p POINT NOT NULL SRID 0, j JSON,
        lat VARCHAR(10) COLLATE latin1_german1_ci,
        PRIMARY KEY (id), UNIQUE KEY uk (d, e), KEY k (s), FOREIGN KEY (id) REFERENCES o (id) ON DELETE CASCADE,
        CHECK (id > 0)
    ) ENGINE=InnoDB /*!40101 DEFAULT CHARSET=latin1 */ PARTITION BY HASH (id) PARTITIONS 4""")
    assert t.schema.full_name == "db.t`x" and t.charset == "latin1"
    assert col(t, "id") == ("int", "int unsigned", True, None, None, None, 0, (), False)
    assert col(t, "r")[0] == "double" and col(t, "l")[:4] == ("mediumtext", "mediumtext", False, "latin1")
    assert col(t, "i8")[0] == "bigint" and col(t, "f30")[0] == "double" and col(t, "b")[:2] == ("tinyint", "tinyint(1)")
    assert col(t, "ser")[:3] == ("bigint", "bigint unsigned", True) and not t.schema.column("ser").nullable
    assert col(t, "nc")[3] == "utf8mb3" and col(t, "vb")[:4] == ("varbinary", "varbinary(5)", False, "binary")
    assert col(t, "c")[3] == "latin1"  # CHAR BINARY: a binary collation, still text
    assert col(t, "tx")[0] == "tinytext" and col(t, "bl")[0] == "mediumblob"
    assert col(t, "d") == ("decimal", "decimal(65,30)", False, None, 65, 30, 0, (), False)
    assert col(t, "dd")[4:6] == (10, 0)
    assert col(t, "e")[2:] == (False, "latin1", 4, None, 0, ("a", "it's"), True)
    assert col(t, "s")[4] == 3  # "x,y"
    assert col(t, "ts")[:7] == ("timestamp", "timestamp(3)", False, None, None, None, 3)
    assert t.schema.column("g").generated == "STORED" and col(t, "p")[0] == "point" and col(t, "j")[0] == "json"
    assert col(t, "lat")[3] == "latin1"
    # uk is not a row key (e is nullable); SERIAL is NOT NULL UNIQUE, a key named after its column
    assert t.schema.primary_key == ("id",) and t.schema.unique_keys == (("ser",),)
    assert [k[0] for k in t.keys] == ["PRIMARY", "uk", "ser"]


def test_mariadb_json_is_longtext() -> None:
    t = create("CREATE TABLE t (j JSON)", dialect="mariadb")
    assert col(t, "j")[:4] == ("longtext", "longtext", False, "utf8mb4")


def test_alter_table_column_changes_keep_order_keys_and_charsets() -> None:
    t = create("CREATE TABLE t (id INT NOT NULL, a VARCHAR(10), b INT, UNIQUE KEY ub (b), PRIMARY KEY (id)) "
               "DEFAULT CHARSET latin1")
    t = alter(t, "ALTER TABLE t ADD COLUMN c INT FIRST, ADD d TEXT AFTER id, ADD (e INT, f INT NOT NULL)")
    assert t.schema.column_names == ("c", "id", "d", "a", "b", "e", "f")
    assert col(t, "d")[3] == "latin1"
    t = alter(t, "ALTER TABLE t DROP COLUMN c, MODIFY COLUMN b BIGINT NOT NULL FIRST, CHANGE a aa VARCHAR(20) "
                 "CHARACTER SET utf8mb4 AFTER f, RENAME COLUMN e TO ee")
    assert t.schema.column_names == ("b", "id", "d", "ee", "f", "aa")
    assert col(t, "aa")[3] == "utf8mb4" and col(t, "b")[0] == "bigint"
    assert t.schema.unique_keys == (("b",),)  # b became NOT NULL: the unique key identifies rows now
    t = alter(t, "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (ee, f), DROP INDEX ub, ADD UNIQUE (aa)")
    assert t.schema.primary_key == ("ee", "f") and not t.schema.column("ee").nullable
    assert t.schema.unique_keys == () and ("aa", "unique", ("aa",)) in t.keys  # aa is nullable
    t = alter(t, "ALTER TABLE t DROP COLUMN f")
    assert t.schema.primary_key == ("ee",)
    t = alter(t, "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, RENAME TO t2")
    assert t.schema.full_name == "db.t2" and col(t, "d")[3] == "utf8mb4" and t.charset == "utf8mb4"
    with pytest.raises(D.DdlSyntaxError, match="no column zz"):
        alter(t, "ALTER TABLE t2 DROP COLUMN zz")


def test_statements_that_change_no_columns() -> None:
    for sql in ["ALTER TABLE t TRUNCATE PARTITION p0", "ALTER TABLE t ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE",
                "/*!40000 ALTER TABLE `t` DISABLE KEYS */",
                "ALTER TABLE t ADD INDEX i (a), ADD FULLTEXT (b), DROP FOREIGN KEY fk, ALTER COLUMN a SET INVISIBLE",
                "ALTER TABLE t TABLEGROUP = tg1"]:
        st = D.parse_ddl(sql, "db")
        assert isinstance(st, D.AlterTable) and st.actions == (), (sql, st)
    # the table's COMMENT changes no column, but is part of its definition (Debezium's tableChanges carry it)
    st = D.parse_ddl("ALTER TABLE t COMMENT 'it''s'", "db")
    assert isinstance(st, D.AlterTable) and st.actions == (("table_comment", "it's"),)


def test_other_table_statements() -> None:
    assert D.parse_ddl("RENAME TABLE a TO b, x.c TO `y`.d", "db") == D.RenameTables(
        ((("db", "a"), ("db", "b")), (("x", "c"), ("y", "d"))))
    assert D.parse_ddl("DROP TABLE IF EXISTS a, x.b /* generated by server */", "db") == D.DropTables(
        (("db", "a"), ("x", "b")))
    assert D.parse_ddl("TRUNCATE TABLE x.t", "db") == D.TruncateTable(("x", "t"))
    assert D.parse_ddl("TRUNCATE t", "db") == D.TruncateTable(("db", "t"))
    assert D.parse_ddl("CREATE UNIQUE INDEX u ON t (a, b(10) DESC)", "db") == D.CreateIndex(
        ("db", "t"), D.IndexDef("u", "unique", ("a", "b")))
    assert D.parse_ddl("DROP INDEX u ON x.t", "db") == D.DropIndex(("x", "t"), "u")
    assert D.parse_ddl("CREATE TABLE n LIKE o", "db") == D.CreateTable(("db", "n"), like=("db", "o"))
    assert D.parse_ddl("DROP DATABASE IF EXISTS x", "db") == D.DropDatabase("x")
    assert D.parse_ddl("CREATE DATABASE x CHARACTER SET latin1", None) == D.DatabaseChanged("x")
    for sql in ["BEGIN", "COMMIT", "INSERT INTO t VALUES (1)", "CREATE TEMPORARY TABLE tmp (a INT)",
                "CREATE VIEW v AS SELECT 1", "CREATE DEFINER=`root`@`%` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW "
                "SET @x = 1", "GRANT ALL ON *.* TO u", "DROP TEMPORARY TABLE IF EXISTS t", "FLUSH PRIVILEGES"]:
        assert D.parse_ddl(sql, "db") is None, sql


def test_unreadable_ddl_names_its_table_so_it_can_be_reread() -> None:
    for sql, tables in [
        ("ALTER TABLE shop.orders ADD COLUMN x INT, BLAH BLAH", (("shop", "orders"),)),
        ("CREATE TABLE t2 AS SELECT * FROM t1", (("db", "t2"),)),
        ("ALTER TABLE `o` ADD COLUMN x WEIRDTYPE", (("db", "o"),)),
        ("alter table t add column x int with system versioning", (("db", "t"),)),
    ]:
        st = D.parse_ddl(sql, "db")
        assert isinstance(st, D.Unparsed) and st.tables == tables and st.reason, (sql, st)
    # an unqualified table without a default database cannot be a tracked one (the server refused it)
    assert D.parse_ddl("ALTER TABLE t ADD COLUMN x INT", None) is None


def test_statement_tables() -> None:
    def tables(sql: str) -> tuple:
        st = D.parse_ddl(sql, "db")
        assert st is not None
        return D.statement_tables(st)

    assert tables("ALTER TABLE a RENAME TO b") == (("db", "a"), ("db", "b"))
    assert tables("RENAME TABLE a TO b, b TO a") == (("db", "a"), ("db", "b"))


def test_table_def_round_trips_through_json() -> None:
    t = create("CREATE TABLE t (id INT PRIMARY KEY, e ENUM('a','b'), u INT NOT NULL UNIQUE)")
    again = D.TableDef.from_dict(json.loads(json.dumps(t.to_dict())))
    assert again == t and again.schema.unique_keys == (("u",),)


def pos(file_no: int, p: int, row: int = 0) -> LogPosition:
    return LogPosition(f"binlog.{file_no:06d}", p, row)


def test_history_gives_the_definition_valid_at_a_position(tmp_path: Path) -> None:
    v1 = create("CREATE TABLE t (id INT)")
    v2 = alter(v1, "ALTER TABLE t ADD COLUMN a INT")
    h = SchemaHistory(tmp_path)
    name = ("db", "t")
    h.record(name, pos(1, 100), v1, "start")
    h.record(name, pos(1, 500), v2, "ddl", "ALTER TABLE t ADD COLUMN a INT")
    h.record(name, pos(2, 50), None, "ddl", "DROP TABLE t")
    h.record(name, pos(1, 500), v2, "ddl", "ALTER TABLE t ADD COLUMN a INT")  # a replay: not written twice
    for history in (h, SchemaHistory(tmp_path)):  # in memory and reloaded from disk
        assert history.at(name, pos(1, 99)) == (False, None)
        assert history.at(name, pos(1, 100)) == (True, v1)
        assert history.at(name, pos(1, 499)) == (True, v1)
        assert history.at(name, pos(1, 500)) == (True, v2)  # a DDL ending at 500 is applied at 500
        assert history.at(name, pos(2, 4)) == (True, v2)
        assert history.at(name, pos(2, 50)) == (True, None)
        assert history.at(("db", "other"), pos(2, 50)) == (False, None)
    lines = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["cause"] == "ddl"


def test_history_ignores_a_torn_last_line_but_not_damage_inside(tmp_path: Path) -> None:
    h = SchemaHistory(tmp_path)
    t = create("CREATE TABLE t (id INT)")
    h.record(("db", "t"), pos(1, 4), t, "start")
    path = tmp_path / HISTORY_FILE
    path.write_text(path.read_text() + '{"pos": ["log", "binlog.0000')
    assert SchemaHistory(tmp_path).at(("db", "t"), pos(1, 4)) == (True, t)
    assert path.read_text().count("\n") == 1
    path.write_text("garbage\n" + path.read_text())
    with pytest.raises(StateError, match="damaged at line 1"):
        SchemaHistory(tmp_path)


def test_oceanbase_and_mariadb_print_integer_display_widths() -> None:
    for dialect in ("mariadb", "oceanbase"):
        t = create("CREATE TABLE t (a TINYINT, b SMALLINT UNSIGNED, c MEDIUMINT, d INT, e BIGINT UNSIGNED, f YEAR, "
                   "g INT(5), h BOOL, i INT ZEROFILL, j SERIAL)", dialect=dialect)
        assert [c.column_type for c in t.schema.columns] == [
            "tinyint(4)", "smallint(5) unsigned", "mediumint(9)", "int(11)", "bigint(20) unsigned", "year(4)",
            "int(5)", "tinyint(1)", "int(10) unsigned zerofill", "bigint(20) unsigned"]
    assert [c.column_type for c in create("CREATE TABLE t (a INT, b YEAR)").schema.columns] == ["int", "year"]


def test_oceanbase_table_options_and_partition_maintenance_change_no_column() -> None:
    t = create("CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL) ORGANIZATION INDEX COMPRESSION 'zstd_1.3.8' "
               "TABLET_SIZE 134217728 BLOCK_SIZE 16384 PCTFREE 10 PARTITION BY RANGE(id) "
               "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)")
    for sql in ["ALTER TABLE t SET TABLET_SIZE 268435456", "ALTER TABLE t SET COMPRESSION 'lz4_1.0'",
                "ALTER TABLE t TRUNCATE PARTITION p0, p1", "ALTER TABLE t DROP PARTITION p0, p1",
                "ALTER TABLE t TRUNCATE SUBPARTITION s0, s1", "ALTER TABLE t DROP SUBPARTITION s0, s1",
                "ALTER TABLE t ADD PARTITION (PARTITION p2 VALUES LESS THAN (20), PARTITION p3 VALUES LESS THAN (30))",
                "ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 2", "ALTER TABLE t REMOVE PARTITIONING"]:
        st = D.parse_ddl(sql, "db")
        assert isinstance(st, D.AlterTable) and st.actions == (), (sql, st)
        assert D.apply_alter(t, st) == t
    for sql in ["ALTER TABLE t COMMENT 'x'", "ALTER TABLE t COMMENT = 'x'", "ALTER TABLE t SET COMMENT 'x'"]:
        commented = alter(t, sql)  # the table's comment changes, its columns do not
        assert commented.schema.comment == "x" and commented.schema.columns == t.schema.columns, sql
    t2 = alter(t, "ALTER TABLE t ADD COLUMN c INT, TRUNCATE PARTITION p0, p1")  # partition clause comes last
    assert t2.schema.column_names == ("id", "k", "c")
    t3 = alter(t, "ALTER TABLE t SET DEFAULT CHARSET = latin1")
    assert t3.charset == "latin1"


def test_mariadb_rename_column_if_exists() -> None:
    t = create("CREATE TABLE t (id INT PRIMARY KEY, a INT)")
    assert alter(t, "ALTER TABLE t RENAME COLUMN IF EXISTS a TO b").schema.column_names == ("id", "b")


def test_a_resume_tracks_history_tables_the_rules_select_though_gone_from_the_source() -> None:
    """On a resume the rules are resolved against the source now: a table renamed away since the resume position
    is not among them, yet the stream replays its rows before the RENAME."""
    from obsync.connectors.mysql.binlog.schema_tracker import SchemaTracker

    class NoSource:
        dialect = "mariadb"

        def load(self, name):
            return None

    t1 = create("CREATE TABLE t1 (id INT PRIMARY KEY, a INT)")
    h = SchemaHistory(None)
    h.record(("db", "t1"), pos(1, 100), t1, "start")
    h.record(("db", "x9"), pos(1, 100), t1, "start")
    tr = SchemaTracker([], h, NoSource(), selector=lambda n: n[1].startswith("t"))  # type: ignore[arg-type]  # a source that knows no table
    tr.start(pos(1, 200))
    assert tr.tracked == {("db", "t1")} and tr.get(("db", "t1")) == t1
    tr2 = SchemaTracker([], h, NoSource(), selector=lambda n: n[1].startswith("t"))  # type: ignore[arg-type]  # a source that knows no table
    tr2.start(pos(1, 50))  # before the history knew it: nothing to take from it
    assert tr2.tracked == set()


def test_column_defaults_are_read_as_canonical_text() -> None:
    t = create("CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL DEFAULT 0, b INT DEFAULT -5, c INT DEFAULT '7', "
               "d DECIMAL(10,2) DEFAULT 1.5, e DECIMAL(4,1) DEFAULT - .05, s VARCHAR(9) DEFAULT 'it''s' NOT NULL, "
               "s2 VARCHAR(9) DEFAULT _utf8mb4'x' COMMENT 'c', s3 VARCHAR(9) DEFAULT N'n', "
               "s4 VARCHAR(9) DEFAULT 0x6869, "
               "n VARCHAR(9) DEFAULT NULL, z VARCHAR(9), bo TINYINT(1) DEFAULT TRUE, bf TINYINT(1) DEFAULT false, "
               "bits BIT(3) DEFAULT b'101', vb VARBINARY(4) DEFAULT 'ab', f FLOAT DEFAULT 0.1, "
               "g DOUBLE DEFAULT 2.5e3, "
               "dt DATE DEFAULT '2020-1-2', dtt DATETIME(3) DEFAULT '2020-01-02 03:04:05.5', "
               "tm TIME DEFAULT '-1:02:03', "
               "ts TIMESTAMP NULL DEFAULT '1970-01-01 00:00:10', en ENUM('x','y') DEFAULT 2, "
               "st SET('a','b') DEFAULT 'B,A', "
               "y YEAR DEFAULT 24, "
               "now1 TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, now2 DATETIME(6) "
               "DEFAULT now(6), ex INT DEFAULT (1 + 1), bad INT DEFAULT 'abc', gen INT AS (a + 1))")
    assert {c.name: c.default for c in t.schema.columns} == {
        "id": None, "a": "0", "b": "-5", "c": "7", "d": "1.50", "e": "-0.1", "s": "it's", "s2": "x", "s3": "n",
        "s4": "hi", "n": None, "z": None, "bo": "1", "bf": "0", "bits": "BQ==", "vb": "YWI=", "f": "0.1",
        "g": "2500", "dt": "2020-01-02", "dtt": "2020-01-02 03:04:05.500", "tm": "-01:02:03", "ts": "10",
        "en": "y", "st": "a,b", "y": "2024", "now1": "CURRENT_TIMESTAMP", "now2": "CURRENT_TIMESTAMP", "ex": None,
        "bad": None, "gen": None}
    assert not t.schema.column("s").nullable  # attributes after the default are still read

    t = alter(t, "ALTER TABLE t ALTER COLUMN a SET DEFAULT 42, ALTER COLUMN b DROP DEFAULT, "
                 "ALTER COLUMN z SET DEFAULT 'zz', ALTER COLUMN d SET DEFAULT (1), MODIFY s VARCHAR(9) DEFAULT 'new', "
                 "CHANGE c c2 INT, ADD COLUMN added INT NOT NULL DEFAULT 0")
    assert {c.name: c.default for c in t.schema.columns if c.name in ("a", "b", "z", "d", "s", "c2", "added")} == {
        "a": "42", "b": None, "z": "zz", "d": None, "s": "new", "c2": None, "added": "0"}
    t = alter(t, "ALTER TABLE t CONVERT TO CHARACTER SET binary")
    assert t.schema.column("s").data_type == "varbinary" and t.schema.column("s").default == "bmV3"
    with pytest.raises(D.DdlSyntaxError, match="no column nope"):
        alter(t, "ALTER TABLE t ALTER COLUMN nope SET DEFAULT 1")


def test_oceanbase_show_create_defaults_are_quoted() -> None:
    t = create("CREATE TABLE `t` (`a` int(11) NOT NULL DEFAULT '0', `b` decimal(10,2) DEFAULT '1.50', "
               "`c` varchar(20) DEFAULT 'it\\'s', `d` int(11) DEFAULT ((1 + 1)), `e` bit(3) DEFAULT b'101')",
               dialect="oceanbase")
    assert [c.default for c in t.schema.columns] == ["0", "1.50", "it's", None, "BQ=="]


def test_schema_history_entries_without_defaults_still_load() -> None:
    from obsync.core.schema import TableSchema

    t = create("CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL DEFAULT 0)")
    d = t.schema.to_dict()
    assert TableSchema.from_dict(d) == t.schema and d["columns"][1]["default"] == "0"
    for c in d["columns"]:
        del c["default"]
    assert [c.default for c in TableSchema.from_dict(d).columns] == [None, None]


def test_comments_auto_increment_and_default_charset_are_tracked() -> None:
    t = create("CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT COMMENT 'the id', s SERIAL, "
               "n VARCHAR(4) COMMENT '', PRIMARY KEY (id)) DEFAULT CHARSET=latin1 COMMENT = 'a table'")
    assert [(c.name, c.auto_increment, c.comment) for c in t.schema.columns] == [
        ("id", True, "the id"), ("s", True, None), ("n", False, None)]  # an empty comment is no comment
    assert (t.schema.default_charset, t.schema.comment) == ("latin1", "a table")
    t = alter(t, "ALTER TABLE t MODIFY n VARCHAR(8) COMMENT 'now longer', DEFAULT CHARSET utf8mb4")
    assert t.schema.column("n").comment == "now longer" and t.schema.default_charset == "utf8mb4"
    assert t.renamed(("db", "t2")).schema.comment == "a table"
    assert D.TableDef.from_dict(t.to_dict()) == t  # the schema history keeps them

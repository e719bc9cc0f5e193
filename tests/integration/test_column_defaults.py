"""Column defaults (`Column.default`) read three ways agree, on MariaDB and on OceanBase (seekdb): from the
catalog (information_schema.COLUMNS.COLUMN_DEFAULT, which the two servers write differently), from the CREATE
TABLE statement as the binlog carries it, and from the server's own SHOW CREATE TABLE, both read by the DDL
grammar; and after ALTER ... SET / DROP DEFAULT, MODIFY and CHANGE, the tracked definition agrees with the
catalog again."""

from __future__ import annotations

import base64

import pytest

from obsync.connectors.mysql.catalog import load_table_schema
from obsync.sql import ddl as D
from tests.helpers.tasks import unique

COLUMNS = {  # name: (definition, canonical default text)
    "id": ("INT PRIMARY KEY", None),
    "a": ("INT NOT NULL DEFAULT 0", "0"),
    "b": ("INT DEFAULT -5", "-5"),
    "c": ("DECIMAL(10,2) DEFAULT 1.5", "1.50"),
    "cc": ("DECIMAL(5,1) DEFAULT -0.05", "-0.1"),  # rounded half away from zero, as the server stores it
    "d": ("VARCHAR(20) DEFAULT 'it''s \"q\"'", "it's \"q\""),
    "e": ("VARCHAR(20) DEFAULT NULL", None),
    "f": ("VARCHAR(20)", None),
    "g": ("DATE DEFAULT '2020-01-02'", "2020-01-02"),
    "h": ("DATETIME(3) DEFAULT '2020-01-02 03:04:05.5'", "2020-01-02 03:04:05.500"),
    "hh": ("DATETIME DEFAULT '2020-01-02'", "2020-01-02 00:00:00"),
    "i": ("TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"),
    "j": ("TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)", "CURRENT_TIMESTAMP"),
    "k": ("DATETIME DEFAULT NOW()", "CURRENT_TIMESTAMP"),
    "l": ("TIME DEFAULT '12:00:01'", "12:00:01"),
    "m": ("FLOAT DEFAULT 1.25", "1.25"),
    "n": ("DOUBLE DEFAULT 2.5e3", "2500"),
    "o": ("BIT(3) DEFAULT b'101'", base64.b64encode(b"\x05").decode()),
    "p": ("ENUM('x','y') DEFAULT 'Y'", "y"),  # the member, as declared
    "q": ("SET('a','b') DEFAULT 'b,a'", "a,b"),
    "r": ("VARBINARY(4) DEFAULT 'ab'", base64.b64encode(b"ab").decode()),
    "s": ("TINYINT(1) DEFAULT TRUE", "1"),
    "t": ("TINYINT DEFAULT '7'", "7"),
    "u": ("BIGINT UNSIGNED DEFAULT 18446744073709551615", "18446744073709551615"),
    "v": ("YEAR DEFAULT 2024", "2024"),
    "w": ("CHAR(3) DEFAULT _utf8mb4'zz'", "zz"),
    "x": ("VARCHAR(10) DEFAULT ''", ""),
    "y": ("TIMESTAMP NULL DEFAULT '2020-01-01 00:00:00'", "1577836800"),  # read in a UTC session
    "z": ("VARCHAR(10) DEFAULT 'NULL'", "NULL"),
    "aa": ("INT DEFAULT (1 + 1)", None),
    "bb": ("VARCHAR(5) DEFAULT 'a\\\\b'", "a\\b"),
    "gg": ("VARCHAR(5) DEFAULT 0x6869", "hi"),
}

DIALECTS = {"mariadb": "mariadb", "seekdb": "oceanbase"}


@pytest.fixture(params=sorted(DIALECTS))
def source(request):
    server = request.getfixturevalue(request.param)
    conn = server.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("SET time_zone = '+00:00'")
    db = unique("defaults")
    cur.execute(f"CREATE DATABASE {db}")
    yield DIALECTS[request.param], conn, cur, db
    cur.execute(f"DROP DATABASE {db}")
    conn.close()


def defaults(schema) -> dict[str, str | None]:
    return {c.name: c.default for c in schema.columns}


def test_catalog_and_ddl_agree_on_column_defaults(source):
    dialect, conn, cur, db = source
    create = f"CREATE TABLE {db}.t (" + ", ".join(f"{n} {d}" for n, (d, _) in COLUMNS.items()) + ")"
    cur.execute(create)
    expected = {n: v for n, (_, v) in COLUMNS.items()}

    catalog = load_table_schema(conn, db, "t")
    assert defaults(catalog) == expected

    tracked = D.create_table_def(D.parse_ddl(create, db, dialect), "utf8mb4")
    assert defaults(tracked.schema) == expected

    cur.execute(f"SHOW CREATE TABLE {db}.t")
    shown = cur.fetchone()[1]
    assert defaults(D.create_table_def(D.parse_ddl(shown, db, dialect), "utf8mb4").schema) == expected, shown

    # the schema history keeps defaults; an old entry without them still loads
    d = catalog.to_dict()
    assert type(catalog).from_dict(d) == catalog
    for c in d["columns"]:
        del c["default"]
    assert all(c.default is None for c in type(catalog).from_dict(d).columns)

    for stmt, changed in [
        (f"ALTER TABLE {db}.t ALTER COLUMN a SET DEFAULT 42, ALTER COLUMN c DROP DEFAULT", {"a": "42", "c": None}),
        (f"ALTER TABLE {db}.t ALTER COLUMN f SET DEFAULT 'new', ALTER COLUMN g SET DEFAULT '2021-3-4'",
         {"f": "new", "g": "2021-03-04"}),
        (f"ALTER TABLE {db}.t MODIFY d VARCHAR(20) NOT NULL DEFAULT 'x''y'", {"d": "x'y"}),
        (f"ALTER TABLE {db}.t MODIFY b INT", {"b": None}),
        (f"ALTER TABLE {db}.t CHANGE x x2 VARCHAR(10) DEFAULT 'renamed'", {"x2": "renamed"}),
        (f"ALTER TABLE {db}.t ADD COLUMN nn INT NOT NULL DEFAULT 0, ADD COLUMN dd DECIMAL(6,3) DEFAULT '2.5'",
         {"nn": "0", "dd": "2.500"}),
    ]:
        cur.execute(stmt)
        tracked = D.apply_alter(tracked, D.parse_ddl(stmt, db, dialect))
        if "x2" in changed:
            expected = {("x2" if n == "x" else n): v for n, v in expected.items()}
        expected = expected | changed
        assert defaults(tracked.schema) == expected, stmt
        assert defaults(load_table_schema(conn, db, "t")) == expected, stmt

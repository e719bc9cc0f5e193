"""Reading DDL statements from the binlog and computing the table definitions they produce.

Statements are lexed with sqlglot's MySQL tokenizer (quoting, escapes, comments) and read by a small
grammar for the statements that change what a table's rows look like: CREATE TABLE, ALTER TABLE
(ADD / DROP / MODIFY / CHANGE / RENAME COLUMN, keys, RENAME TO, CONVERT TO CHARACTER SET), DROP TABLE,
RENAME TABLE, TRUNCATE TABLE, CREATE / DROP INDEX, DROP DATABASE. sqlglot's own parser is not used for
these because it loses MySQL type details (REAL, LONG and INT8 come back as FLOAT, BIGINT and TINYINT),
fails on spatial types, and falls back to an opaque command for RENAME TABLE, `ADD (a INT, b INT)` and
CONVERT TO. Anything this grammar cannot read with certainty becomes an `Unparsed` statement naming the
tables it touches, so the caller re-reads those tables from the source instead of guessing.

Everything here is pure: `parse_ddl(sql, default_db)` and `TableDef` transformations. The pieces, each
importing only those above it:

- `lexer`: tokens (`tokenize`, `Tok`), the cursor the grammar reads them with, `DdlSyntaxError`, `TableName`;
- `literals`: DEFAULT values (`read_default`, `literal_of`, `with_default`);
- `statements`: the syntax tree, one frozen class per statement (`Statement`), `ColumnDef`, `IndexDef`;
- `columns`: a column's type and attributes (`parse_column_def`), character set names;
- `create_table`, `alter_table`: the grammar of those two statements;
- `parser`: `parse_ddl`, the other statements, and `guess_tables` for DDL that cannot be read;
- `tables`: `TableDef` and the table-definition algebra (`create_table_def`, `apply_alter`).

Callers use this package's names (`from obsync.sql import ddl as D`; `D.parse_ddl`), listed in `__all__`.
"""

from obsync.sql.ddl.columns import charset_of_collation, normalize_charset, parse_column_def
from obsync.sql.ddl.lexer import DdlSyntaxError, TableName, Tok, tokenize
from obsync.sql.ddl.literals import literal_of, read_default, with_default
from obsync.sql.ddl.parser import guess_tables, parse_ddl
from obsync.sql.ddl.statements import (
    AlterTable,
    ColumnDef,
    CreateIndex,
    CreateTable,
    DatabaseChanged,
    DropDatabase,
    DropIndex,
    DropTables,
    IndexDef,
    RenameTables,
    Statement,
    TruncateTable,
    Unparsed,
    statement_tables,
)
from obsync.sql.ddl.tables import TableDef, apply_alter, build_schema, create_table_def

__all__ = [
    # lexing
    "DdlSyntaxError", "TableName", "Tok", "tokenize",
    # statements
    "AlterTable", "ColumnDef", "CreateIndex", "CreateTable", "DatabaseChanged", "DropDatabase", "DropIndex",
    "DropTables", "IndexDef", "RenameTables", "Statement", "TruncateTable", "Unparsed", "statement_tables",
    # parsing
    "charset_of_collation", "guess_tables", "literal_of", "normalize_charset", "parse_column_def", "parse_ddl",
    "read_default",
    # table definitions
    "TableDef", "apply_alter", "build_schema", "create_table_def", "with_default",
]

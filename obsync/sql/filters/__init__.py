"""Row filters: the per-object `where:` clause, applied by the database to full sync and by obsync to changes.

`where:` holds one SQL condition over the table's columns, written as in MySQL:

    objects:
      - {match: shop.orders, where: "status IN ('paid', 'shipped') AND amount >= 100"}

Full sync puts it in its SELECT (`RowFilter.sql`, generated again from the parsed clause: the user's text never
reaches the database as written). Incremental sync evaluates it on every row image (`RowFilter.matches`) with
the answer the database would give for that row (sessions in UTC). A row passes when the condition is TRUE;
FALSE and NULL drop it. An update is judged on its before and after images. A clause obsync cannot evaluate
exactly is refused when the task is checked, and the error names what is not supported.

Supported, and evaluated by obsync exactly as MySQL and MariaDB do:

- `AND` `&&` `OR` `||` `XOR` `NOT` `!` with SQL's NULL logic; `IS [NOT] NULL` (on any column), `IS [NOT] TRUE`
  and `IS [NOT] FALSE`; a number as a condition (true when not zero, as `where: "active"`).
- `=` `<>` `!=` `<` `<=` `>` `>=` `<=>`, `[NOT] BETWEEN`, `[NOT] IN (...)` (with MySQL's answer for a NULL in the
  list), between a column and literals, and between two columns of the same kind (text: the same collation).
- Numbers: integer (signed, unsigned) and YEAR, DECIMAL, FLOAT and DOUBLE columns; literals `42`, `1.50` (an exact
  DECIMAL), `1e3` (a DOUBLE), `TRUE`/`FALSE`; `+` `-` `*` `DIV` `MOD`/`%` and unary `-`: exact on integers and
  decimals, in doubles as soon as a DOUBLE takes part; `/` when a DOUBLE takes part. Division by zero is NULL.
  Where the database fails the query (a result out of the BIGINT range, e.g. `unsigned_col - 1` on 0), obsync
  stops with an error on that row too.
- Dates and times: DATE, DATETIME, TIMESTAMP and TIME columns against quoted literals `'2024-05-01'`,
  `'2024-05-01 12:30:00[.ffffff]'` (UTC for TIMESTAMP columns) and `'[-]hhh:mm:ss[.ffffff]'`; zero dates stored
  in the table (`0000-00-00`) order before every date, as in MySQL.
- Text: `[NOT] LIKE` with `%`, `_`, the default `\\` escape or `ESCAPE 'c'`, and the comparisons above, following
  the column's collation. Binary strings (BINARY, VARBINARY, BLOB) compare byte by byte; `_bin` collations by
  code point, ignoring trailing spaces when the collation is PAD SPACE (`utf8mb4_bin`) and not when NO PAD
  (`utf8mb4_nopad_bin`, `utf8mb4_0900_bin`); case-insensitive collations (`*_general_ci`, `*_unicode_ci`,
  `*_unicode_520_ci`, `utf8mb4_0900_ai_ci`, `*_uca1400_ai_ci`, `latin1_swedish_ci`, their NO PAD variants) for
  `=`, `<>`, `IN` and `LIKE` when both sides are printable ASCII.

Asked from the source database (one `SELECT` of the comparison with the two values as parameters; answers cached
per filter), because only the collation knows: `<`, `>`, `BETWEEN` on case-insensitive text; `=` and `LIKE`
on case-insensitive text with non-ASCII characters (is `'ß' = 'ss'`?); ordering non-ASCII `latin1_bin` text;
every comparison under other collations (language-specific, accent- or case-sensitive `_as_cs`, other
character sets).

Refused, naming the construct: functions of any kind, subqueries, `;` and further statements, variables and
parameters, CASE, REGEXP, COLLATE, CAST and typed literals (`DATE '...'`), INTERVAL, bitwise operators, row
constructors, executable comments (`/*! ... */`); unknown columns (the error lists the table's columns);
comparisons on JSON, SET, BIT, spatial and FLOAT(M,D)/DOUBLE(M,D) columns; a number compared with a quoted
string or a text column (MySQL compares both as inexact doubles) and a date with a number; `/` on integers and
decimals (MySQL and MariaDB round its result differently depending on where it is used: write `a > 2 * b` rather
than `a / b > 2`, or use `DIV`); dates not written as above; two-digit years against YEAR columns (MySQL reads
24 as 2024); `IN` and `BETWEEN` mixing DOUBLE values with exact numbers; `ESCAPE ''`; comparing text columns
whose collation the schema does not know.

The package: `syntax` (reading the clause, writing its SQL again), `terms` (a compiled sub-expression and its
MySQL type), `compiler` (checks and closures), `semantics` (MySQL's comparisons and arithmetic on values),
`row_filter` (`RowFilter`, `compile_filter`, re-exported here).
"""

from obsync.sql.filters.row_filter import RowFilter, compile_filter

__all__ = ["RowFilter", "compile_filter"]

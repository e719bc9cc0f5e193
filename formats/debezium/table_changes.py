"""The `tableChanges` of Debezium schema-change events: a table's whole structure after a DDL, as the MySQL
connector's DDL parser (Debezium 3.1) describes it and `ConnectTableChangeSerializer` writes it.

`table_change(kind, db, name, table)` gives one item, `{type, id, table}`:
- `type`: "CREATE", "ALTER" (RENAME included: the item names the new table) or "DROP" (then `table` is null);
- `id`: `"db"."table"` (Debezium's `TableId.toDoubleQuotedString`);
- `table`: `{defaultCharsetName, primaryKeyColumnNames, columns, comment}`; each column is
  `{name, jdbcType, nativeType, typeName, typeExpression, charsetName, length, scale, position, optional,
  autoIncremented, generated, comment, defaultValueExpression, enumValues}` (every member present, null when
  unset, as the JsonConverter writes an optional field).

Debezium reads these from the DDL text (the statement in the binlog, or SHOW CREATE TABLE during its
snapshot); obsync from its tracked schema (information_schema, or the DDL it parsed), in the server's
canonical spelling of each type (as SHOW CREATE TABLE prints it):

- `jdbcType`: the java.sql.Types code Debezium 3.1's MySQL parser gives: TINYINT and SMALLINT 5, MEDIUMINT,
  INT and YEAR 4, BIGINT -5, FLOAT 6, DOUBLE 8, DECIMAL 3, BIT -7, CHAR, ENUM and SET 1, VARCHAR and TEXT kinds
  12, BINARY -2, VARBINARY -3, BLOB kinds 2004, DATE 91, TIME 92, DATETIME 93, TIMESTAMP 2014, JSON and spatial
  types 1111; `nativeType` is null.
- `typeName` = `typeExpression`: the type upper-case, then ` UNSIGNED` / ` UNSIGNED ZEROFILL` ("INT UNSIGNED").
- `length`, `scale`: the declared `(length[,scale])` (VARCHAR(255): 255; DECIMAL(10,2): 10, 2; DATETIME(3): 3;
  INT(11) where the server prints a display width, none where it does not (MySQL 8)); ENUM 1, SET 2n-1
  (members and commas); DECIMAL without scale: 0.
- `charsetName`: the column's character set (its own, else the table's default: Debezium's `ColumnImpl` gives
  every CHAR/VARCHAR-typed column, ENUM and SET included, the table's default); null for other types.
- `position`: 1-based; `optional`: nullable.
- `autoIncremented`, `generated`: AUTO_INCREMENT (Debezium 3.1 sets `generated` for AUTO_INCREMENT only, not for
  `AS (expr)` columns).
- `defaultValueExpression`: the literal default as Debezium unquotes it ("abc", "1.50", "101" for b'101');
  "1970-01-01 00:00:00" for CURRENT_TIMESTAMP (Debezium's placeholder); null for none, NULL and other
  expressions.
- `enumValues`: ENUM/SET members quoted as in the DDL (`'a'`); null for other types.
- `defaultCharsetName`, `comment` (table): the table's default character set and COMMENT.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from obsync.core.defaults import CURRENT_TIME
from obsync.core.schema import TEXT_TYPES, Column, TableSchema

Struct = dict[str, Any]

# java.sql.Types codes as Debezium 3.1's MySQL DDL parser (MySqlAntlrDdlParser) assigns them
_JDBC = {
    "tinyint": 5, "smallint": 5, "mediumint": 4, "int": 4, "integer": 4, "bigint": -5,
    "float": 6, "double": 8, "real": 7, "decimal": 3, "numeric": 2, "bit": -7, "bool": 16, "boolean": 16,
    "char": 1, "varchar": 12, "tinytext": 12, "text": 12, "mediumtext": 12, "longtext": 12,
    "binary": -2, "varbinary": -3, "tinyblob": 2004, "blob": 2004, "mediumblob": 2004, "longblob": 2004,
    "date": 91, "time": 92, "datetime": 93, "timestamp": 2014, "year": 4,
    "enum": 1, "set": 1,
}
_OTHER = 1111  # JSON, spatial types, anything else
_DEFAULT_DIMENSIONS = {"decimal": (10, 0), "numeric": (10, 0), "bit": (1, None)}  # Debezium's defaults
_CHARSET_TYPES = TEXT_TYPES | {"enum", "set"}


def table_id(db: str, name: str) -> str:
    """Debezium's `TableId.toDoubleQuotedString()`: `"db"."table"`."""
    return f'"{db}"."{name}"'


def table_change(kind: str, db: str, name: str, table: TableSchema | None) -> Struct:
    """One `tableChanges` item (`kind`: CREATE, ALTER or DROP; `table` None for DROP)."""
    return {"type": kind, "id": table_id(db, name), "table": None if table is None else table_struct(table)}


def table_struct(table: TableSchema) -> Struct:
    """The `io.debezium.connector.schema.Table` struct of a table."""
    return {
        "defaultCharsetName": table.default_charset,
        "primaryKeyColumnNames": list(table.primary_key),
        "columns": [column_struct(c, i) for i, c in enumerate(table.columns, 1)],
        "comment": table.comment,
    }


def column_struct(column: Column, position: int) -> Struct:
    """The `io.debezium.connector.schema.Column` struct of a column at `position` (1-based)."""
    type_name = type_name_of(column)
    length, scale = dimensions(column)
    return {
        "name": column.name,
        "jdbcType": _JDBC.get(column.data_type, _OTHER),
        "nativeType": None,
        "typeName": type_name,
        "typeExpression": type_name,
        "charsetName": column.charset if (column.data_type in _CHARSET_TYPES and column.charset not in
                                          (None, "binary")) else None,
        "length": length,
        "scale": scale,
        "position": position,
        "optional": column.nullable,
        "autoIncremented": column.auto_increment,
        "generated": column.auto_increment,
        "comment": column.comment,
        "defaultValueExpression": default_expression(column),
        "enumValues": [_quoted(v) for v in column.values] if column.data_type in ("enum", "set") else None,
    }


def type_name_of(column: Column) -> str:
    """Debezium's `typeName` (= `typeExpression`): the type word upper-case, then UNSIGNED / ZEROFILL."""
    name = column.data_type.upper()
    if column.unsigned:
        name += " UNSIGNED"
    if "zerofill" in column.column_type:
        name += " ZEROFILL" if column.unsigned else " UNSIGNED ZEROFILL"
    return name


def dimensions(column: Column) -> tuple[int | None, int | None]:
    """`(length, scale)` as Debezium's parser reads them from the type's `(length[,scale])`."""
    t = column.data_type
    if t == "enum":
        return 1, None
    if t == "set":
        return max(0, 2 * len(column.values) - 1), None
    ct = column.column_type
    if "(" in ct:
        args = ct[ct.index("(") + 1: ct.index(")")].split(",")
        try:
            length = int(args[0])
            scale = int(args[1]) if len(args) > 1 else None
        except ValueError:
            return _DEFAULT_DIMENSIONS.get(t, (None, None))
        if scale is None and t in ("decimal", "numeric"):
            scale = 0
        return length, scale
    return _DEFAULT_DIMENSIONS.get(t, (None, None))


def default_expression(column: Column) -> str | None:
    """Debezium's `defaultValueExpression` of a column (see the module's table)."""
    text = column.default
    if text is None:
        return None
    if text == CURRENT_TIME:
        return "1970-01-01 00:00:00"
    t = column.data_type
    if t == "timestamp":  # canonical text: epoch seconds; the DDL writes the UTC date-time
        seconds = float(text)
        when = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
        return when.isoformat(" ", "microseconds" if column.fsp else "seconds")[: 19 + (column.fsp and 1 + column.fsp)]
    if t == "bit":  # canonical text: Base64 of the bytes; the DDL writes b'101', which Debezium keeps as "101"
        return format(int.from_bytes(base64.b64decode(text), "big"), "b")
    if column.is_binary:
        return None  # Base64 bytes: not what the DDL wrote
    return text


def _quoted(member: str) -> str:
    return "'" + member.replace("'", "''") + "'"

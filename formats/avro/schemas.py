"""Kafka Connect schemas (the JsonConverter's JSON form) -> Avro schemas, as Confluent's AvroConverter writes them.

The Debezium formats describe keys and values with Connect schemas as plain dicts, the JSON the JsonConverter
writes with `schemas.enable=true` (`{"type": "struct", "name": ..., "optional": ..., "fields": [{"field": ...,
"type": ..., ...}]}`). `avro_schema` turns one into the Avro schema Confluent's `AvroData.fromConnectSchema`
builds from the same Connect schema (with its default `connect.meta.data=true`), so a consumer that uses
Confluent's deserializer or Kafka Connect's AvroConverter reads our messages as it reads Debezium's:

- int8 / int16 -> `int` with `"connect.type": "int8"` / `"int16"`; int32 -> `int`; int64 -> `long`; float ->
  `float`; double -> `double`; boolean, string, bytes alike; array -> `array`; map with string keys -> `map`, other
  maps -> array of `MapEntry` records (`key`, `value`); struct -> `record` whose namespace and name are the
  Connect name split at its last dot (`ConnectDefault` in `io.confluent.connect.avro` without a name).
- Every non-union schema carries the Connect metadata: `connect.doc`, `connect.version`, `connect.parameters`,
  `connect.default`, `connect.name`; a struct field whose schema has a `doc` (a column's COMMENT) has it as the
  Avro field's `doc` too.
- Connect's logical types get Avro's: `org.apache.kafka.connect.data.Decimal` -> `bytes` with `logicalType:
  decimal`, `scale` and `precision` (the `connect.decimal.precision` parameter, which Debezium sets to the
  column's precision, else 64); `...Date` -> `int` `date`; `...Time` -> `int` `time-millis`; `...Timestamp` ->
  `long` `timestamp-millis`.
- Debezium's own semantic types (`io.debezium.time.Date`, `Timestamp`, `MicroTimestamp`, `MicroTime`,
  `ZonedTimestamp`, ...) are not Connect logical types: Confluent's converter writes them as their base type
  with their `connect.name`, and so do we. Connect's AvroConverter refuses to read `io.debezium.time.Date` or
  `...Timestamp` annotated as Avro `date` / `timestamp-millis` ("Mismatched names"), so adding logical types
  to them is an option (`logical_types="all"`: `io.debezium.time.Date` -> `date`, `Timestamp` ->
  `timestamp-millis`, `MicroTimestamp` -> `timestamp-micros`) for consumers that are not Kafka Connect.
  `MicroTime` never gets `time-micros`: a MySQL TIME spans -838:59:59..838:59:59 and Avro readers (fastavro,
  Java) fail on a time-micros value outside one day.
- An optional schema is the union `["null", T]` (field default null), or `[T, "null"]` with the Connect
  default as field default when it has one (Avro wants the default to match the union's first branch).
- A record used twice (the Debezium envelope's `before` and `after`) is defined at its first use and
  referenced by full name afterwards.

Avro names must match `[A-Za-z_][A-Za-z0-9_]*`: every other character of a record name, namespace part or
field name becomes `_`, and a leading digit gets a `_` prefix (Debezium's `avro` name adjustment mode). Values
are renamed to match by the converter `datum_converter` builds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from obsync.formats.avro.errors import AvroFormatError

AVRO_NAMESPACE = "io.confluent.connect.avro"
DEFAULT_SCHEMA_NAME = "ConnectDefault"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
CONNECT_DATE = "org.apache.kafka.connect.data.Date"
CONNECT_TIME = "org.apache.kafka.connect.data.Time"
CONNECT_TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
DECIMAL_PRECISION_PARAM = "connect.decimal.precision"
DECIMAL_PRECISION_DEFAULT = 64

LOGICAL_TYPE_MODES = ("connect", "all")

_CONNECT_LOGICAL = {CONNECT_DATE: "date", CONNECT_TIME: "time-millis", CONNECT_TIMESTAMP: "timestamp-millis"}
_DEBEZIUM_LOGICAL = {
    "io.debezium.time.Date": "date",
    "io.debezium.time.Timestamp": "timestamp-millis",
    "io.debezium.time.MicroTimestamp": "timestamp-micros",
}
_PRIMITIVES = {
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "long",
    "float": "float",
    "float32": "float",
    "double": "double",
    "float64": "double",
    "boolean": "boolean",
    "string": "string",
    "bytes": "bytes",
}
_INVALID = re.compile(r"[^A-Za-z0-9_]")

Convert = Callable[[Any], Any]


def avro_name(name: str) -> str:
    """`name` as a valid Avro name: invalid characters as `_`, `_` before a leading digit or an empty name."""
    out = _INVALID.sub("_", name)
    return out if out and not out[0].isdigit() else "_" + out


def split_name(full: str) -> tuple[str | None, str]:
    """(namespace, name) of a Connect schema name, each made a valid Avro name (namespace part by part)."""
    namespace, dot, name = full.rpartition(".")
    if not dot:
        return None, avro_name(full)
    return ".".join(avro_name(p) for p in namespace.split(".")), avro_name(name)


def avro_schema(connect: dict[str, Any], logical_types: str = "connect") -> Any:
    """The Avro schema (JSON-able: str, dict or list) of a Connect schema in the JsonConverter's form."""
    if logical_types not in LOGICAL_TYPE_MODES:
        raise ValueError(f"logical_types {logical_types!r}; valid: {', '.join(LOGICAL_TYPE_MODES)}")
    return _Builder(logical_types == "all").schema(connect)


class _Builder:
    def __init__(self, debezium_logical: bool) -> None:
        self.debezium_logical = debezium_logical
        self.defined: set[str] = set()  # full names of the records written so far

    def schema(self, s: dict[str, Any]) -> Any:
        base = self._base(s)
        if not s.get("optional", False):
            return base
        if s.get("default") is not None:
            return [base, "null"]
        return ["null", base]

    def _base(self, s: dict[str, Any]) -> Any:
        kind = s["type"]
        name = s.get("name")
        if kind == "struct":
            return self._record(s)
        props: dict[str, Any] = {}
        if kind in _PRIMITIVES:
            avro_type: Any = _PRIMITIVES[kind]
            if kind == "bytes" and name == DECIMAL:
                params = s.get("parameters") or {}
                props["scale"] = int(params.get("scale", 0))
                props["precision"] = int(params.get(DECIMAL_PRECISION_PARAM, DECIMAL_PRECISION_DEFAULT))
        elif kind == "array":
            avro_type, props["items"] = "array", self.schema(s["items"])
        elif kind == "map":
            keys, values = s["keys"], s["values"]
            if keys["type"] == "string" and not keys.get("optional", False):
                avro_type, props["values"] = "map", self.schema(values)
            else:
                entry = {"type": "record", "name": "MapEntry", "namespace": AVRO_NAMESPACE,
                         "fields": [self._field("key", keys), self._field("value", values)]}
                if name is not None:
                    ns, short = split_name(name)
                    entry.update({"name": short, "namespace": ns, "connect.internal.type": "MapEntry"})
                avro_type, props["items"] = "array", self._reuse(entry)
        else:
            raise AvroFormatError(f"Connect schema type {kind!r} has no Avro equivalent")
        self._metadata(s, props)
        if kind in ("int8", "int16"):
            props["connect.type"] = kind
        logical = self._logical(name, kind)
        if logical is not None:
            props["logicalType"] = logical
        if not props:
            return avro_type
        return {"type": avro_type, **props}

    def _logical(self, name: str | None, kind: str) -> str | None:
        if name is None:
            return None
        if name == DECIMAL and kind == "bytes":
            return "decimal"
        logical = _CONNECT_LOGICAL.get(name)
        if logical is None and self.debezium_logical:
            logical = _DEBEZIUM_LOGICAL.get(name)
        if logical is None:
            return None
        expected = "int" if logical in ("date", "time-millis") else "long"
        return logical if _PRIMITIVES.get(kind) == expected else None

    def _record(self, s: dict[str, Any]) -> Any:
        name = s.get("name")
        namespace, short = split_name(name) if name else (AVRO_NAMESPACE, DEFAULT_SCHEMA_NAME)
        full = record_full_name(s)
        if full in self.defined:
            return full  # a second use is a reference (AvroData reuses the Avro schema it built)
        self.defined.add(full)
        record: dict[str, Any] = {"type": "record", "name": short}
        if namespace:
            record["namespace"] = namespace
        fields = [self._field(f["field"], f) for f in s.get("fields", ())]
        seen: dict[str, str] = {}
        for connect_field, field in zip(s.get("fields", ()), fields, strict=True):
            other = seen.setdefault(field["name"], connect_field["field"])
            if other != connect_field["field"]:
                raise AvroFormatError(
                    f"fields {other!r} and {connect_field['field']!r} of {name or 'a struct'} both become Avro "
                    f"field {field['name']!r} (Avro names allow only letters, digits and '_'); rename one")
        record["fields"] = fields
        self._metadata(s, record)
        return record

    def _reuse(self, record: dict[str, Any]) -> Any:
        full = f"{record['namespace']}.{record['name']}"
        if full in self.defined:
            return full
        self.defined.add(full)
        return record

    def _field(self, name: str, s: dict[str, Any]) -> dict[str, Any]:
        field: dict[str, Any] = {"name": avro_name(name), "type": self.schema(s)}
        if s.get("doc") is not None:  # AvroData's addAvroRecordField: the field schema's doc is the field's doc
            field["doc"] = s["doc"]
        default = s.get("default")
        if default is not None:
            field["default"] = avro_default(s, default)
        elif s.get("optional", False):
            field["default"] = None
        return field

    def _metadata(self, s: dict[str, Any], props: dict[str, Any]) -> None:
        """The `connect.*` properties AvroData adds to every non-union schema (in its order)."""
        if s.get("doc") is not None:
            props["connect.doc"] = s["doc"]
        if s.get("version") is not None:
            props["connect.version"] = s["version"]
        if s.get("parameters"):
            props["connect.parameters"] = dict(s["parameters"])
        if s.get("default") is not None:
            props["connect.default"] = avro_default(s, s["default"])
        if s.get("name") is not None:
            props["connect.name"] = s["name"]


def avro_default(s: dict[str, Any], value: Any) -> Any:
    """A Connect default (as the JsonConverter writes it) as Avro's JSON default: bytes as ISO-8859-1 text."""
    if s["type"] == "bytes":
        return _to_bytes(s, value).decode("latin-1")
    if s["type"] == "struct" and isinstance(value, dict):
        return {avro_name(f["field"]): None if (x := value.get(f["field"])) is None else avro_default(f, x)
                for f in s.get("fields", ())}
    return value


# ---------------------------------------------------------------------- values


def datum_converter(connect: dict[str, Any]) -> Convert | None:
    """A function from a Connect value (the Debezium formats' payload) to the datum fastavro writes for
    `avro_schema(connect)`, or None when the payload can be written as it is.

    Payloads may be in the JsonConverter's JSON form or in Python form: bytes as bytes or Base64 text, a
    Connect Decimal as `decimal.Decimal`, its unscaled two's-complement bytes, or their Base64 text (written
    as those bytes, so never rounded). Structs are renamed where Avro names differ from Connect's. A struct
    in an optional field is given in fastavro's tuple notation, `(record full name, value)`: that names the
    union branch, which fastavro would otherwise find by validating the value against each branch.
    """
    kind = connect["type"]
    if kind == "bytes":
        if connect.get("name") == DECIMAL:
            scale = int((connect.get("parameters") or {}).get("scale", 0))
            return lambda v: None if v is None else decimal_bytes(v, scale)
        return _bytes_value
    if kind == "struct":
        inner = _struct_converter(connect)
        if not connect.get("optional", False):
            return inner
        name = record_full_name(connect)
        if inner is None:
            return lambda v: None if v is None else (name, v)
        return lambda v: None if v is None else (name, inner(v))
    if kind == "array":
        item = datum_converter(connect["items"])
        if item is None:
            return None
        return lambda v: None if v is None else [item(x) for x in v]
    if kind == "map":
        keys, values = connect["keys"], connect["values"]
        kc, vc = datum_converter(keys), datum_converter(values)
        if keys["type"] == "string" and not keys.get("optional", False):
            if vc is None:
                return None
            return lambda v: None if v is None else {k: vc(x) for k, x in v.items()}
        kf = kc or (lambda x: x)
        vf = vc or (lambda x: x)
        return lambda v: None if v is None else [{"key": kf(k), "value": vf(x)} for k, x in v.items()]
    return None


def renames_fields(connect: dict[str, Any]) -> bool:
    """Whether a struct in `connect` has a field whose Avro name differs (`datum_converter` renames its values)."""
    kind = connect["type"]
    if kind == "struct":
        return any(avro_name(f["field"]) != f["field"] or renames_fields(f) for f in connect.get("fields", ()))
    if kind == "array":
        return renames_fields(connect["items"])
    if kind == "map":
        return renames_fields(connect["keys"]) or renames_fields(connect["values"])
    return False


def record_full_name(connect: dict[str, Any]) -> str:
    """The Avro full name of the record a Connect struct becomes."""
    name = connect.get("name")
    namespace, short = split_name(name) if name else (AVRO_NAMESPACE, DEFAULT_SCHEMA_NAME)
    return f"{namespace}.{short}" if namespace else short


def _struct_converter(connect: dict[str, Any]) -> Convert | None:
    plan = []
    renamed = False
    for f in connect.get("fields", ()):
        name = f["field"]
        target = avro_name(name)
        renamed = renamed or target != name
        plan.append((name, target, datum_converter(f)))
    if not renamed:
        changed = tuple((name, conv) for name, _, conv in plan if conv is not None)
        if not changed:
            return None

        def convert_in_copy(v: Any) -> Any:
            if v is None:
                return None
            out = dict(v)
            for name, conv in changed:
                x = out.get(name)
                if x is not None:
                    out[name] = conv(x)
            return out

        return convert_in_copy
    steps = tuple(plan)

    def convert_renamed(v: Any) -> Any:
        if v is None:
            return None
        out = {}
        for name, target, conv in steps:
            x = v.get(name)
            out[target] = x if conv is None or x is None else conv(x)
        return out

    return convert_renamed


def _bytes_value(v: Any) -> Any:
    if v is None or type(v) is bytes:
        return v
    if isinstance(v, str):
        return base64.b64decode(v)
    return bytes(v)


def _to_bytes(s: dict[str, Any], value: Any) -> bytes:
    if s.get("name") == DECIMAL:
        return decimal_bytes(value, int((s.get("parameters") or {}).get("scale", 0)))
    return _bytes_value(value)


def decimal_bytes(v: Any, scale: int) -> bytes:
    """The unscaled two's-complement big-endian bytes of a Connect Decimal (what Connect and Avro carry),
    as short as Java's `BigInteger.toByteArray` makes them. Exact at any precision (no decimal context)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return base64.b64decode(v)
    d = v if isinstance(v, Decimal) else Decimal(str(v))
    try:
        num, den = d.as_integer_ratio()  # exact; den a power of 2 and 5
    except (ValueError, OverflowError):
        raise AvroFormatError(f"decimal {v} is not a number") from None
    n, rest = divmod(num * 10**scale, den) if den != 1 else (num * 10**scale, 0)
    if rest:
        raise AvroFormatError(f"decimal {v} has more than {scale} fraction digits (the column's scale)")
    return n.to_bytes((n if n >= 0 else ~n).bit_length() // 8 + 1, "big", signed=True)

"""The bytes of one Avro message: Confluent's wire format, or Avro single-object encoding.

Confluent wire format (with a schema registry), what Confluent's serializers write and read:

    0x00 | schema id (4 bytes, big-endian) | Avro binary of the datum

Avro single-object encoding (without a registry; Avro specification, "Single-object encoding"):

    0xC3 0x01 | CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form (8 bytes, little-endian) | Avro binary

The Avro binary is fastavro's `schemaless_writer` output: the datum alone, no container header.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

from obsync.formats.avro.errors import AvroFormatError
from obsync.formats.avro.plan import compile_writer

CONFLUENT_MAGIC = b"\x00"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_ID = struct.Struct(">I")


def confluent_header(schema_id: int) -> bytes:
    return CONFLUENT_MAGIC + _ID.pack(schema_id)


def single_object_header(fp: bytes) -> bytes:
    return SINGLE_OBJECT_MAGIC + fp


def fingerprint(schema: Any) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of `schema`'s Parsing Canonical Form, in the order single-object
    encoding writes it (little-endian, as Java's `SchemaNormalization.parsingFingerprint64` is written).
    The canonical form keeps names, types and fields only: logical types and `connect.*` attributes do not
    change it."""
    return bytes.fromhex(_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class AvroWriter:
    """Writes data of one schema behind a fixed header (the Confluent or single-object prefix): with the schema's
    compiled writer (`obsync.formats.avro.plan`, the same bytes in a fraction of the time) when it writes the
    datum, else with fastavro."""

    __slots__ = ("schema", "parsed", "header", "fast")

    def __init__(self, schema: Any, header: bytes) -> None:
        self.schema = schema
        self.parsed = parse_schema(schema)
        self.header = header
        self.fast = compile_writer(self.parsed)

    def write(self, datum: Any) -> bytes:
        fast = self.fast
        if fast is not None:
            try:
                return self.header + fast(datum)
            except Exception:  # noqa: BLE001 - anything it does not write (or fails on) is fastavro's to write or refuse
                pass
        return self.slow_write(datum)

    def slow_write(self, datum: Any) -> bytes:
        """`datum` written by fastavro."""
        buf = io.BytesIO()
        buf.write(self.header)
        try:
            schemaless_writer(buf, self.parsed, datum)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            name = self.schema.get("name") if isinstance(self.schema, dict) else self.schema
            raise AvroFormatError(f"cannot write a value as Avro record {name}: {e}") from e
        return buf.getvalue()


# ---------------------------------------------------------------------- reading (consumers, tests)


def split_confluent(message: bytes) -> tuple[int, bytes]:
    """(schema id, Avro binary) of a Confluent wire-format message."""
    if len(message) < 5 or message[:1] != CONFLUENT_MAGIC:
        raise ValueError(f"not a Confluent wire-format message (starts {message[:5].hex()})")
    return _ID.unpack_from(message, 1)[0], message[5:]


def split_single_object(message: bytes) -> tuple[bytes, bytes]:
    """(fingerprint, Avro binary) of a single-object encoded message."""
    if len(message) < 10 or message[:2] != SINGLE_OBJECT_MAGIC:
        raise ValueError(f"not an Avro single-object message (starts {message[:10].hex()})")
    return message[2:10], message[10:]


def read(payload: bytes, schema: Any) -> Any:
    """The datum in an Avro binary `payload` written with `schema` (a parsed or JSON schema)."""
    return schemaless_reader(io.BytesIO(payload), parse_schema(schema))

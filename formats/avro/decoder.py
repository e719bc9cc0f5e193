"""Reading `avro` messages back: Confluent wire format through the schema registry (schemas fetched by id, never
registered), or single-object encoding through the schemas read from the schema topic (`learn`). The datum is
the Debezium envelope, read as the `debezium` format's (`obsync.formats.debezium.envelope.decode_envelope`).

Source rows are encoded by a registry-less encoder of the same settings, so reading them back needs (and
writes) nothing: its schema records are learnt as they are made.
"""

from __future__ import annotations

import io
import json
from typing import Any

from fastavro import parse_schema, schemaless_reader

from obsync.core.changes import Change
from obsync.formats.avro.encoder import AvroEncoder
from obsync.formats.avro.wire import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, split_confluent, split_single_object
from obsync.formats.base import Encoder, KafkaRecord
from obsync.formats.debezium.envelope import decode_envelope
from obsync.formats.decoding import Decoded, DecodeError, Decoder
from obsync.formats.registry import register_decoder


class AvroDecoder(Decoder):
    """Decodes `avro` messages written by `encoder` (its registry, if any, is only read from)."""

    encoder: AvroEncoder

    def __init__(self, encoder: AvroEncoder) -> None:
        super().__init__(encoder)
        self._by_id: dict[int, Any] = {}
        self._by_fingerprint: dict[bytes, Any] = {}
        self._local = AvroEncoder(encoder.cfg, None, schema_topic=encoder.schema_topic,
                                  logical_types=encoder.logical_types)

    def side_topics(self) -> list[str]:
        return [self.encoder.schema_topic] if self.encoder.registry is None else []

    def learn(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        if topic != self._local.schema_topic:
            return False
        if key is not None and value is not None:
            try:
                self._by_fingerprint[bytes.fromhex(key.decode())] = parse_schema(json.loads(value))
            except Exception as e:  # noqa: BLE001 - fastavro raises many kinds on a bad schema
                raise DecodeError(f"schema topic {topic}: record with key {key!r:.40} is not a schema: {e}") from None
        return True

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        return decode_envelope(self._datum(topic, value), self._datum(topic, key))

    def _encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        return self._local.encode(change, topic)

    def _datum(self, topic: str, message: bytes | None) -> Any:
        if message is None:
            return None
        if message[:1] == CONFLUENT_MAGIC:
            schema_id, payload = split_confluent(message)
            schema = self._by_id.get(schema_id)
            if schema is None:
                registry = self.encoder.registry
                if registry is None:
                    raise DecodeError(f"topic {topic}: a message in Confluent wire format (schema id {schema_id}) "
                                      "but the task sets no `format_options.schema_registry`")
                schema = self._by_id[schema_id] = parse_schema(registry.schema(schema_id))
        elif message[:2] == SINGLE_OBJECT_MAGIC:
            fp, payload = split_single_object(message)
            schema = self._by_fingerprint.get(fp)
            if schema is None:
                raise DecodeError(f"topic {topic}: no schema with fingerprint {fp.hex()} in the schema topic "
                                  f"{self.encoder.schema_topic}")
        else:
            raise DecodeError(f"topic {topic}: not an Avro message of obsync (starts {message[:10].hex()})")
        try:
            return schemaless_reader(io.BytesIO(payload), schema)
        except Exception as e:  # noqa: BLE001 - fastavro raises many kinds on damaged data
            raise DecodeError(f"topic {topic}: cannot read an Avro message: {e}") from None


@register_decoder("avro")
def _decoder(encoder: Encoder) -> AvroDecoder:
    assert isinstance(encoder, AvroEncoder)
    return AvroDecoder(encoder)

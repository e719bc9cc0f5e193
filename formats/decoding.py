"""Reading obsync's own messages back: every format decodes what it encodes (for `obsync verify`).

A format module registers, beside its encoder, a decoder factory with `formats.registry.register_decoder(name)`:
`f(encoder) -> Decoder`, given the encoder built from the task's `format_options`. A `Decoder` turns one Kafka
message into the row operations it describes (`Decoded`): an insert adds its `after` image, a delete removes its
`before` image, an update does both, a truncate empties the table; DDL, heartbeats and anything else are
`skip`. Images map column names to the values as the format's reader gets them (text for the OMS-style
formats, JSON or Avro values for the Debezium family).

`source_image(change, topic)` is the after image a source row (a READ change, already shaped by the task's
settings) has once written in the format and read back: comparing it with the images decoded from Kafka
compares like with like, whatever the format does to values (it never writes anywhere: the Avro decoder encodes
without its schema registry).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from obsync.core.changes import Change
from obsync.formats.base import Encoder, KafkaRecord

Row = dict[str, Any]
DecodedOp = Literal["insert", "update", "delete", "truncate", "skip"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One row operation a message describes. `table` is (database, table) as the message names it (the
    database may carry an OceanBase tenant prefix, `tenant.db`), None when it names none (a tombstone, whose
    `before` is then the Kafka key's columns)."""

    op: DecodedOp
    table: tuple[str, str] | None = None
    before: Row | None = None
    after: Row | None = None


SKIP = Decoded("skip")


class DecodeError(ValueError):
    """A message the format cannot read (not one of ours, or damaged)."""


class Decoder:
    """Decodes one format's messages. Subclasses implement `decode`; `source_image` encodes with the format's
    encoder and decodes the result."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> list[Decoded]:
        raise NotImplementedError

    def learn(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        """Take in a record of a topic the format keeps for itself (a schema topic); False for any other."""
        return False

    def side_topics(self) -> list[str]:
        """Topics to read (`learn`) before decoding any table's messages."""
        return []

    def source_image(self, change: Change, topic: str) -> Row:
        """The after image of a source row as its message decodes."""
        return image_of(self._encode(change, topic), self, topic)

    def _encode(self, change: Change, topic: str) -> list[KafkaRecord]:
        return self.encoder.encode(change, topic)


def image_of(records: list[KafkaRecord], decoder: Decoder, topic: str) -> Row:
    """The after image the records of one source row decode to."""
    after: Row | None = None
    for r in records:
        if decoder.learn(r.topic, r.key, r.value):
            continue
        for d in decoder.decode(r.topic, r.key, r.value):
            if d.after is not None:
                after = d.after
    if after is None:
        raise DecodeError(f"the {decoder.encoder.name} format gave no row image for a source row of topic {topic}")
    return after


def load_json(value: bytes, what: str) -> Any:
    try:
        return orjson.loads(value)  # about 3 times as fast as json
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but json reads (integers beyond 64 bits, NaN): read as json would
        return json.loads(value)
    except ValueError as e:
        raise DecodeError(f"{what}: not JSON ({e})") from None


def json_object(value: bytes, what: str) -> dict[str, Any]:
    doc = load_json(value, what)
    if not isinstance(doc, dict):
        raise DecodeError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


DecoderFactory = Callable[[Encoder], Decoder]

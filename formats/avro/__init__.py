"""The `avro` format (docs/formats/README.md, "Avro"): Debezium's envelope in Avro, with or without a schema registry.

- `schemas`: Kafka Connect schemas -> Avro schemas, as Confluent's AvroConverter makes them;
- `wire`: the message bytes (Confluent wire format, Avro single-object encoding);
- `registry`: a small schema-registry client;
- `encoder`: the `Encoder`, registered as `avro` when this package is imported (`obsync.formats.registry` imports
  every module and package under `formats/`).
"""

from obsync.formats.avro import decoder  # noqa: F401 - imported to register the decoder
from obsync.formats.avro.encoder import AvroEncoder

__all__ = ["AvroEncoder"]

"""Errors of the Avro format, under obsync's one hierarchy (`obsync.core.errors`)."""

from __future__ import annotations

from obsync.core.errors import SinkError


class AvroFormatError(SinkError):
    """A change cannot be written as Avro, or its schema cannot be published; the task stops."""


class SchemaRegistryError(AvroFormatError):
    """The schema registry refused a request (bad credentials, invalid or incompatible schema)."""


class SchemaRegistryUnavailable(SchemaRegistryError):
    """The schema registry could not be reached or failed on its side; retrying may help."""

    transient = True


class IncompatibleSchemaError(SchemaRegistryError):
    """The registry rejected a new version of a subject under the subject's compatibility level."""

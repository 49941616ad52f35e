"""registry_codecs: Avro in the Confluent wire format for Python stream workers.

Framing (`framing`), Avro encoding on fastavro (`avro`), a Confluent-compatible schema-registry client
(`registry`), a Faust codec (`faust_codec`, the only module that imports faust) and Prometheus failure
counters (`metrics`). The library knows nothing about any application's topics.
"""

from __future__ import annotations

from registry_codecs.avro import AvroDeserializer, AvroSerializer
from registry_codecs.errors import (
    CodecError,
    DecodeError,
    FramingError,
    IncompatibleSchema,
    InvalidSchema,
    RecordDoesNotFitSchema,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaParseError,
    SubjectNotFound,
    VersionNotFound,
)
from registry_codecs.framing import HEADER_SIZE, MAGIC_BYTE, frame, schema_id_of, unframe
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry import CompatibilityResult, RegistryClient
from registry_codecs.schemas import RegisteredSchema, SchemaLookup, SchemaReference

__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroDeserializer",
    "AvroSerializer",
    "CodecError",
    "CodecMetrics",
    "CompatibilityResult",
    "DecodeError",
    "FramingError",
    "IncompatibleSchema",
    "InvalidSchema",
    "RecordDoesNotFitSchema",
    "RegisteredSchema",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "SchemaLookup",
    "SchemaNotFound",
    "SchemaParseError",
    "SchemaReference",
    "SubjectNotFound",
    "VersionNotFound",
    "frame",
    "schema_id_of",
    "unframe",
]

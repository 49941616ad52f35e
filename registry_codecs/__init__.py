"""registry_codecs: Avro in the Confluent wire format for Python stream workers.

Framing (`framing`), Avro encoding on fastavro (`avro`), a Confluent-compatible schema-registry client
(`registry`), a Faust codec (`faust_codec`, the only module that imports faust) and Prometheus failure
counters (`metrics`). The library knows nothing about any application's topics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry_codecs.errors import (
    CodecError,
    DecodeError,
    FramingError,
    IncompatibleSchema,
    InvalidSchema,
    RecordDoesNotFitSchema,
    RegistryAuthError,
    RegistryError,
    RegistryNotRetried,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaNotFoundYet,
    SchemaParseError,
    SchemaRulesNotSupported,
    SubjectNotFound,
    UnionBranchUnresolved,
    ValueDoesNotFit,
    VersionNotFound,
)
from registry_codecs.framing import HEADER_SIZE, MAGIC_BYTE, frame, schema_id_of, unframe
from registry_codecs.memory import InMemorySchemaLookup
from registry_codecs.metrics import CodecMetrics
from registry_codecs.registry import CompatibilityResult, RegistryClient
from registry_codecs.schemas import RegisteredSchema, SchemaLookup, SchemaReference, SchemaRule
from registry_codecs.serde import AvroDeserializer, AvroSerializer
from registry_codecs.unions import NamedRecord

if TYPE_CHECKING:
    from registry_codecs.faust_codec import (
        ConfluentAvroCodec,
        SubjectNameStrategy,
        UnknownSerializer,
        check_serializers,
        check_serializers_at_start,
        register_codec,
    )

_FAUST_NAMES = frozenset(
    {
        "ConfluentAvroCodec",
        "SubjectNameStrategy",
        "UnknownSerializer",
        "check_serializers",
        "check_serializers_at_start",
        "register_codec",
    }
)


def __getattr__(name: str) -> Any:
    # The Faust codec is loaded on first use: importing faust costs about a second, and the codec library
    # is also used without it (producers, tools, the benchmark's raw paths).
    if name in _FAUST_NAMES:
        from registry_codecs import faust_codec

        return getattr(faust_codec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroDeserializer",
    "AvroSerializer",
    "CodecError",
    "CodecMetrics",
    "CompatibilityResult",
    "ConfluentAvroCodec",
    "DecodeError",
    "FramingError",
    "InMemorySchemaLookup",
    "IncompatibleSchema",
    "InvalidSchema",
    "NamedRecord",
    "RecordDoesNotFitSchema",
    "RegisteredSchema",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistryNotRetried",
    "RegistryUnavailable",
    "SchemaLookup",
    "SchemaNotFound",
    "SchemaNotFoundYet",
    "SchemaParseError",
    "SchemaReference",
    "SchemaRule",
    "SchemaRulesNotSupported",
    "SubjectNameStrategy",
    "SubjectNotFound",
    "UnionBranchUnresolved",
    "UnknownSerializer",
    "ValueDoesNotFit",
    "VersionNotFound",
    "check_serializers",
    "check_serializers_at_start",
    "frame",
    "register_codec",
    "schema_id_of",
    "unframe",
]

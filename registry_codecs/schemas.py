"""Value objects for registered schemas, and the lookup protocol the codecs depend on.

The codec layer (`avro.py`, `faust_codec.py`) never talks HTTP itself: it asks a `SchemaLookup` for a
schema by id or for the latest schema of a subject. `registry.RegistryClient` is the production
implementation; tests and other registries can provide their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A reference from one schema to a named type registered under another subject."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as the registry knows it.

    Attributes:
        schema_id: the global id, the one written in the frame header.
        schema_str: the schema text exactly as the registry returned it.
        schema_type: ``"AVRO"``, ``"JSON"`` or ``"PROTOBUF"``.
        references: references as declared by the registry.
        resolved_references: the text of every referenced schema, transitively, as ``(name, schema_str)``
            pairs ordered so that each schema comes after the ones it uses. Filled by the client so that
            a parser can define the named types before parsing `schema_str`.
        subject, version: set when the schema was fetched through a subject.
    """

    schema_id: int
    schema_str: str
    schema_type: str = "AVRO"
    references: tuple[SchemaReference, ...] = ()
    resolved_references: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    subject: str | None = None
    version: int | None = None


@runtime_checkable
class SchemaLookup(Protocol):
    """What a codec needs from a schema registry. Implementations cache; codecs call them per message."""

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        """Return the schema with this global id.

        Raises:
            SchemaNotFound: no such id (40403).
            RegistryUnavailable: the registry could not answer; retry later.
        """
        ...

    def get_latest(self, subject: str) -> RegisteredSchema:
        """Return the latest version registered under `subject` (cached with a TTL).

        Raises:
            SubjectNotFound: no such subject (40401).
            RegistryUnavailable: the registry could not answer and nothing is cached; retry later.
        """
        ...

    def register(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: tuple[SchemaReference, ...] = (),
    ) -> int:
        """Register a schema under `subject` (idempotent) and return its global id."""
        ...


__all__ = ["RegisteredSchema", "SchemaLookup", "SchemaReference"]

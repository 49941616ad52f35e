"""An in-memory `SchemaLookup`: the codecs without a registry process.

For unit tests of transforms and codecs, and for benchmarks that must leave HTTP out (the role
confluent-kafka's ``mock://`` registry plays). Ids are global and a schema text registered twice gets its
first id; a subject's versions are kept in order. It never checks compatibility and is not thread-safe.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from registry_codecs.errors import SchemaNotFound, SubjectNotFound
from registry_codecs.schemas import RegisteredSchema, SchemaReference


class InMemorySchemaLookup:
    """A `SchemaLookup` holding its schemas in dictionaries.

    Args:
        first_id: the id the first registered schema gets.
    """

    def __init__(self, first_id: int = 1) -> None:
        self._next_id = first_id
        self._by_id: dict[int, RegisteredSchema] = {}
        self._ids_by_text: dict[str, int] = {}
        self._subjects: dict[str, list[int]] = {}

    def add(
        self,
        subject: str,
        schema: str | Mapping[str, Any],
        references: tuple[tuple[str, str], ...] = (),
    ) -> int:
        """Register `schema` under `subject` and return its id.

        Args:
            subject: the subject, e.g. ``"orders-value"``.
            schema: the schema as JSON text or as a parsed mapping.
            references: ``(name, schema_str)`` of the named types the schema uses, dependencies first.
        """
        text = schema if isinstance(schema, str) else json.dumps(schema)
        schema_id = self._ids_by_text.get(text)
        if schema_id is None:
            schema_id, self._next_id = self._next_id, self._next_id + 1
            refs = tuple(SchemaReference(name, name, 1) for name, _ in references)
            self._by_id[schema_id] = RegisteredSchema(
                schema_id, text, references=refs, resolved_references=references
            )
            self._ids_by_text[text] = schema_id
        versions = self._subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def get_schema(self, schema_id: int) -> RegisteredSchema:
        """Return the schema with this id.

        Raises:
            SchemaNotFound: no schema has this id (40403).
        """
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise SchemaNotFound(f"schema {schema_id} not found", status_code=404, error_code=40403) from None

    def get_latest(self, subject: str) -> RegisteredSchema:
        """Return the latest version of `subject`.

        Raises:
            SubjectNotFound: the subject has no versions (40401).
        """
        versions = self._subjects.get(subject)
        if not versions:
            raise SubjectNotFound(f"subject {subject!r} not found", status_code=404, error_code=40401)
        # replace, not a new object: whatever else the schema carries (its rules) comes along
        return dataclasses.replace(self._by_id[versions[-1]], subject=subject, version=len(versions))

    def register(
        self,
        subject: str,
        schema_str: str,
        schema_type: str = "AVRO",
        references: tuple[SchemaReference, ...] = (),
    ) -> int:
        """Register `schema_str` under `subject` (idempotent) and return its id.

        References are recorded by name only: use :meth:`add` to give the referenced schemas' text.
        """
        return self.add(subject, schema_str)


__all__ = ["InMemorySchemaLookup"]

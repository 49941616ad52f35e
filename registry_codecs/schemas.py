"""Value objects for registered schemas, and the lookup protocol the codecs depend on.

The codec layer (`avro.py`, `faust_codec.py`) never talks HTTP itself: it asks a `SchemaLookup` for a
schema by id or for the latest schema of a subject. `registry.RegistryClient` is the production
implementation; tests and other registries can provide their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: The rule groups of a Confluent ``ruleSet``, in the order Confluent's clients apply them.
RULE_GROUPS = ("migrationRules", "domainRules", "encodingRules")


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A reference from one schema to a named type registered under another subject."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class SchemaRule:
    """One rule of a schema's data contract (Confluent's ``ruleSet``), as the registry answered it.

    Attributes:
        group: the rule set member it came from: ``domainRules``, ``migrationRules`` or ``encodingRules``.
        name: the rule's name (unique within the rule set).
        kind: ``CONDITION`` or ``TRANSFORM``.
        type: what executes it: ``CEL``, ``CEL_FIELD``, ``ENCRYPT``, ``JSONATA`` ...
        mode: when it runs: ``WRITE``, ``READ``, ``WRITEREAD``, ``UPGRADE``, ``DOWNGRADE``, ``UPDOWN``.
        disabled: the rule says ``"disabled": true``; Confluent's clients skip it unless a client-side
            override enables it again.
        tags, params, expr, on_success, on_failure, doc: the rest of the rule, kept for display.
    """

    group: str
    name: str
    kind: str = ""
    type: str = ""
    mode: str = ""
    disabled: bool = False
    tags: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    expr: str = ""
    on_success: str = ""
    on_failure: str = ""
    doc: str = ""


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
        rules: the rules of the answer's ``ruleSet`` (data contracts), every group, in answer order;
            empty when it has none (no ``ruleSet``, ``{}``, or only empty lists).
        metadata: the answer's ``metadata`` object (``tags``, ``properties``, ``sensitive``) as JSON, or
            None. Informational: nothing here acts on it.
    """

    schema_id: int
    schema_str: str
    schema_type: str = "AVRO"
    references: tuple[SchemaReference, ...] = ()
    resolved_references: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    subject: str | None = None
    version: int | None = None
    rules: tuple[SchemaRule, ...] = ()
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def active_rules(self) -> tuple[SchemaRule, ...]:
        """The rules a Confluent client would execute by default: every rule not marked disabled."""
        return tuple(rule for rule in self.rules if not rule.disabled)


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


__all__ = ["RULE_GROUPS", "RegisteredSchema", "SchemaLookup", "SchemaReference", "SchemaRule"]

"""Parse submitted schemas, resolve their references, and compute the identity that global ids hang on.

Two submissions are "the same schema" when their identities are equal. Confluent keys an Avro schema on
Avro's own rendering of it (``Schema.toString()``): whitespace, key order and the spelling of names
(``namespace`` + ``name`` or a full name) do not count, every attribute does, ``doc`` and extra
properties such as Kafka Connect's ``connect.name`` included. So here the identity is the Parsing
Canonical Form (fastavro's `to_parsing_canonical_form`, which normalizes the spelling but drops every
attribute it does not need to read data) plus every attribute that form drops: defaults, aliases,
logical types, sort orders, docs and any other property, each at its path. A changed default or a new
doc is a new schema with a new id, as in Confluent. JSON and PROTOBUF schemas are kept as opaque text
compared with whitespace collapsed. The references (name, subject, version) are always part of the
identity.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastavro.schema import SchemaParseException, UnknownType, parse_schema, to_parsing_canonical_form

from devstack.registry.avro_rules import check_structure
from devstack.registry.errors import ApiError, invalid_schema

__all__ = [
    "SCHEMA_TYPES",
    "AvroSchema",
    "Reference",
    "ResolveReference",
    "SchemaDoc",
    "parse_avro",
    "prepare_schema",
    "references_from_json",
]

SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")
# What Parsing Canonical Form keeps of a type and of a field; every other attribute is an "extra".
_CANONICAL_TYPE_KEYS = frozenset(
    {"type", "name", "namespace", "fields", "symbols", "items", "values", "size"}
)
_CANONICAL_FIELD_KEYS = frozenset({"name", "type"})
_MAX_REFERENCE_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Reference:
    """A named type the schema imports from another subject's version."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        """The wire form Confluent uses."""
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True, slots=True)
class SchemaDoc:
    """A stored schema: what the registry serves back, and the key it deduplicates on."""

    schema_type: str
    text: str
    references: tuple[Reference, ...]
    identity: str
    #: The data contract (`devstack.registry.contracts`): JSON objects as registered, or None.
    metadata: dict[str, Any] | None = field(default=None, compare=False)
    rule_set: dict[str, Any] | None = field(default=None, compare=False)
    #: The identity of the schema alone (text and references), when `identity` also holds a contract.
    base_identity: str = ""

    @property
    def schema_identity(self) -> str:
        """The identity without the contract: equal for the same schema registered with other rules."""
        return self.base_identity or self.identity

    def to_json(self) -> dict[str, Any]:
        """``schema``, plus ``schemaType`` when not Avro, and ``references``, ``metadata`` and ``ruleSet``
        when there are any."""
        body: dict[str, Any] = {"schema": self.text}
        if self.schema_type != "AVRO":
            body["schemaType"] = self.schema_type
        if self.references:
            body["references"] = [ref.to_json() for ref in self.references]
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.rule_set is not None:
            body["ruleSet"] = self.rule_set
        return body


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """A parsed Avro schema and every named type it can see (its own and its references'), by full name."""

    parsed: Any
    named: Mapping[str, Any] = field(default_factory=dict)


#: Looks up the schema a reference points at; raises ApiError when it does not exist.
ResolveReference = Callable[[Reference], SchemaDoc]


def references_from_json(raw: object) -> tuple[Reference, ...]:
    """Validate the ``references`` member of a request body.

    Raises:
        ApiError: 422 when it is not a list of ``{name, subject, version}`` objects.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ApiError(422, 422, "references must be a list")
    refs = []
    for item in raw:
        if not isinstance(item, dict):
            raise ApiError(422, 422, "each reference must be an object with name, subject and version")
        name, subject, version = item.get("name"), item.get("subject"), item.get("version")
        if not isinstance(name, str) or not isinstance(subject, str):
            raise ApiError(422, 422, "a reference needs a string name and subject")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ApiError(422, 422, "a reference needs an integer version")
        refs.append(Reference(name, subject, version))
    return tuple(refs)


def prepare_schema(
    schema_type: str, text: str, references: Sequence[Reference], resolve: ResolveReference
) -> SchemaDoc:
    """Validate a submitted schema and compute its stored form and identity.

    Raises:
        ApiError: 42201 when the schema does not parse or a reference cannot be resolved.
    """
    refs = tuple(references)
    ref_key = json.dumps([ref.to_json() for ref in refs], sort_keys=True)
    if schema_type != "AVRO":
        collapsed = " ".join(text.split())
        if not collapsed:
            raise invalid_schema("empty schema")
        for ref in refs:
            resolve(ref)  # opaque types are not parsed, but their references must still exist
        return SchemaDoc(schema_type, text, refs, f"{schema_type}\n{collapsed}\n{ref_key}")
    raw = _load_json(text)
    check_structure(raw)
    draft = SchemaDoc("AVRO", json.dumps(raw, separators=(",", ":")), refs, "")
    avro = parse_avro(draft, resolve)
    extras: list[Any] = []
    _collect_extras(avro.parsed, "", extras)
    canonical = to_parsing_canonical_form(avro.parsed)
    identity = f"AVRO\n{canonical}\n{json.dumps(extras, sort_keys=True)}\n{ref_key}"
    return SchemaDoc("AVRO", draft.text, refs, identity)


def parse_avro(doc: SchemaDoc, resolve: ResolveReference) -> AvroSchema:
    """Parse an Avro schema after defining the named types of its references (depth first).

    Raises:
        ApiError: 42201 when it (or a referenced schema) is not valid Avro or a reference is missing.
    """
    named: dict[str, Any] = {}
    _define_references(doc.references, resolve, named, set(), 0)
    try:
        parsed = parse_schema(_load_json(doc.text), named_schemas=named)
    except (
        SchemaParseException,
        UnknownType,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        RecursionError,
    ) as exc:
        raise invalid_schema(f"{type(exc).__name__}: {exc}") from exc
    return AvroSchema(parsed, named)


def _define_references(
    refs: Sequence[Reference],
    resolve: ResolveReference,
    named: dict[str, Any],
    seen: set[tuple[str, int]],
    depth: int,
) -> None:
    if depth > _MAX_REFERENCE_DEPTH:
        raise invalid_schema("references nest too deeply (a cycle?)")
    for ref in refs:
        if (ref.subject, ref.version) in seen:
            continue  # a diamond: the types are already defined
        seen.add((ref.subject, ref.version))
        target = resolve(ref)
        if target.schema_type != "AVRO":
            raise invalid_schema(f"reference {ref.name!r} points at a {target.schema_type} schema")
        _define_references(target.references, resolve, named, seen, depth + 1)
        try:
            parse_schema(_load_json(target.text), named_schemas=named)
        except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
            raise invalid_schema(f"referenced schema {ref.subject!r} v{ref.version}: {exc}") from exc


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise invalid_schema(f"not JSON: {exc}") from exc


def _collect_extras(node: Any, path: str, out: list[Any]) -> None:
    """Append ``[path, {attr: value}]`` for every attribute the canonical form drops (docs included)."""
    if isinstance(node, list):
        for index, branch in enumerate(node):
            _collect_extras(branch, f"{path}/{index}", out)
        return
    if not isinstance(node, dict):
        return
    found = _extras(node, _CANONICAL_TYPE_KEYS)
    if found:
        out.append([path, found])
    for index, fld in enumerate(node.get("fields", ())):
        own = _extras(fld, _CANONICAL_FIELD_KEYS)
        if own:
            out.append([f"{path}/fields/{index}", own])
        _collect_extras(fld.get("type"), f"{path}/fields/{index}/type", out)
    for key in ("items", "values"):
        if key in node:
            _collect_extras(node[key], f"{path}/{key}", out)
    if isinstance(node.get("type"), dict | list):
        _collect_extras(node["type"], f"{path}/type", out)


def _extras(node: dict[str, Any], canonical: frozenset[str]) -> dict[str, Any]:
    # fastavro's parsed schemas carry bookkeeping keys of their own ("__fastavro_parsed" ...).
    return {key: value for key, value in node.items() if key not in canonical and not key.startswith("__")}

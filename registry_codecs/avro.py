"""Avro schemas on fastavro: parsing registered schemas once, and deciding how a writer schema is read.

A registered schema is parsed with `fastavro.parse_schema` after the named types of its resolved
references are defined, and the result is kept per schema id by the serializer and deserializer
(`registry_codecs.serde`). When a reader schema is given, :func:`read_plan` decides once per writer id
whether Avro schema resolution is needed at all (not when both schemas have the same shape), whether a
precomputed projection of the decoded record can do it (`registry_codecs.projection`), or whether
fastavro's own resolution has to run for every message. The serializer and deserializer that use these
plans live in `registry_codecs.serde` (which imports this module, never the other way round).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro

from registry_codecs.errors import SchemaParseError, SchemaRulesNotSupported
from registry_codecs.schemas import RegisteredSchema, SchemaRule

#: Schema attributes that never change how a value is read when writer and reader share everything else.
_NO_EFFECT_ON_READ = frozenset({"doc", "default", "aliases", "order"})

#: How many rules a refusal names before it says "and N more", and how long a rule's name may be there.
_RULES_NAMED = 8
_RULE_NAME_CHARS = 80

#: A function that turns a record decoded with the writer schema into the reader schema's shape.
Projection = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How to read bodies written with one writer schema.

    Attributes:
        writer: the parsed writer schema, handed to fastavro's schemaless reader.
        reader: the parsed reader schema when fastavro must resolve per message, else None.
        project: applied to what fastavro returns (a precomputed resolution), or None.
        mark: turns the ``(name, record)`` values of unions of several records into `NamedRecord`
            (`registry_codecs.unions`), or None when the schema has no such union.
    """

    writer: Any
    reader: Any = None
    project: Projection | None = None
    mark: Callable[[Any], Any] | None = None


def parse_avro(
    schema: str | Mapping[str, Any] | list[Any], references: tuple[tuple[str, str], ...] = ()
) -> Any:
    """Parse an Avro schema (JSON text or already-loaded JSON) with fastavro.

    Args:
        schema: the schema, as text or as loaded JSON.
        references: ``(name, schema_str)`` pairs of referenced schemas, dependencies first; their named
            types are defined before `schema` is parsed.

    Returns:
        The parsed schema, ready for fastavro's schemaless reader and writer.

    Raises:
        SchemaParseError: a text is not JSON, or not a valid Avro schema.
    """
    named: dict[str, Any] = {}
    for name, text in references:
        _parse_one(text, named, what=f"referenced schema {name!r}")
    return _parse_one(schema, named, what="schema")


def parse_registered(registered: RegisteredSchema) -> Any:
    """Parse a schema fetched from the registry, its references included.

    A schema whose data contract has rules (`RegisteredSchema.active_rules`) is refused: this library
    does not execute them, and encoding or decoding as if they were absent would skip what the contract
    demands (a field-level ``ENCRYPT``, a CEL condition, a migration). Both the serializer and the
    deserializer parse through here, so neither ever uses such a schema.

    Raises:
        SchemaRulesNotSupported: the schema carries enabled data-contract rules.
        SchemaParseError: the schema is not Avro, or does not parse.
    """
    if registered.active_rules:
        raise SchemaRulesNotSupported(
            f"schema id {registered.schema_id} carries data-contract rules avroflow does not execute: "
            f"{describe_rules(registered.active_rules)}",
            schema_id=registered.schema_id,
            rules=registered.active_rules,
        )
    if registered.schema_type.upper() != "AVRO":
        raise SchemaParseError(
            f"schema id {registered.schema_id} is a {registered.schema_type} schema, not Avro"
        )
    try:
        return parse_avro(registered.schema_str, registered.resolved_references)
    except SchemaParseError as exc:
        raise SchemaParseError(f"schema id {registered.schema_id}: {exc}") from exc


def describe_rules(rules: tuple[SchemaRule, ...]) -> str:
    """Name rules on one line: ``domainRules TRANSFORM ENCRYPT (encrypt_ssn), ...``.

    At most `_RULES_NAMED` are named (then ``and N more``); names are cut, and their control characters
    replaced, because they come from the registry and end up in logs and dead-letter headers.
    """
    named = [_describe_rule(rule) for rule in rules[:_RULES_NAMED]]
    if len(rules) > _RULES_NAMED:
        named.append(f"and {len(rules) - _RULES_NAMED} more")
    return ", ".join(named)


def _describe_rule(rule: SchemaRule) -> str:
    words = " ".join(w for w in (rule.group, rule.kind or "?", rule.type or "?", rule.mode) if w)
    name = "".join(c if c.isprintable() else "?" for c in rule.name[:_RULE_NAME_CHARS]) or "unnamed"
    return f"{words} ({name})"


def _parse_one(schema: str | Mapping[str, Any] | list[Any], named: dict[str, Any], *, what: str) -> Any:
    try:
        loaded: Any = json.loads(schema) if isinstance(schema, str) else schema
        return fastavro.parse_schema(loaded, named_schemas=named)
    # fastavro reports bad schemas with its own exceptions, KeyError, TypeError and ValueError alike.
    except Exception as exc:
        raise SchemaParseError(f"{what} does not parse: {type(exc).__name__}: {exc}") from exc


def shape_key(parsed: Any) -> str:
    """Return a text that is equal for two parsed schemas exactly when they read bytes identically.

    Documentation, defaults, aliases and sort order are dropped (they only matter when writer and reader
    differ); names, types, logical types, symbols and sizes are kept.
    """
    return json.dumps(_strip(parsed), sort_keys=True, separators=(",", ":"))


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _strip(value)
            for key, value in node.items()
            if key not in _NO_EFFECT_ON_READ and not key.startswith("__")
        }
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def read_plan(writer: Any, reader: Any | None, reader_key: str | None) -> ReadPlan:
    """Decide once how to read bodies written with `writer` when the caller wants `reader`.

    Args:
        writer: the parsed writer schema.
        reader: the parsed reader schema, or None to read with the writer schema.
        reader_key: `shape_key(reader)`, computed once by the caller.
    """
    if reader is None or shape_key(writer) == reader_key:
        return ReadPlan(writer)
    # Imported here: projection is an optimisation layered on top, and avro must not depend on it at import.
    from registry_codecs.projection import IDENTITY, compile_projection

    project = compile_projection(writer, reader)
    if project is IDENTITY:
        return ReadPlan(writer)
    if project is not None:
        return ReadPlan(writer, None, project)
    return ReadPlan(writer, reader)


def find_misfit(parsed: Any, datum: Any) -> tuple[str, str] | None:
    """Walk `datum` against a parsed schema and return ``(field_path, problem)`` for the first misfit.

    The rules are `registry_codecs.fit`'s. Paths read like ``address.zip``, ``items[2].price`` or
    ``attributes['k']``; None means the datum fits.
    """
    from registry_codecs.fit import Fitter, Misfit

    try:
        Fitter(parsed).prepare(datum)
    except Misfit as misfit:
        return misfit.path, misfit.problem
    return None


__all__ = [
    "Projection",
    "ReadPlan",
    "describe_rules",
    "find_misfit",
    "parse_avro",
    "parse_registered",
    "read_plan",
    "shape_key",
]

"""Avro schemas on fastavro: parsing registered schemas once, and deciding how a writer schema is read.

A registered schema is parsed with `fastavro.parse_schema` after the named types of its resolved
references are defined, and the result is kept per schema id by the serializer and deserializer
(`registry_codecs.serde`). When a reader schema is given, :func:`read_plan` decides once per writer id
whether Avro schema resolution is needed at all (not when both schemas have the same shape), whether a
precomputed projection of the decoded record can do it (`registry_codecs.projection`), or whether
fastavro's own resolution has to run for every message. The serializer and deserializer classes are
re-exported here, which is where the shared contract names them.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fastavro

from registry_codecs.errors import SchemaParseError
from registry_codecs.schemas import RegisteredSchema

if TYPE_CHECKING:
    from registry_codecs.serde import AvroDeserializer, AvroSerializer

#: Schema attributes that never change how a value is read when writer and reader share everything else.
_NO_EFFECT_ON_READ = frozenset({"doc", "default", "aliases", "order"})

#: A function that turns a record decoded with the writer schema into the reader schema's shape.
Projection = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How to read bodies written with one writer schema.

    Attributes:
        writer: the parsed writer schema, handed to fastavro's schemaless reader.
        reader: the parsed reader schema when fastavro must resolve per message, else None.
        project: applied to what fastavro returns (a precomputed resolution), or None.
    """

    writer: Any
    reader: Any = None
    project: Projection | None = None


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

    Raises:
        SchemaParseError: the schema is not Avro, or does not parse.
    """
    if registered.schema_type.upper() != "AVRO":
        raise SchemaParseError(
            f"schema id {registered.schema_id} is a {registered.schema_type} schema, not Avro"
        )
    try:
        return parse_avro(registered.schema_str, registered.resolved_references)
    except SchemaParseError as exc:
        raise SchemaParseError(f"schema id {registered.schema_id}: {exc}") from exc


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

    Run only after fastavro has refused a record: its messages rarely say which field was wrong. Paths
    read like ``address.zip``, ``items[2].price`` or ``attributes['k']``; None means no misfit was found.
    """
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    return _misfit(parsed, datum, "", named)


def _misfit(schema: Any, datum: Any, path: str, named: Mapping[str, Any]) -> tuple[str, str] | None:
    if isinstance(schema, str):
        if schema in named:
            return _misfit(named[schema], datum, path, named)
        return _check_leaf(schema, None, datum, path)
    if isinstance(schema, list):
        return _misfit_union(schema, datum, path, named)
    kind = schema["type"]
    if kind == "record" or kind == "error":
        return _misfit_record(schema, datum, path, named)
    if kind == "array":
        if not isinstance(datum, list | tuple):
            return path, f"expected an array, got {type(datum).__name__}"
        for index, item in enumerate(datum):
            found = _misfit(schema["items"], item, f"{path}[{index}]", named)
            if found:
                return found
        return None
    if kind == "map":
        if not isinstance(datum, Mapping):
            return path, f"expected a map, got {type(datum).__name__}"
        for key, value in datum.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", f"map keys must be strings, got {type(key).__name__}"
            found = _misfit(schema["values"], value, f"{path}[{key!r}]", named)
            if found:
                return found
        return None
    if kind == "enum":
        if datum not in schema["symbols"]:
            shown = repr(datum) if isinstance(datum, str) else type(datum).__name__
            return path, f"{shown} is not a symbol of enum {schema['name']} {schema['symbols']}"
        return None
    if isinstance(kind, dict | list):
        return _misfit(kind, datum, path, named)
    return _check_leaf(kind, schema, datum, path)


def _misfit_record(
    schema: Mapping[str, Any], datum: Any, path: str, named: Mapping[str, Any]
) -> tuple[str, str] | None:
    if not isinstance(datum, Mapping):
        return path or "(record)", f"expected a record {schema['name']}, got {type(datum).__name__}"
    for field in schema["fields"]:
        name = field["name"]
        where = f"{path}.{name}" if path else name
        if name not in datum:
            if "default" in field or _accepts_null(field["type"]):
                continue
            return where, "missing field (no default)"
        found = _misfit(field["type"], datum[name], where, named)
        if found:
            return found
    return None


def _misfit_union(
    branches: list[Any], datum: Any, path: str, named: Mapping[str, Any]
) -> tuple[str, str] | None:
    for branch in branches:
        if _misfit(branch, datum, path, named) is None:
            return None
    # No branch fits: descend into the branch of the datum's own kind, for a deeper path.
    for branch in branches:
        resolved = named.get(branch, branch) if isinstance(branch, str) else branch
        kind = resolved.get("type") if isinstance(resolved, dict) else resolved
        if (
            (kind == "record" and isinstance(datum, Mapping))
            or (kind == "array" and isinstance(datum, list | tuple))
            or (kind == "map" and isinstance(datum, Mapping))
        ):
            return _misfit(resolved, datum, path, named)
    names = [b if isinstance(b, str) else b.get("name", b.get("type")) for b in branches]
    return path or "(record)", f"{type(datum).__name__} fits no branch of the union {names}"


def _accepts_null(schema: Any) -> bool:
    return schema == "null" or (isinstance(schema, list) and "null" in schema)


_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


def _check_leaf(kind: str, schema: Mapping[str, Any] | None, datum: Any, path: str) -> tuple[str, str] | None:
    logical = schema.get("logicalType") if schema else None
    if logical is not None:
        problem = _check_logical(logical, schema or {}, datum)
        if problem is not _NOT_LOGICAL:
            return (path or "(record)", problem) if problem else None
    ok = _LEAF_CHECKS.get(kind)
    if ok is None:
        return path or "(record)", f"unknown type {kind!r}"
    if kind == "fixed" and schema is not None:
        size_ok = isinstance(datum, bytes | bytearray) and len(datum) == schema["size"]
        return None if size_ok else (path, f"expected {schema['size']} bytes (fixed {schema['name']})")
    if ok(datum):
        return None
    return path or "(record)", f"expected {kind}, got {type(datum).__name__}"


def _in_range(datum: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(datum, int) and bounds[0] <= datum <= bounds[1]


_LEAF_CHECKS: dict[str, Callable[[Any], bool]] = {
    "null": lambda d: d is None,
    "boolean": lambda d: isinstance(d, bool),
    "int": lambda d: _in_range(d, _INT_RANGE),
    "long": lambda d: _in_range(d, _LONG_RANGE),
    "float": lambda d: isinstance(d, int | float),
    "double": lambda d: isinstance(d, int | float),
    "bytes": lambda d: isinstance(d, bytes | bytearray),
    "string": lambda d: isinstance(d, str),
    "fixed": lambda d: isinstance(d, bytes | bytearray),
}

_NOT_LOGICAL = "not a logical type we check"


def _check_logical(logical: str, schema: Mapping[str, Any], datum: Any) -> str | None:
    """Return a problem, None when `datum` fits, or _NOT_LOGICAL to check the underlying type instead."""
    accepted = _LOGICAL_TYPES.get(logical)
    if accepted is None or not isinstance(datum, accepted):
        return _NOT_LOGICAL  # a raw underlying value (an int for a date ...) is legal too
    if isinstance(datum, decimal.Decimal):
        return _decimal_problem(schema, datum)
    return None


def _decimal_problem(schema: Mapping[str, Any], value: decimal.Decimal) -> str | None:
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return f"decimal {value} is not finite"
    scale = int(schema.get("scale", 0))
    if -exponent > scale:
        return f"decimal with {-exponent} fraction digits exceeds the scale {scale}"
    precision = int(schema.get("precision", 0))
    if precision and len(digits) + exponent + scale > precision:
        return (
            f"decimal of {len(digits) + exponent} integer digits exceeds precision {precision}, scale {scale}"
        )
    return None


_LOGICAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "date": datetime.date,
    "time-millis": datetime.time,
    "time-micros": datetime.time,
    "timestamp-millis": datetime.datetime,
    "timestamp-micros": datetime.datetime,
    "local-timestamp-millis": datetime.datetime,
    "local-timestamp-micros": datetime.datetime,
}


def __getattr__(name: str) -> Any:
    # The classes live in serde, which imports this module; importing them lazily avoids the cycle.
    if name in ("AvroSerializer", "AvroDeserializer"):
        from registry_codecs import serde

        return getattr(serde, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AvroDeserializer",
    "AvroSerializer",
    "Projection",
    "ReadPlan",
    "find_misfit",
    "parse_avro",
    "parse_registered",
    "read_plan",
    "shape_key",
]

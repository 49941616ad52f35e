"""The compatibility checker against Apache Avro's own: the table, and randomly generated schema pairs.

Apache Avro's Python package ships `avro.compatibility.ReaderWriterCompatibilityChecker`, a port of Java's
`SchemaCompatibility` that Confluent's registry uses. Agreeing with it on every table row and on hundreds
of generated reader/writer pairs (records with aliases and defaults, enums with and without defaults,
fixed, arrays, maps, unions, promotions) is the evidence that the registry refuses what Confluent refuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_compatibility import CASES, parse  # the table and its parse helper, same directory

from devstack.registry.compatibility import reader_problems
from devstack.registry.errors import ApiError

avro_schema = pytest.importorskip("avro.schema")
avro_compatibility = pytest.importorskip("avro.compatibility")
avro_errors = pytest.importorskip("avro.errors")

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
DEFAULTS: dict[str, Any] = {"null": None, "boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0}
DEFAULTS |= {"bytes": "", "string": ""}


def avro_says_readable(reader: Any, writer: Any) -> bool:
    checker = avro_compatibility.ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(
        avro_schema.parse(json.dumps(reader)), avro_schema.parse(json.dumps(writer))
    )
    return bool(result.compatibility == avro_compatibility.SchemaCompatibilityType.compatible)


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_table_agrees_with_apache_avro(old: Any, new: Any, backward: bool, forward: bool) -> None:
    assert avro_says_readable(new, old) is backward
    assert avro_says_readable(old, new) is forward


def _field(name: str, type_: Any, with_default: bool, alias: str | None) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": type_}
    first = type_[0] if isinstance(type_, list) else type_
    if with_default and isinstance(first, str):
        field["default"] = DEFAULTS[first]
    if alias:
        field["aliases"] = [alias]
    return field


def _record(name: str, fields: list[dict[str, Any]], alias: str | None) -> dict[str, Any]:
    unique = list({f["name"]: f for f in fields}.values())
    return {"type": "record", "name": name, "fields": unique, **({"aliases": [alias]} if alias else {})}


def _enum(name: str, symbols: list[str], with_default: bool) -> dict[str, Any]:
    return {
        "type": "enum",
        "name": name,
        "symbols": symbols,
        **({"default": symbols[0]} if with_default else {}),
    }


def avro_types(depth: int) -> st.SearchStrategy[Any]:
    """Small schemas over few names and symbols, so that generated pairs often nearly match."""
    primitive = st.sampled_from(PRIMITIVES)
    if depth == 0:
        return primitive
    inner = avro_types(depth - 1)
    union = st.lists(primitive, min_size=1, max_size=3, unique=True)
    symbols = st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True)
    field = st.builds(
        _field,
        st.sampled_from("abc"),
        st.one_of(inner, union),
        st.booleans(),
        st.sampled_from([None, None, "a", "b"]),
    )
    return st.one_of(
        primitive,
        union,
        st.builds(_enum, st.sampled_from(["E", "F"]), symbols, st.booleans()),
        st.builds(
            lambda n, s: {"type": "fixed", "name": n, "size": s},
            st.sampled_from("XY"),
            st.sampled_from([2, 4]),
        ),
        st.builds(lambda t: {"type": "array", "items": t}, inner),
        st.builds(lambda t: {"type": "map", "values": t}, inner),
        st.builds(
            _record,
            st.sampled_from("RS"),
            st.lists(field, max_size=3),
            st.sampled_from([None, None, "R", "S"]),
        ),
    )


TOP = st.builds(
    lambda t: {"type": "record", "name": "Top", "fields": [{"name": "v", "type": t}]}, avro_types(2)
)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(TOP, TOP)
def test_generated_pairs_agree_with_apache_avro(reader: Any, writer: Any) -> None:
    try:
        parsed_reader, parsed_writer = parse(reader), parse(writer)
        expected = avro_says_readable(reader, writer)
    except (ApiError, avro_errors.SchemaParseException):
        assume(False)  # a generated schema both libraries reject (a name defined twice, say)
        raise
    problems = reader_problems(parsed_reader, parsed_writer)
    assert (not problems) is expected, problems
